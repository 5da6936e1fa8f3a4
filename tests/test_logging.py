"""configure_logging(): one JSON line per record, request context, no secrets, no forgery."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_enterprise import (
    EnterpriseSettings,
    bind_request,
    configure_logging,
    continue_request,
    get_request_id,
    install,
)
from fastapi_enterprise._log_pipeline import LoggingHandle, _Writer
from fastapi_enterprise.log_config import (
    _direct_handler,
    _Formatter,
    _Sanitize,
    escape_control_characters,
    log_losses,
)
from tests.conftest import LogCapture

SECRET = "hunter2-Zq8-secret"


def settings(**logging_options: Any) -> EnterpriseSettings:
    return EnterpriseSettings(environment="test", logging=logging_options)


def test_structlog_and_stdlib_share_one_json_format(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    structlog.get_logger("app.orders").info("order.created", order_id=7)
    logging.getLogger("sqlalchemy.engine").warning("pool %s exhausted", "main")
    native, foreign = logs.lines()
    assert native["event"] == "order.created"
    assert native["order_id"] == 7
    assert native["level"] == "info"
    assert native["logger"] == "app.orders"
    assert foreign == {
        "event": "pool main exhausted",
        "level": "warning",
        "logger": "sqlalchemy.engine",
        "timestamp": foreign["timestamp"],
    }
    stamp = datetime.fromisoformat(native["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timezone.utc.utcoffset(None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", native["timestamp"])
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60
    assert foreign["timestamp"] >= native["timestamp"]  # same clock, same format


def test_lines_during_a_request_carry_request_id_and_route(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings(access_log=False))
    app = FastAPI()

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        structlog.get_logger("app").info("looking up")
        logging.getLogger("app.stdlib").info("stdlib too")
        return {"id": order_id}

    install(app, settings(access_log=False))
    response = TestClient(app).get("/orders/5", headers={"X-Request-ID": "req-0000-0001"})
    assert response.status_code == 200
    lines = [line for line in logs.lines() if line["event"] in {"looking up", "stdlib too"}]
    assert len(lines) == 2
    for line in lines:
        assert line["request_id"] == "req-0000-0001"
        assert line["route"] == "/orders/{order_id}"
        assert line["client_ip"] == "testclient"
    structlog.get_logger("app").info("after the request")
    assert "request_id" not in logs.lines()[-1]


def test_work_a_request_started_carries_its_id_elsewhere(capture_logs: Any) -> None:
    """A job on a worker logs under the ID of the request that queued it."""
    logs: LogCapture = capture_logs(settings())
    with continue_request("req-0000-0042", job_id=9):
        assert get_request_id() == "req-0000-0042"
        structlog.get_logger("worker").info("job.started")
        logging.getLogger("worker.stdlib").info("stdlib too")
    with pytest.raises(RuntimeError), continue_request("req-0000-0043"):
        raise RuntimeError("the job failed")
    assert get_request_id() is None
    structlog.get_logger("worker").info("job.done")
    started, stdlib, done = logs.lines()
    for line in (started, stdlib):
        assert (line["request_id"], line["job_id"]) == ("req-0000-0042", 9)
    assert "request_id" not in done
    assert "job_id" not in done
    with continue_request(None, job_id=10):
        assert get_request_id() is None
    for hostile in ("short", "x" * 129, "req 0000 0001", "req-0000-0001\nforged=1"):
        with pytest.raises(ValueError, match="not a valid request ID"), continue_request(hostile):
            pass


def test_secrets_are_redacted_in_app_events(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    log = structlog.get_logger("app")
    log.info(
        "login",
        user={"name": "ann", "Password": SECRET, "profile": {"api_key": SECRET}},
        headers={"Authorization": f"Bearer {SECRET}", "Accept": "json"},
        note=f"connecting to postgresql://app:{SECRET}@db/prod",
        session_id=SECRET,
    )
    logging.getLogger("lib").error("cannot reach redis://:%s@cache:6379/0", SECRET)
    text = logs.text()
    assert SECRET not in text
    first = logs.lines()[0]
    assert first["user"]["name"] == "ann"
    assert first["user"]["Password"] == "**********"
    assert first["headers"]["Accept"] == "json"
    assert "postgresql://app:**********@db/prod" in first["note"]
    assert first["session_id"] == "**********"


def test_free_text_secrets_and_numeric_secrets_are_masked_in_lines(capture_logs: Any) -> None:
    """Pairs after prose, numbers under secret names, and counts that only look secret."""
    logs: LogCapture = capture_logs(settings())
    logging.getLogger("app.auth").warning("login failed: password=%s", SECRET)
    logging.getLogger("app.http").error("upstream error: token=%s", SECRET)
    structlog.get_logger("app").info(
        "mfa", otp=483920, pin="0000", prompt_tokens=512, total_tokens=640, token_type="bearer"
    )
    text = logs.text()
    assert SECRET not in text
    assert "483920" not in text
    first, second, third = logs.lines()
    assert first["event"] == "login failed: password=**********"
    assert second["event"] == "upstream error: token=**********"
    assert (third["otp"], third["pin"]) == ("**********", "**********")
    assert (third["prompt_tokens"], third["total_tokens"]) == (512, 640)
    assert third["token_type"] == "bearer"


def test_a_secret_straddling_the_cut_is_still_masked(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings(max_field_length=64))
    note = "x" * 50 + f" password={SECRET} and then a great deal more text " * 1000
    structlog.get_logger("app").info("long", note=note)
    (line,) = logs.lines()
    assert "hunter" not in line["note"]
    assert line["note"].startswith("x" * 50 + " password=**")
    assert line["note"].endswith(f"...[{len(note) - 64} more characters]")


def test_remembered_clean_strings_stay_clean_and_bounded(capture_logs: Any) -> None:
    """Repeated strings come from the sanitizer's memory, masked the same every time.

    A flood of distinct strings cannot grow that memory without bound.
    """
    logs: LogCapture = capture_logs(settings(max_field_length=64))
    log = structlog.get_logger("app")
    dirty, long = f"retrying with token={SECRET}", "x" * 100
    for _ in range(3):
        log.info("call", note=dirty, padding=long)
    for n in range(5000):
        log.info("flood", note=f"value {n}")
    log.info("call", note=dirty, padding=long)
    assert SECRET not in logs.text()
    calls = logs.events("call")
    assert len(calls) == 4
    assert {line["note"] for line in calls} == {"retrying with token=**********"}
    assert {line["padding"] for line in calls} == {"x" * 64 + "...[36 more characters]"}
    handler = logs.handle._handler
    assert handler is not None
    assert isinstance(handler.renderer, _Formatter)
    sanitize = next(p for p in handler.renderer.chain if isinstance(p, _Sanitize))
    assert 0 < len(sanitize._clean) <= _Sanitize._CACHE_SIZE


def test_exception_traceback_is_structured_without_locals(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())

    def login() -> None:
        password = SECRET  # a local the traceback must not show
        raise ValueError(f"bad DSN postgresql://u:{password}@h/db")

    try:
        login()
    except ValueError:
        structlog.get_logger("app").exception("login failed")
    line = logs.lines()[0]
    assert SECRET not in logs.text()
    (exception,) = line["exception"]
    assert exception["exc_type"] == "ValueError"
    assert "postgresql://u:**********@h/db" in exception["exc_value"]
    assert all("locals" not in frame for frame in exception["frames"])
    assert exception["frames"][-1]["name"] == "login"


def test_oversized_values_are_cut(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings(max_field_length=100))
    structlog.get_logger("app").info("big", blob="x" * 100_000, nested={"inner": "y" * 5000})
    line = logs.lines()[0]
    assert len(logs.text()) < 1000
    assert line["blob"].startswith("x" * 100)
    assert line["blob"].endswith("...[99900 more characters]")
    assert line["nested"]["inner"].endswith("...[4900 more characters]")


FORGERIES = [
    "line\nbreak",
    "cr\rreturn",
    "nul\x00byte",
    "ansi\x1b[31mred\x1b[0m",
    'fake"}\n{"level":"critical","event":"forged',
    "unicode\u2028separator\u2029and\x85nel",
]


def test_control_characters_never_split_a_json_line(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    log = structlog.get_logger("app")
    for value in FORGERIES:
        log.info(value, field=value, **{f"key{value}": 1})
        logging.getLogger("lib").warning("stdlib %s", value)
    text = logs.text()
    assert len(text.splitlines()) == 2 * len(FORGERIES)
    assert len(text.split("\n")) == 2 * len(FORGERIES) + 1
    for line in logs.lines():
        assert line["level"] in {"info", "warning"}
        assert "forged" not in line.get("event", "") or line["event"].startswith(("fake", "stdlib"))


def test_console_format_escapes_control_characters_and_indents_tracebacks() -> None:
    stream = io.StringIO()
    handle = configure_logging(EnterpriseSettings(), stream=stream)  # development: console
    try:
        log = structlog.get_logger("app")
        for value in FORGERIES:
            log.info("event", field=value)
        try:
            raise RuntimeError("boom\n2026-01-01 [critical ] forged record")
        except RuntimeError:
            log.exception("failed")
        assert handle.flush()
    finally:
        handle.stop()
        structlog.reset_defaults()
    lines = stream.getvalue().splitlines()
    record_lines = [line for line in lines if not line.startswith("    | ")]
    assert len(record_lines) == len(FORGERIES) + 1
    assert "\x1b" not in stream.getvalue()  # not a terminal: no colours, and no raw ANSI
    assert "ansi\\x1b[31mred\\x1b[0m" in stream.getvalue()  # shown, escaped
    assert any("forged record" in line and line.startswith("    | ") for line in lines)


class Terminal(io.StringIO):
    """A stream that says it is a terminal: the console renderer colours its output."""

    def isatty(self) -> bool:
        return True


HOSTILE_AGENT = "evil\x1b[2J\x1b]0;pwned\x07\x9b31m\x1bc"


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()], ids=["pipe", "terminal"])
def test_a_hostile_user_agent_sends_no_escape_to_the_console(stream: io.StringIO) -> None:
    """Clear-screen, set-title, C1 CSI and reset sequences arrive escaped, never raw.

    On a terminal the renderer adds colour sequences of its own; none of the hostile ones
    may appear.
    """
    handle = configure_logging(EnterpriseSettings(), stream=stream)  # development: console
    try:
        client = TestClient(access_app({}))
        agent = HOSTILE_AGENT.encode("latin-1")
        assert client.get("/orders/1", headers={b"user-agent": agent}).status_code == 200
        assert handle.flush()
    finally:
        handle.stop()
        structlog.reset_defaults()
    text = stream.getvalue()
    (line,) = [line for line in text.splitlines() if "http.request" in line]
    for shown in ("evil\\x1b[2J", "\\x1b]0;pwned\\x07", "\\x9b31m", "\\x1bc"):
        assert shown in line  # visible, escaped
    for raw in ("\x1b[2J", "\x1b]", "\x07", "\x9b", "\x1bc"):
        assert raw not in text
    if isinstance(stream, Terminal):
        assert "\x1b[" in text  # coloured: the check above ran against real escapes
    else:
        assert "\x1b" not in text


def test_escape_control_characters() -> None:
    assert escape_control_characters("a\r\nb\x1b\u2028") == "a\\x0d\\x0ab\\x1b\\u2028"
    assert escape_control_characters("a\nb\tc", keep_newlines=True) == "a\nb\\x09c"


def test_level_and_uvicorn_loggers(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings(level="WARNING"))
    logging.getLogger("uvicorn.error").warning("server says")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    logging.getLogger("app").info("too quiet")
    assert [line["event"] for line in logs.lines()] == ["server says"]
    assert logging.getLogger("uvicorn").handlers == []


def test_uvicorn_access_lines_can_be_kept(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings(uvicorn_access_log=True))
    logging.getLogger("uvicorn.access").info("GET / 200")
    assert [line["event"] for line in logs.lines()] == ["GET / 200"]


def test_event_sampling_keeps_warnings(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings(event_sample_rates={"cache.hit": 0.1}))
    log = structlog.get_logger("cache")
    for _ in range(5):
        log.info("cache.hit")  # chance() is 0.5 >= 0.1: dropped
        log.warning("cache.hit")
        log.info("cache.miss")
    events = [(line["event"], line["level"]) for line in logs.lines()]
    assert events == [("cache.hit", "warning"), ("cache.miss", "info")] * 5


def access_app(options: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        bind_request(customer="c-42", name="shadows a LogRecord attribute")
        return {"id": order_id}

    install(app, settings(**options))
    return app


def test_access_lines_are_the_same_rendered_directly_or_from_records(
    capture_logs: Any,
) -> None:
    """One line, whichever way it is rendered.

    The pipeline renders access lines without a LogRecord when it is the only listener;
    a filter anywhere on the way brings records back.
    """
    logs: LogCapture = capture_logs(settings())
    client = TestClient(access_app({}))
    access = logging.getLogger("fastapi_enterprise.access")
    url, headers = "/orders/7?q=shoes&token=" + SECRET, {"User-Agent": "ua\x1b[2J"}
    root = logging.getLogger()
    pytest_handlers = [h for h in root.handlers if h is not logs.handle._handler]
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return True

    for handler in pytest_handlers:  # pytest's own capture handlers listen too
        root.removeHandler(handler)
    try:
        assert _direct_handler(access) is not None
        assert client.get(url, headers=headers).status_code == 200
        access.addFilter(keep)
        assert _direct_handler(access) is None
        assert client.get(url, headers=headers).status_code == 200
    finally:
        access.removeFilter(keep)
        for handler in pytest_handlers:
            root.addHandler(handler)
    assert len(seen) == 1
    direct, from_record = logs.events("http.request")
    varying = {"duration_ms", "request_id", "timestamp"}
    assert list(direct) == list(from_record)  # same fields, same order
    assert {k: v for k, v in direct.items() if k not in varying} == {
        k: v for k, v in from_record.items() if k not in varying
    }
    assert direct["path"] == "/orders/7?q=shoes&token=**********"
    assert direct["user_agent"] == "ua\x1b[2J"
    assert direct["customer"] == "c-42"
    assert direct["name_"] == "shadows a LogRecord attribute"
    assert direct["request_id"] != from_record["request_id"]
    assert SECRET not in logs.text()


def test_access_lines_follow_event_sampling(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings(event_sample_rates={"http.request": 0.1}))
    client = TestClient(access_app({}))
    for _ in range(3):
        assert client.get("/orders/1").status_code == 200  # chance() 0.5 >= 0.1: dropped
        assert client.get("/orders/x").status_code == 422  # warnings are always kept
    assert [line["status"] for line in logs.events("http.request")] == [422] * 3


def test_reconfiguring_replaces_the_previous_pipeline(capture_logs: Any) -> None:
    first: LogCapture = capture_logs(settings())
    second: LogCapture = capture_logs(settings())
    structlog.get_logger("app").info("only once")
    assert first.text() == ""
    assert len(second.lines()) == 1
    second.handle.stop()
    second.handle.stop()  # idempotent


def test_other_root_handlers_are_kept_unless_replaced(capture_logs: Any) -> None:
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)
    capture_logs(settings())
    assert other in logging.getLogger().handlers
    handle = configure_logging(settings(), stream=io.StringIO(), replace_handlers=True)
    try:
        assert other not in logging.getLogger().handlers
    finally:
        handle.stop()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/dev/full", id="full-disk"),
        pytest.param("/proc/version", id="unwritable-file"),
    ],
)
def test_failing_log_file_does_not_stop_the_app(capture_logs: Any, capsys: Any, path: str) -> None:
    logs: LogCapture = capture_logs(settings(file_path=path))
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"ok": "yes"}

    install(app, settings(file_path=path))
    client = TestClient(app)
    for _ in range(20):
        assert client.get("/").status_code == 200
    assert len(logs.events("http.request")) == 20  # stdout still gets every line
    assert logs.handle.write_errors >= 1
    assert capsys.readouterr().err.count("failed to write a log record") == 1


class BlockingStream(io.StringIO):
    """A stream whose writes block until released: a stuck disk or pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(timeout=10)
        return super().write(text)


def test_full_queue_drops_and_counts_instead_of_blocking() -> None:
    stream = BlockingStream()
    handle = configure_logging(settings(queue_size=5), stream=stream)
    try:
        log = structlog.get_logger("app")
        for n in range(100):
            log.info("burst", n=n)  # returns at once although the writer is stuck
        # At most one batch (the queue's worth plus one) reached the stuck writer and at
        # most a queue's worth waits: everything else was dropped, and counted.
        assert handle.dropped >= 100 - (2 * 5 + 1)
        stream.release.set()
        assert handle.flush()
    finally:
        stream.release.set()
        handle.stop()
        structlog.reset_defaults()
    written = [json.loads(line) for line in stream.getvalue().splitlines()]
    bursts = [line for line in written if line["event"] == "burst"]
    # Every burst record was either written or counted as dropped (a stray record from
    # another thread of the test process may add to either side, never take away).
    assert len(bursts) + handle.dropped >= 100
    assert len(bursts) <= 2 * 5 + 1


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_writer_wakes_for_errors_and_a_filling_queue(monkeypatch: Any) -> None:
    """Routine lines wait for the writer's own schedule; errors and bursts do not."""
    monkeypatch.setattr(_Writer, "WRITE_INTERVAL", 3600.0)
    stream = io.StringIO()
    handle = configure_logging(settings(queue_size=40), stream=stream)  # wakes at 10 queued
    try:
        log = structlog.get_logger("app")
        log.info("routine")
        time.sleep(0.2)
        assert stream.getvalue() == ""  # not written yet: nothing woke the writer
        log.error("failure")
        assert wait_until(lambda: "failure" in stream.getvalue())
        assert "routine" in stream.getvalue()  # written in the same batch, in order
        for n in range(10):
            log.info("burst", n=n)
        assert wait_until(lambda: stream.getvalue().count("burst") == 10)
        log.info("last")
        assert handle.flush()
        assert stream.getvalue().splitlines()[-1].startswith('{"event":"last"')
    finally:
        handle.stop()
        structlog.reset_defaults()


def test_concurrent_writers_lose_and_tangle_nothing(tmp_path: Any) -> None:
    """Eight threads log at once, to a stream and a rotating file.

    Every line arrives whole and once, across rotations, in each thread's order.
    """
    path = tmp_path / "app.log"
    stream = io.StringIO()
    handle = configure_logging(
        settings(
            queue_size=100_000,
            file_path=str(path),
            file_max_bytes=200_000,
            file_backup_count=100,
        ),
        stream=stream,
    )
    try:

        def burst(thread: int) -> None:
            log = structlog.get_logger("app")
            for n in range(2000):
                log.info("line", thread=thread, n=n)

        threads = [threading.Thread(target=burst, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert handle.flush(timeout=30)
    finally:
        handle.stop()
        structlog.reset_defaults()
    assert handle.dropped == 0
    parts = sorted(  # app.log.N is older the larger N is; app.log is the newest
        tmp_path.glob("app.log*"),
        key=lambda part: -int(part.name.removeprefix("app.log").lstrip(".") or 0),
    )
    assert len(parts) > 5  # it rotated, several times
    file_text = "".join(part.read_text() for part in parts)
    for text in (stream.getvalue(), file_text):
        lines = [json.loads(line) for line in text.splitlines()]
        seen = [(line["thread"], line["n"]) for line in lines if line["event"] == "line"]
        assert len(seen) == 16_000
        for index in range(8):
            assert [n for t, n in seen if t == index] == list(range(2000))


def test_stop_gives_up_on_a_stuck_output(monkeypatch: Any) -> None:
    monkeypatch.setattr(LoggingHandle, "STOP_TIMEOUT", 0.2)
    stream = BlockingStream()
    handle = configure_logging(settings(queue_size=5), stream=stream)
    try:
        log = structlog.get_logger("app")
        for n in range(20):
            log.error("stuck", n=n)
        started = time.monotonic()
        handle.stop()  # the writer is blocked in write(): stop must still return
        assert time.monotonic() - started < 5
        assert handle._handler not in logging.getLogger().handlers
    finally:
        stream.release.set()
        structlog.reset_defaults()


def test_syslog_output(capture_logs: Any) -> None:
    import socket

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    try:
        logs: LogCapture = capture_logs(
            settings(syslog_address=f"127.0.0.1:{port}", syslog_facility="local0")
        )
        structlog.get_logger("app").warning("to syslog", n=1)
        assert logs.handle.flush()
        datagram = receiver.recv(65536).decode()
    finally:
        receiver.close()
    priority = re.match(r"<(\d+)>", datagram)
    assert priority is not None
    assert int(priority.group(1)) == 16 * 8 + 4  # local0.warning
    assert json.loads(datagram[priority.end() :].rstrip("\x00"))["event"] == "to syslog"


def test_rotation_counts_bytes_and_never_rotates_an_empty_file(
    capture_logs: Any, tmp_path: Any
) -> None:
    path = tmp_path / "app.log"
    logs: LogCapture = capture_logs(
        settings(file_path=str(path), file_max_bytes=1024, file_backup_count=3)
    )
    log = structlog.get_logger("app")
    log.info("huge", pad="x" * 3000)  # longer than max_bytes on its own
    for n in range(20):
        log.info("accented", n=n, pad="é" * 40)  # 80 bytes of padding, 40 characters
    assert logs.handle.flush()
    logs.handle.stop()
    files = sorted(tmp_path.glob("app.log*"))
    assert [file.name for file in files] == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    contents = {file.name: file.read_bytes() for file in files}
    assert all(contents.values()), "an empty file was rotated"
    for name, content in contents.items():
        events = [json.loads(line)["event"] for line in content.decode().splitlines()]
        if "huge" in events:
            assert events == ["huge"]
        else:
            assert len(content) < 1024, name  # counted in bytes, not characters
    assert logs.handle.write_errors == 0


def test_rotating_file_output(capture_logs: Any, tmp_path: Any) -> None:
    path = tmp_path / "app.log"
    logs: LogCapture = capture_logs(
        settings(file_path=str(path), file_max_bytes=2048, file_backup_count=2)
    )
    for n in range(100):
        structlog.get_logger("app").info("filler", n=n, pad="p" * 50)
    assert logs.handle.flush()
    logs.handle.stop()
    files = sorted(tmp_path.glob("app.log*"))
    assert [file.name for file in files] == ["app.log", "app.log.1", "app.log.2"]
    for file in files:
        assert file.stat().st_size <= 2048 + 200
        assert all(json.loads(line)["event"] == "filler" for line in file.read_text().splitlines())


def test_a_stuck_output_stalls_only_itself(tmp_path: Any, capsys: Any) -> None:
    """A blocked stdout: the file still gets every line.

    stdout's losses are counted, reported on stderr once, and added to the process's
    totals (what the metrics publish).
    """
    path = tmp_path / "app.log"
    stream = BlockingStream()
    before = log_losses()
    handle = configure_logging(settings(queue_size=40, file_path=str(path)), stream=stream)

    def file_lines() -> int:  # complete ones: the writer may be halfway through a batch
        return path.read_text().count("\n") if path.exists() else 0

    try:
        log = structlog.get_logger("app")
        for chunk in range(15):
            for n in range(20):
                log.info("line", n=chunk * 20 + n)
            # The file keeps up between bursts (a server's idle moments); stdout never.
            assert wait_until(lambda: file_lines() == (chunk + 1) * 20, timeout=20)  # noqa: B023
        assert not handle.flush(timeout=0.05)
        written = [json.loads(line)["n"] for line in path.read_text().splitlines()]
        assert written == list(range(300))  # every line, in order
        counts = handle.outputs
        assert counts["file"].dropped == counts["file"].write_errors == 0
        assert counts["stdout"].dropped >= 300 - 2 * 41
        assert handle.dropped == counts["stdout"].dropped
        totals = log_losses()
        assert totals["stdout"].dropped - before["stdout"].dropped == counts["stdout"].dropped
        err = capsys.readouterr().err
        assert err.count("log output stdout dropped") == 1
        assert "log output file" not in err
    finally:
        stream.release.set()
        handle.stop()
        structlog.reset_defaults()
    after = log_losses()
    assert after["stdout"].dropped - before["stdout"].dropped == handle.outputs["stdout"].dropped
    assert after["file"] == before["file"]


def test_stdout_can_be_turned_off(tmp_path: Any) -> None:
    stream = io.StringIO()
    path = tmp_path / "app.log"
    handle = configure_logging(settings(stdout=False, file_path=str(path)), stream=stream)
    try:
        structlog.get_logger("app").warning("to the file only")
        assert handle.flush()
    finally:
        handle.stop()
        structlog.reset_defaults()
    assert stream.getvalue() == ""
    assert json.loads(path.read_text())["event"] == "to the file only"
    assert list(handle.outputs) == ["file"]
    with pytest.raises(ValueError, match="log lines would go nowhere"):
        settings(stdout=False)


def test_after_shutdown_every_line_is_written_before_the_call_returns(monkeypatch: Any) -> None:
    """What install() switches on after the lifespan: nothing waits for the writer's turn."""
    monkeypatch.setattr(_Writer, "WRITE_INTERVAL", 3600.0)
    stream = io.StringIO()
    handle = configure_logging(settings(), stream=stream)
    try:
        log = structlog.get_logger("app")
        log.info("queued")
        time.sleep(0.1)
        assert stream.getvalue() == ""  # waiting for the writer's schedule
        handle.enter_shutdown()
        assert "queued" in stream.getvalue()
        log.info("Finished server process")
        assert stream.getvalue().splitlines()[-1].startswith('{"event":"Finished server process"')
    finally:
        handle.stop()
        structlog.reset_defaults()


def test_install_writes_logs_through_after_the_lifespan(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    app = FastAPI()
    install(app, settings())
    with TestClient(app):
        assert not logs.handle._write_through
    assert logs.handle._write_through


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_terminating_signal_writes_the_queue_first(tmp_path: Any, signum: int) -> None:
    """A process of our own (no server) ended by SIGTERM or SIGHUP: nothing queued is lost."""
    path = tmp_path / "app.log"
    script = (
        "import os, signal, structlog\n"
        "from fastapi_enterprise import EnterpriseSettings, configure_logging\n"
        "configure_logging(EnterpriseSettings(environment='test', logging={\n"
        f"    'stdout': False, 'file_path': {str(path)!r}}}))\n"
        "for n in range(1000):\n"
        "    structlog.get_logger('app').info('line', n=n)\n"
        f"os.kill(os.getpid(), {int(signum)})\n"
        "raise SystemExit('still alive after the signal')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)  # noqa: S603
    assert done.returncode == -signum  # the default action still ends the process
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == list(range(1000))


def test_a_handler_in_place_that_ends_the_process_comes_after_the_flush(tmp_path: Any) -> None:
    """A SIGTERM handler already in place may end the process at once: flush first.

    Coverage's handler, or a supervisor shim's, installed before configure_logging().
    """
    path = tmp_path / "app.log"
    script = (
        "import os, signal, structlog\n"
        "def die_now(signum, frame):\n"
        "    signal.signal(signum, signal.SIG_DFL)\n"
        "    os.kill(os.getpid(), signum)\n"
        "signal.signal(signal.SIGTERM, die_now)\n"
        "from fastapi_enterprise import EnterpriseSettings, configure_logging\n"
        "configure_logging(EnterpriseSettings(environment='test', logging={\n"
        f"    'stdout': False, 'file_path': {str(path)!r}}}))\n"
        "for n in range(1000):\n"
        "    structlog.get_logger('app').info('line', n=n)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "raise SystemExit('still alive after the signal')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)  # noqa: S603
    assert done.returncode == -signal.SIGTERM  # the handler in place still decided
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == list(range(1000))


def test_an_error_nobody_hears_reaches_stderr_once(capsys: Any) -> None:
    """Without configured logging, library errors still reach stderr; nothing else does."""
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers[:] = []  # as in a server process: pytest's capture handlers are gone
    try:
        log = logging.getLogger("fastapi_enterprise.errors")
        log.info("routine")
        log.warning("a warning")
        try:
            raise RuntimeError(f"boom-unheard at postgresql://app:{SECRET}@db/prod")
        except RuntimeError:
            log.exception("Unhandled RuntimeError")
        logging.getLogger("fastapi_enterprise.access").error("http.request")
        unheard = capsys.readouterr().err
        other = logging.StreamHandler(io.StringIO())
        root.addHandler(other)  # logging.basicConfig() or configure_logging()
        try:
            raise RuntimeError("boom-heard")
        except RuntimeError:
            log.exception("Unhandled RuntimeError")
        heard = capsys.readouterr().err
    finally:
        root.handlers[:] = saved
    assert unheard.count("Traceback (most recent call last)") == 1
    assert "ERROR:fastapi_enterprise.errors:Unhandled RuntimeError" in unheard
    assert "RuntimeError: boom-unheard at postgresql://app:**********@db/prod" in unheard
    assert SECRET not in unheard
    assert "routine" not in unheard
    assert "a warning" not in unheard
    assert "http.request" not in unheard
    assert heard == ""


def test_a_long_console_traceback_keeps_its_exception_line() -> None:
    """Cut in the middle: the start says where, the end says what failed."""
    stream = io.StringIO()
    handle = configure_logging(EnterpriseSettings(logging={"max_field_length": 64}), stream=stream)

    def recurse(depth: int) -> None:
        if depth == 0:
            raise LookupError("the-final-line")
        recurse(depth - 1)

    try:
        try:
            recurse(30)
        except LookupError:
            structlog.get_logger("app").exception("failed")
        assert handle.flush()
    finally:
        handle.stop()
        structlog.reset_defaults()
    text = stream.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "LookupError: the-final-line" in text
    assert "characters cut]..." in text
    assert len(text) < 64 * 8 * 2
