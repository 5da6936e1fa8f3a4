"""The redaction module: which names are secret, and how connection URLs are masked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fastapi_enterprise.redaction import DEFAULT_REDACTOR, MASK, Redactor, is_secret_key, mask_dsn


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "DB_PASSWORD",
        "X-Api-Key",
        "apiKey",
        "clientSecret",
        "access_token",
        "Authorization",
        "Set-Cookie",
        "sentry_dsn",
        "PRIVATE-KEY",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["username", "page", "host", "content-type", "user_agent"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_key(name)


def test_extra_secret_names() -> None:
    assert is_secret_key("X-Tenant-Pin", extra=["tenant-pin"])


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://app:hunter2@db:5432/prod", f"postgresql://app:{MASK}@db:5432/prod"),
        ("redis://:hunter2@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("mysql://app:p%40ss:word@db/x", f"mysql://app:{MASK}@db/x"),
        (
            "postgresql://app@db/x?sslpassword=hunter2&application_name=api",
            f"postgresql://app@db/x?sslpassword={MASK}&application_name=api",
        ),
        ("https://publickey@o1.ingest.sentry.io/42", f"https://{MASK}@o1.ingest.sentry.io/42"),
        ("sqlite:///./app.db", "sqlite:///./app.db"),
        ("not a url with hunter2", MASK),
        ("redis://host:notaport/0", MASK),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked
    assert "hunter2" not in mask_dsn(dsn)


def test_text_masks_secret_query_parameters_and_credentials() -> None:
    redactor = Redactor(keys=["pin"])
    text = (
        'HTTP Request: GET http://api/items?api_key=s3cr3t&page=2&user_pin=1234 "HTTP/1.1 200"'
        " retry with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc and basic usage"
    )
    assert redactor.text(text) == (
        "HTTP Request: GET http://api/items?api_key=**********&page=2&user_pin=********** "
        '"HTTP/1.1 200" retry with Authorization: Bearer ********** and basic usage'
    )


def test_nested_values_and_depth_limit() -> None:
    redactor = Redactor(max_depth=4)
    data = {
        "user": {"Password": "x", "tags": ["a", {"token": "y"}]},
        "deep": {"a": {"b": {"c": {"d": 1}}}},
    }
    assert redactor.value(data) == {
        "user": {"Password": MASK, "tags": ["a", {"token": MASK}]},
        "deep": {"a": {"b": {"c": "[depth limit]"}}},
    }
    assert redactor.value(("postgresql://u:pw@h/db",)) == [f"postgresql://u:{MASK}@h/db"]


def test_headers_and_query_strings() -> None:
    redactor = Redactor(headers=["X-Tenant-Secret-Header"])
    assert redactor.headers(
        [
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("Accept", "*/*"),
            ("x-tenant-secret-header", "v"),
            ("X-Session-Id", "s"),
        ]
    ) == [
        ("Authorization", MASK),
        ("Accept", "*/*"),
        ("x-tenant-secret-header", MASK),
        ("X-Session-Id", MASK),
    ]
    assert (
        redactor.query_string("a=1&access%5Ftoken=x&flag&b=")
        == "a=1&access%5Ftoken=**********&flag&b="
    )
    many = "&".join(f"p{n}=1" for n in range(150))
    assert redactor.query_string(many).endswith("&[50 more parameters]")
    assert redactor.query_string("") == ""


# The corpus: realistic log and exception messages. In each, ``{s}`` marks the planted
# secret; the redacted message must be the same text with exactly that part masked.
PLANTED = [
    ("login failed: password={s}", "hunter2"),
    ("upstream error: token={s}", "tk_8f14e45fceea467f"),
    ("cookie header was: session={s}", "s%3A9f8e7d6c5b4a"),
    ("Cookie: {s}", "sid=31d4d96e407aad42; csrftoken=Zq8xY2; theme=dark"),
    ("Set-Cookie: {s}", "session=abc123; Path=/; HttpOnly; Secure"),
    ("retrying with api_key={s} after 429", "AKx9-7731-ee01"),
    ("POST /oauth/token failed: client_secret={s}&grant_type=client_credentials", "cs-9Q7w"),
    ("GET /oauth/callback?code={s}&state=af0ifjsldkj", "SplxlOBeZQQYbYS6WxSbIA"),
    ("GET /files/report.pdf?expires=1700000000&sig={s}", "b64sig%2Bvalue%3D"),
    ("GET /maps/api/geocode/json?address=Paris&key={s}", "mapskey-001122"),
    ("redirect to https://app.example.com/cb#access_token={s}&token_type=bearer", "ya29.a0Af"),
    ("GET /export?jwt={s}", "abc.def.ghi"),
    ("GET /ws?session={s}&v=2", "8c1f3bd1"),
    ("webhook rejected: signature={s}", "t=1492774577,v1=5257a869"),
    ("Stripe-Signature: {s}, retrying", "t=1492774577,v1=5257a869"),
    ("request to https://api.example.com/v1?access_token={s} timed out", "EAAGm0PX4ZCps"),
    ("S3 GET https://b.s3.amazonaws.com/k?X-Amz-Signature={s}&X-Amz-Expires=300", "fe5f80f7"),
    ('connection refused: "password": "{s}"', "correct horse battery"),
    ("settings: {'db_password': '{s}', 'pool': 5}", "p@ss w0rd!"),
    ('body={"user": "ann", "passwd": "{s}"}', "letmein99"),
    ('inner error: {\\"token\\": \\"{s}\\"}', "tok-77-aa"),
    ("User(name='ann', password='{s}')", "Tr0ub4dor&3"),
    ("form user[password]={s}&user[email]=ann@example.com", "hunter2"),
    ("Authorization: Bearer {s}", "eyJhbGciOiJIUzI1NiJ9"),
    ("retry with Authorization: token {s}", "ghp_short"),
    ("Proxy-Authorization: Basic {s}", "dXNlcjpwYXNz"),
    ("DB_PASSWORD = {s}", "s3cr3t-value"),
    ("smtp login as ops, SMTP_PASS={s}", "mailpass42"),
    ("sentry dsn: {s}", "https://publickey123@o1.ingest.sentry.io/42"),
    ("cannot connect to postgresql://app:{s}@db:5432/prod", "pg-Secret-9"),
    ("redis error at redis://:{s}@cache:6379/0", "redis-pw"),
    (
        "pushed to https://x-access-token:{s}@github.com/org/repo.git",
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
    ),
    ("Password: {s}", "letmein"),
    ("otp: {s}", "483920"),
    ("mfa check failed for pin={s}", "0000"),
    ("clientSecret={s}", "abcd-efgh"),
    ("X-Api-Key: {s}", "k-1234567890"),
    ("verify_token={s}", "fb-hub-verify"),
    ("code_verifier={s}", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
    # Shapes that give a token away without any name.
    (
        "rejected {s} as expired",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fw",
    ),
    ("cloned with {s}", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("slack said invalid_auth for {s}", "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"),
    ("boto3 used key id {s}", "AKIAIOSFODNN7EXAMPLE"),
    ("charge failed with {s}", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("geocoder key {s} over quota", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
    ("openai 401 for {s}", "sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
    (
        "loaded {s} from env",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
    ),
]

ORDINARY = [
    "Application startup complete.",
    "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
    '127.0.0.1:53122 - "GET /items/1?page=2&sort=name HTTP/1.1" 200',
    'HTTP Request: GET https://api.example.com/v1/users?page=2&per_page=50 "HTTP/1.1 200 OK"',
    "order 4711 shipped to warehouse eu-west-1 in 35 ms",
    "user ann logged in from 2001:db8::1 at 2026-11-29T06:23:34Z",
    "password: too short (min 12 characters)",
    "Invalid password: must contain a digit",
    "token: expired",
    "session: none",
    "token refreshed for user 42",
    "password reset email sent to ann@example.com",
    "the session store is redis; sessions expire after 30 minutes",
    "exit code: 1",
    "status code: 503, retrying in 2 s",
    "cache miss for key=user:42",
    "author=ann title=Dune shipping: free",
    "prompt_tokens=512 completion_tokens=128 total_tokens=640 max_tokens=1024",
    "token_type=bearer expires_in=3600",
    "password_length=8 is below the minimum",
    "cors_allow_credentials: any origin listed may send cookies",
    "Retry-After: 30",
    "Content-Type: application/json; charset=utf-8",
    "basic usage: python -m app --help",
    "Basic Authentication failed; bearer tokens are checked next",
    "authorization_url=https://auth.example.com/authorize",
    "GET /oauth/authorize?response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp",
    "GET /search?q=token+bucket&page=3",
    "GET /docs/secrets-management HTTP/1.1",
    "sqlalchemy.engine: SELECT users.id, users.name FROM users WHERE users.id = %(id_1)s",
    "payload={'id': 1, 'title': 'FastAPI in production', 'tags': ['asgi', 'json']}",
    '{"event": "deploy", "version": "1.4.2", "region": "eu-west-1", "ok": true}',
    'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n    main()',
    "KeyError: 'user_id'",
    "ValueError: invalid literal for int() with base 10: 'abc'",
    "disk usage at 91%: /var/lib/postgresql",
    "worker 1234 booted; timeout=30 keepalive=5",
    "ratio=0.75 (bare FastAPI = 1.00)",
    "passenger manifest: 3 passengers, 1 pet",
    "ping from 10.0.0.5: 0.4 ms",
    "desk-lamp-sku-00123 restocked",
]


def _deploy_check_messages() -> list[str]:
    """Every message the deploy check can write (they go to the logs as security events)."""
    from tests.test_deploy_check import UNSAFE_CONFIGURATIONS, unsafe

    findings = [
        finding
        for section, fields, _id, _level in UNSAFE_CONFIGURATIONS
        for finding in unsafe(section, **fields).deploy_check()
    ]
    assert {finding.id for finding in findings} >= {row[2] for row in UNSAFE_CONFIGURATIONS}
    return sorted(
        {text for finding in findings for text in (str(finding), finding.message, finding.fix)}
    )


@pytest.mark.parametrize(("template", "secret"), PLANTED)
def test_every_planted_secret_is_masked_and_nothing_else(template: str, secret: str) -> None:
    message = template.replace("{s}", secret)
    assert DEFAULT_REDACTOR.text(message) == template.replace("{s}", MASK)


@pytest.mark.parametrize("message", [*ORDINARY, *_deploy_check_messages()])
def test_ordinary_messages_are_left_alone(message: str) -> None:
    assert DEFAULT_REDACTOR.text(message) == message


@pytest.mark.parametrize(
    "name",
    [
        "code",
        "sig",
        "key",
        "signature",
        "client_secret",
        "access_token",
        "jwt",
        "session",
        "X-Amz-Signature",
        "id_token",
        "refresh_token",
        "auth",
    ],
)
def test_secret_query_parameters_are_masked_by_default(name: str) -> None:
    query = f"page=2&{name}=Zq8-planted&sort=name"
    assert DEFAULT_REDACTOR.query_string(query) == f"page=2&{name}={MASK}&sort=name"
    path = f"GET /cb?{query} HTTP/1.1"
    assert DEFAULT_REDACTOR.text(path) == f"GET /cb?page=2&{name}={MASK}&sort=name HTTP/1.1"


@pytest.mark.parametrize(
    "name",
    [
        "prompt_tokens",
        "max_tokens",
        "token_type",
        "token_expires_at",
        "password_length",
        "allow_credentials",
        "cors_allow_credentials",
        "session_cookie_name",
        "authorization_url",
        "author",
        "passenger",
        "shipping",
        "code",
        "key",
        "error_code",
    ],
)
def test_names_that_describe_a_secret_are_not_secret(name: str) -> None:
    assert not is_secret_key(name)


@pytest.mark.parametrize(
    "name", ["session_id", "basic_auth", "pin", "otp", "SMTP_PASS", "jwt", "x-auth-token"]
)
def test_more_secret_names(name: str) -> None:
    assert is_secret_key(name)


HOSTILE = {
    "near-JWTs": "-eyJa" * 40_000,
    "near-Slack tokens": "-xoxb-" * 33_000,
    "a scheme that never ends": "a." * 100_000 + "://x",
    "separators": "=" * 200_000,
    "pairs": "a:" * 100_000,
    "secret names": "password=" * 22_000,
    "quoted names": '"password": "' * 15_000,
    "query": "?" + "a=b&" * 50_000,
    "a long credential": "bearer " + "a" * 200_000 + "=",
    "private key headers": "-----BEGIN PRIVATE KEY-----" * 7_000,
}


def test_hostile_text_costs_linear_time() -> None:
    """200 KB of each near-miss is redacted in one pass, not one pass per start.

    Run in a child process with a generous bound: a quadratic pattern takes minutes on
    these inputs (the unbounded URL-scheme pattern took 9 s on a quarter of one).
    """
    script = (
        "import json, sys\n"
        "from fastapi_enterprise.redaction import DEFAULT_REDACTOR as r\n"
        "for text in json.loads(sys.stdin.read()).values():\n"
        "    r.text(text)\n"
        "    r.query_string(text)\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script],
        input=json.dumps(HOSTILE),
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
