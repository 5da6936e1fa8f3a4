"""``TecnoCursosSettings``: the library's settings plus the app's own sections.

Environment variables use the prefix ``TC_`` and ``__`` between a section and its field,
like the library's: ``TC_AUTH__ACCESS_TOKEN_TTL=600``, ``TC_DATABASE__URL=...``,
``TC_SECURITY__SECRET_KEY=...``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from fastapi_enterprise import AppSettings, DeployChecks, EnterpriseSettings, Environment
from fastapi_enterprise.deploy_check import Outcome, estimate_entropy_bits

__all__ = [
    "RATE_LIMIT_ZONES",
    "AISettings",
    "AuthSettings",
    "CacheSettings",
    "MediaSettings",
    "StorageSettings",
    "TecnoCursosAppSettings",
    "TecnoCursosSettings",
    "VideoSettings",
    "app_checks",
]

OWASP_ARGON2_MIN_MEMORY_KIB = 19 * 1024
"""OWASP's minimum Argon2id memory cost (19 MiB, with two iterations)."""

OWASP_ARGON2_MIN_TIME_COST = 2

app_checks: DeployChecks[TecnoCursosSettings] = DeployChecks()
"""The app's deploy-check rules; ``TecnoCursosSettings.deploy_check()`` runs them."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class AuthSettings(_Section):
    """Accounts: JWT access tokens, refresh tokens, password hashing and lockout."""

    jwt_secret: SecretStr | None = None
    """HMAC key for access tokens; ``security.secret_key`` when unset. Outside production,
    with neither set, a random key is made per process (tokens die with it)."""

    algorithm: Literal["HS256"] = "HS256"
    """The only JWT algorithm accepted: pinned, so ``none`` and RS/HS confusion fail."""

    issuer: str = "tecnocursos"
    """The ``iss`` claim written into and required from access tokens."""

    access_token_ttl: timedelta = timedelta(minutes=15)
    """Lifetime of an access token (seconds, or an ISO 8601 duration such as ``PT15M``)."""

    refresh_token_ttl: timedelta = timedelta(days=14)
    """Lifetime of a refresh token; each use rotates it (the family keeps its origin)."""

    max_failed_logins: int = Field(default=5, ge=1)
    """Failed logins within ``failure_window`` that lock the account."""

    failure_window: timedelta = timedelta(minutes=15)
    """Failures older than this are forgotten."""

    lockout_duration: timedelta = timedelta(minutes=15)
    """How long a locked account refuses logins (answered 429 with ``Retry-After``)."""

    password_min_length: int = Field(default=12, ge=8)
    """Shortest password accepted at registration (NIST SP 800-63B: length, no rules)."""

    argon2_time_cost: int | None = Field(default=None, ge=1)
    """Argon2id iterations; by environment: 1 in ``test``, 3 otherwise."""

    argon2_memory_cost: int | None = Field(default=None, ge=1024)
    """Argon2id memory in KiB; by environment: 8 MiB in ``test``, 64 MiB otherwise."""

    @field_validator(
        "access_token_ttl",
        "refresh_token_ttl",
        "failure_window",
        "lockout_duration",
        mode="before",
    )
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        # An environment variable is a string: read "600" as seconds, like a number.
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value


MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for a multipart envelope (boundaries, part headers, ``project_id``) around a file."""


class MediaSettings(_Section):
    """Media uploads: size limits, accepted types (detected from the bytes), quota."""

    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    """Largest image upload."""

    max_audio_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    """Largest audio upload."""

    allowed_image_types: list[str] = Field(
        default_factory=lambda: ["image/png", "image/jpeg", "image/gif", "image/webp"]
    )
    """Image types accepted, as detected from the file's magic bytes."""

    allowed_audio_types: list[str] = Field(
        default_factory=lambda: ["audio/mpeg", "audio/wav", "audio/ogg", "audio/flac", "audio/mp4"]
    )
    """Audio types accepted, as detected from the file's magic bytes."""

    user_quota_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    """Total media a user may store."""

    def upload_body_limit(self) -> int:
        """The request body limit of ``POST /media``: the largest file plus its envelope."""
        return max(self.max_image_bytes, self.max_audio_bytes) + MULTIPART_OVERHEAD_BYTES


class StorageSettings(_Section):
    """Where uploaded media is stored."""

    backend: Literal["local"] = "local"
    """The storage backend; ``local`` writes to ``local_dir``."""

    local_dir: Path = Path("media")
    """Directory of the local backend (absolute in production)."""


class AISettings(_Section):
    """AI providers for video generation (issue 15); keys are secrets, never logged."""

    openai_api_key: SecretStr | None = None
    """OpenAI API key (scripts and narration)."""

    elevenlabs_api_key: SecretStr | None = None
    """ElevenLabs API key (voices)."""

    did_api_key: SecretStr | None = None
    """D-ID API key (avatars)."""

    request_timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for a provider's answer."""

    tts_provider: Literal["local", "silent", "elevenlabs"] = "local"
    """Narration: ``local`` is espeak-ng when installed, else silence with captions;
    ``silent`` forces captions; ``elevenlabs`` needs ``elevenlabs_api_key`` and a voice."""

    avatar_provider: Literal["none", "d-id"] = "none"
    """Avatars: ``none`` (the local default), or ``d-id`` (``did_api_key``, ``did_source_url``)."""

    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    """ElevenLabs API root (a gateway or a test server in tests)."""

    elevenlabs_model: str = "eleven_multilingual_v2"
    """ElevenLabs ``model_id``; the multilingual models speak Portuguese."""

    elevenlabs_voice: str | None = None
    """The default ElevenLabs voice ID."""

    elevenlabs_voices: dict[str, str] = Field(default_factory=dict)
    """Voice IDs by language (``{"pt": "...", "en": "..."}``), before the default."""

    did_base_url: str = "https://api.d-id.com"
    """D-ID API root."""

    did_source_url: str | None = None
    """The presenter's picture D-ID animates (a URL it can fetch)."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts per provider request (429, 5xx, connection errors and timeouts are retried)."""

    max_retry_delay: float = Field(default=30.0, ge=0)
    """Longest wait between attempts, even when ``Retry-After`` asks for more."""

    breaker_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open a provider's circuit breaker."""

    breaker_cooldown: float = Field(default=60.0, ge=0)
    """Seconds an open breaker refuses calls before one trial call (half-open)."""


class VideoSettings(_Section):
    """Video generation: the job queue, the worker's leases, retries and limits."""

    queue: Literal["embedded", "redis"] = "embedded"
    """``embedded``: the app renders in its own process (a worker thread; for the demo and
    development, refused in production); ``redis``: jobs go through dramatiq's Redis broker
    on ``broker_url`` (else ``redis.url``) to ``python -m tecnocursos.videos.worker``
    processes."""

    broker_url: SecretStr | None = None
    """The queue's Redis (``redis://host:6379/0``); ``redis.url`` when unset. Give the
    queue a Redis of its own in production (``noeviction``, persistence): ``redis.url``
    also holds the cache, whose Redis evicts keys under memory pressure."""

    namespace: str = Field(default="tecnocursos", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The broker's key prefix in Redis (one per deployment sharing a Redis)."""

    lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    """A claimed job is the worker's until this long after its last heartbeat; past it,
    the reconciler gives the job to another worker."""

    heartbeat_seconds: float = Field(default=10.0, gt=0, le=600)
    """Seconds between a running job's heartbeats (progress, cancellation, lease)."""

    reconcile_seconds: float = Field(default=15.0, gt=0, le=3600)
    """Seconds between the reconciler's passes (expired leases, lost messages, gauges)."""

    requeue_after_seconds: float = Field(default=600.0, gt=0)
    """A due job whose message has gone this long unclaimed is sent again (Redis lost it,
    or the worker that took it stopped before claiming). A job whose first send failed
    (Redis down) is sent at the reconciler's next pass. Each resend of a job that merely
    waits behind others is a no-op message: keep this well above the usual wait."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts per job; a failed attempt is retried until this many have run."""

    retry_backoff_seconds: float = Field(default=10.0, ge=0, le=3600)
    """Wait before the second attempt; doubled for each further one."""

    time_limit_seconds: float = Field(default=3600.0, gt=0)
    """Longest a whole render may run (above the longest expected video)."""

    scene_timeout_seconds: float = Field(default=300.0, gt=0)
    """Longest one scene's speech or ffmpeg run may take."""

    max_scenes: int = Field(default=200, ge=1, le=10_000)
    """Scenes a video may have; a longer project is refused with a 422 problem."""

    max_active_per_user: int = Field(default=3, ge=1, le=1000)
    """Queued or running jobs one user may have; more answer 429."""

    progress_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    """How often the live-progress stream reads the job row."""

    worker_metrics_port: int | None = Field(default=9191, ge=1, le=65535)
    """Port of the worker process's ``/metrics`` (``None``, or an empty
    ``TC_VIDEO__WORKER_METRICS_PORT``: not served)."""

    worker_metrics_host: str = "127.0.0.1"
    """Address the worker's ``/metrics`` listens on (``0.0.0.0`` in a container)."""

    @field_validator("worker_metrics_port", mode="before")
    @classmethod
    def _empty_port_is_none(cls, value: Any) -> Any:
        # The worker is configured by its environment, where None can only be spelled "".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> VideoSettings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError("video.heartbeat_seconds must be at most half of lease_seconds")
        return self


class CacheSettings(_Section):
    """The read-through cache of the hot reads (project lists and details, scene lists)."""

    backend: Literal["memory", "redis"] = "memory"
    """``memory``: per process, bounded; ``redis``: shared, on the ``redis`` section's URL
    (``TC_REDIS__URL``) through the library's ``create_redis()``."""

    prefix: str = Field(default="tc-cache", min_length=1, max_length=64)
    """Prefix of every Redis key, so apps can share a database."""

    memory_max_entries: int = Field(default=10_000, ge=10)
    """Entries the memory backend keeps (least recently used evicted first)."""

    project_list_ttl: int = Field(default=30, ge=1)
    """Seconds a page of ``GET /projects`` stays cached (per viewer)."""

    project_ttl: int = Field(default=300, ge=1)
    """Seconds a ``GET /projects/{project_id}`` stays cached."""

    scene_list_ttl: int = Field(default=60, ge=1)
    """Seconds a page of ``GET /projects/{project_id}/scenes`` stays cached."""

    max_cached_page: int = Field(default=3, ge=1)
    """Only the first pages of lists are cached; later ones always read the database."""


# --8<-- [start:zones]
RATE_LIMIT_ZONES: dict[str, str] = {
    "/auth/register": "5/second",
    "/auth/token": "5/second",
    "/auth/refresh": "5/second",
    "/auth/logout": "5/second",
    "POST /media": "2/second",
    "POST /projects/{project_id}/videos": "1/second",
}
"""The original deployment's nginx zones as per-route budgets (``rate_limit.routes``).

``api`` (10 r/s) is the default of every other route; ``auth`` (5 r/s) covers ``/auth/*``;
``uploads`` (2 r/s) is ``POST /media`` (the upload only: a method key, so other methods
of the route keep the default); ``video`` (1 r/s) is ``POST /projects/{project_id}/videos``."""

RATE_LIMIT_DEFAULT = "10/second"
"""nginx's ``api`` zone: the budget of every route without its own."""
# --8<-- [end:zones]


class TecnoCursosAppSettings(AppSettings):
    """The library's ``app`` section with the app's name as its default.

    A default on the field rather than a ``default_factory`` on the section: any
    ``TC_APP__*`` variable builds the section anew, and would otherwise reset the name.
    """

    name: str = Field("TecnoCursos", min_length=1, max_length=200)
    """Application name; the OpenAPI title."""


# --8<-- [start:settings]
class TecnoCursosSettings(EnterpriseSettings):
    """The library's settings (``TC_`` prefix) plus ``auth``, ``media``, ``storage``, ``ai``.

    Example:
        ```python
        settings = TecnoCursosSettings(environment="test", database={"url": "sqlite://"})
        ```
    """

    # Secret files as Docker and Kubernetes mount them (deploy/compose.yaml): one file per
    # variable, named like it (``tc_security__secret_key``); a missing directory is fine.
    model_config = SettingsConfigDict(env_prefix="TC_", secrets_dir="/run/secrets")

    app: TecnoCursosAppSettings = Field(default_factory=TecnoCursosAppSettings)
    """The application: name, version, debug, docs."""

    auth: AuthSettings = Field(default_factory=AuthSettings)
    """Accounts: tokens, password hashing, lockout."""

    media: MediaSettings = Field(default_factory=MediaSettings)
    """Media upload limits and types."""

    storage: StorageSettings = Field(default_factory=StorageSettings)
    """Media storage."""

    ai: AISettings = Field(default_factory=AISettings)
    """AI service providers."""

    cache: CacheSettings = Field(default_factory=CacheSettings)
    """The read-through cache."""

    video: VideoSettings = Field(default_factory=VideoSettings)
    """Video generation: queue, worker leases, retries."""
    # --8<-- [end:settings]

    _app_environment_defaults: ClassVar[dict[Environment, dict[str, Any]]] = {
        Environment.DEVELOPMENT: {"auth.argon2_time_cost": 3, "auth.argon2_memory_cost": 65536},
        # Tests hash hundreds of passwords: cheap parameters keep the suite fast.
        Environment.TEST: {"auth.argon2_time_cost": 1, "auth.argon2_memory_cost": 8192},
        Environment.STAGING: {"auth.argon2_time_cost": 3, "auth.argon2_memory_cost": 65536},
        Environment.PRODUCTION: {"auth.argon2_time_cost": 3, "auth.argon2_memory_cost": 65536},
    }

    @model_validator(mode="after")
    def _apply_app_environment_defaults(self) -> TecnoCursosSettings:
        for dotted, default in self._app_environment_defaults[self.environment].items():
            section_name, name = dotted.split(".")
            section = getattr(self, section_name)
            if getattr(section, name) is None:
                setattr(section, name, default)
        # Uploads get the body limit their media limits need, through the library's
        # per-route limits (413 before a byte is read when Content-Length is larger),
        # unless TC_BODY_LIMIT__ROUTES sets one for "/media" explicitly.
        self.body_limit.routes.setdefault("/media", self.media.upload_body_limit())
        # The nginx zones, in every environment, unless TC_RATE_LIMIT__DEFAULT or a
        # template in TC_RATE_LIMIT__ROUTES says otherwise.
        if "default" not in self.rate_limit.model_fields_set:
            self.rate_limit.default = RATE_LIMIT_DEFAULT
        for template, limit in RATE_LIMIT_ZONES.items():
            self.rate_limit.routes.setdefault(template, limit)
        return self

    deploy_checks: ClassVar[DeployChecks[Any] | None] = app_checks
    """The app's deploy-check rules (``tecnocursos.*``), run after the library's."""

    def jwt_key(self) -> str | None:
        """The access tokens' HMAC key: ``auth.jwt_secret``, else ``security.secret_key``."""
        secret = self.auth.jwt_secret or self.security.secret_key
        return None if secret is None else secret.get_secret_value()


# --8<-- [start:deploy-rule]
@app_checks.register(
    "tecnocursos.auth.jwt_secret_weak",
    "error",
    ["auth.jwt_secret"],
    "an access-token key under 32 characters or 128 bits of entropy",
    "Set TC_AUTH__JWT_SECRET to `python -c 'import secrets; print(secrets.token_urlsafe(48))'`, "
    "or unset it to use security.secret_key.",
)
def _jwt_secret_weak(settings: TecnoCursosSettings) -> Outcome:
    secret = settings.auth.jwt_secret
    if secret is None:
        return None
    value = secret.get_secret_value()
    if len(value) < 32 or estimate_entropy_bits(value) < 128:
        return (
            "auth.jwt_secret is under 32 characters or 128 bits of entropy: "
            "access tokens could be forged."
        )
    return None


# --8<-- [end:deploy-rule]


@app_checks.register(
    "tecnocursos.auth.password_hashing_weak",
    "error",
    ["auth.argon2_time_cost", "auth.argon2_memory_cost"],
    "Argon2 parameters below OWASP's minimum",
    "Unset both to get the production defaults (3 iterations, 64 MiB).",
)
def _password_hashing_weak(settings: TecnoCursosSettings) -> Outcome:
    time_cost = settings.auth.argon2_time_cost or 0
    memory_cost = settings.auth.argon2_memory_cost or 0
    if time_cost < OWASP_ARGON2_MIN_TIME_COST or memory_cost < OWASP_ARGON2_MIN_MEMORY_KIB:
        return (
            "auth.argon2_time_cost or auth.argon2_memory_cost is below OWASP's "
            "minimum (2 iterations, 19 MiB)."
        )
    return None


@app_checks.register(
    "tecnocursos.storage.relative_dir",
    "warning",
    ["storage.local_dir"],
    "a relative media directory",
    "Set TC_STORAGE__LOCAL_DIR to an absolute path on a persistent volume.",
)
def _storage_relative_dir(settings: TecnoCursosSettings) -> Outcome:
    if settings.storage.local_dir.is_absolute():
        return None
    return "storage.local_dir is relative: media lands wherever the server starts."


@app_checks.register(
    "tecnocursos.video.embedded_queue",
    "error",
    ["video.queue"],
    "videos rendered inside the API processes",
    "Set TC_VIDEO__QUEUE=redis and run `python -m tecnocursos.videos.worker` beside the app.",
)
def _video_embedded_queue(settings: TecnoCursosSettings) -> Outcome:
    if settings.video.queue == "redis":
        return None
    return (
        "video.queue is embedded: renders run in the API processes, compete with requests "
        "for the CPU and die with each restart."
    )
