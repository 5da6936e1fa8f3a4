"""The HTTP providers against local servers speaking ElevenLabs' and D-ID's shapes.

Real sockets on 127.0.0.1 (``http.server`` in a thread), never the internet. The servers
play scripted answers, faults included: 401, 429 with Retry-After, 500, a slow answer.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from tecnocursos.core.settings import AISettings
from tecnocursos.videos import Branding, ProviderError, SceneInput, SceneRenderError, render_video
from tecnocursos.videos.ffmpeg import ffmpeg_exe
from tecnocursos.videos.http_providers import DIDAvatar, ElevenLabsTTS
from tecnocursos.videos.providers import avatar_from_settings, tts_from_settings
from tecnocursos.videos.resilience import CircuitBreaker, RetryPolicy

KEY = "sk-test-8c1f0e7a2b9d4c6e"


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeService:
    """A local HTTP server answering each path from a queue of scripted answers."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Answer]] = {}
        self.default: dict[str, Answer] = {}
        self.seen: list[Seen] = []
        self.release = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                service.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                queue = service.answers.get(path)
                answer = queue.pop(0) if queue else service.default.get(path, Answer(404))
                if answer.delay:
                    service.release.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = _answer  # noqa: N815 - http.server's method names
            do_POST = _answer  # noqa: N815 - http.server's method names

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def script(self, path: str, *answers: Answer) -> None:
        self.answers.setdefault(path, []).extend(answers)

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.split("?")[0] == path]


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = FakeService()
    fake.thread.start()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One second of MP3 audio, made by the wheel's ffmpeg."""
    path = tmp_path_factory.mktemp("audio") / "one.mp3"
    source = ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "1"]
    subprocess.run(  # noqa: S603 - the imageio-ffmpeg binary
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            *source,
            "-c:a",
            "libmp3lame",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path.read_bytes()


class Sleeps:
    """Records the waits asked for between attempts, and yields without waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def eleven(service: FakeService, sleeps: Sleeps, **options: object) -> ElevenLabsTTS:
    policy = options.pop("policy", RetryPolicy(attempts=3, backoff=0.01, max_delay=5.0))
    breaker = options.pop("breaker", CircuitBreaker(threshold=10, cooldown=60))
    timeout = options.pop("timeout", 5.0)
    assert isinstance(policy, RetryPolicy)
    assert isinstance(breaker, CircuitBreaker)
    assert isinstance(timeout, float)
    return ElevenLabsTTS(
        SecretStr(KEY),
        voices={"pt": "voice-pt", "en": "voice-en"},
        default_voice="voice-en",
        base_url=service.url,
        policy=policy,
        breaker=breaker,
        timeout=timeout,
        sleep=sleeps,
    )


AUDIO = {"content-type": "audio/mpeg"}
TTS_PT = "/v1/text-to-speech/voice-pt"


@pytest.mark.asyncio
async def test_elevenlabs_request_shape_and_audio(
    service: FakeService, mp3: bytes, tmp_path: Path
) -> None:
    service.script(TTS_PT, Answer(200, mp3, AUDIO))
    speech = await eleven(service, Sleeps()).synth("Olá, mundo!", "pt-BR", workdir=tmp_path)
    assert 0.9 < speech.duration < 1.2
    assert speech.path.parent == tmp_path
    (seen,) = service.seen
    assert seen.method == "POST"
    assert seen.path == f"{TTS_PT}?output_format=mp3_44100_128"
    assert seen.headers["xi-api-key"] == KEY
    assert json.loads(seen.body) == {
        "text": "Olá, mundo!",
        "model_id": "eleven_multilingual_v2",
        "language_code": "pt",
    }


@pytest.mark.asyncio
async def test_401_is_not_retried_and_names_no_key(
    service: FakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service.script(TTS_PT, Answer(401, json.dumps({"detail": f"bad key {KEY}"}).encode()))
    provider = eleven(service, Sleeps())
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        await provider.synth("Olá", "pt", workdir=tmp_path)
    assert "authentication failed (HTTP 401)" in str(caught.value)
    assert not caught.value.retryable
    assert len(service.seen) == 1
    for text in (str(caught.value), repr(caught.value), repr(provider), caplog.text):
        assert KEY not in text
    assert provider.breaker.state == "closed"


@pytest.mark.asyncio
async def test_429_waits_as_long_as_retry_after_says(
    service: FakeService, mp3: bytes, tmp_path: Path
) -> None:
    service.script(TTS_PT, Answer(429, headers={"retry-after": "2"}), Answer(200, mp3, AUDIO))
    sleeps = Sleeps()
    await eleven(service, sleeps).synth("Olá", "pt", workdir=tmp_path)
    assert sleeps.delays == [2.0]
    assert len(service.seen) == 2


@pytest.mark.asyncio
async def test_retry_after_is_capped(service: FakeService, mp3: bytes, tmp_path: Path) -> None:
    service.script(TTS_PT, Answer(429, headers={"retry-after": "3600"}), Answer(200, mp3, AUDIO))
    sleeps = Sleeps()
    await eleven(service, sleeps).synth("Olá", "pt", workdir=tmp_path)
    assert sleeps.delays == [5.0]  # the policy's max_delay, not an hour


@pytest.mark.asyncio
async def test_500_then_success(service: FakeService, mp3: bytes, tmp_path: Path) -> None:
    service.script(TTS_PT, Answer(500), Answer(503), Answer(200, mp3, AUDIO))
    sleeps = Sleeps()
    speech = await eleven(service, sleeps).synth("Olá", "pt", workdir=tmp_path)
    assert speech.duration > 0
    assert len(sleeps.delays) == 2
    assert len(service.seen) == 3


@pytest.mark.asyncio
async def test_attempts_are_bounded(service: FakeService, tmp_path: Path) -> None:
    service.default[TTS_PT] = Answer(500)
    with pytest.raises(ProviderError) as caught:
        await eleven(service, Sleeps()).synth("Olá", "pt", workdir=tmp_path)
    assert "failed after 3 attempts: HTTP 500" in str(caught.value)
    assert caught.value.retryable
    assert len(service.seen) == 3


@pytest.mark.asyncio
async def test_a_slow_server_times_out(service: FakeService, tmp_path: Path) -> None:
    service.default[TTS_PT] = Answer(200, b"late", AUDIO, delay=30)
    provider = eleven(service, Sleeps(), timeout=0.3, policy=RetryPolicy(attempts=2, backoff=0))
    with pytest.raises(ProviderError) as caught:
        await provider.synth("Olá", "pt", workdir=tmp_path)
    assert "timed out" in str(caught.value)
    assert len(service.seen) == 2


@pytest.mark.asyncio
async def test_connection_refused_is_retried(tmp_path: Path) -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    provider = ElevenLabsTTS(
        SecretStr(KEY),
        voices={},
        default_voice="v",
        base_url=f"http://127.0.0.1:{port}",
        policy=RetryPolicy(attempts=2, backoff=0),
        sleep=Sleeps(),
    )
    with pytest.raises(ProviderError, match="connection failed"):
        await provider.synth("Olá", "pt", workdir=tmp_path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_breaker_opens_then_half_opens_after_the_cooldown(
    service: FakeService, mp3: bytes, tmp_path: Path
) -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown=30, clock=clock)
    provider = eleven(service, Sleeps(), policy=RetryPolicy(attempts=1), breaker=breaker)
    service.script(TTS_PT, Answer(500), Answer(502), Answer(500), Answer(200, mp3, AUDIO))
    for _ in range(2):
        with pytest.raises(ProviderError, match="HTTP 50"):
            await provider.synth("Olá", "pt", workdir=tmp_path)
    assert breaker.state == "open"
    with pytest.raises(ProviderError, match="circuit open"):
        await provider.synth("Olá", "pt", workdir=tmp_path)
    assert len(service.seen) == 2  # refused without a request

    clock.now += 30
    assert breaker.state == "half-open"
    with pytest.raises(ProviderError, match="HTTP 500"):  # the trial fails: open again
        await provider.synth("Olá", "pt", workdir=tmp_path)
    assert breaker.state == "open"
    clock.now += 30
    speech = await provider.synth("Olá", "pt", workdir=tmp_path)  # the trial succeeds
    assert speech.duration > 0
    assert breaker.state == "closed"
    assert len(service.seen) == 4


def did(service: FakeService, sleeps: Sleeps) -> DIDAvatar:
    return DIDAvatar(
        SecretStr(KEY),
        source_url="https://example.invalid/presenter.png",
        base_url=service.url,
        poll_interval=0.5,
        policy=RetryPolicy(attempts=2, backoff=0),
        sleep=sleeps,
    )


def as_json(value: object, status: int = 200) -> Answer:
    return Answer(status, json.dumps(value).encode(), {"content-type": "application/json"})


@pytest.mark.asyncio
async def test_did_creates_polls_and_downloads_without_the_key(
    service: FakeService, tmp_path: Path
) -> None:
    result_url = f"{service.url}/results/tlk_1.mp4"
    service.script("/talks", as_json({"id": "tlk_1", "status": "created"}, 201))
    service.script(
        "/talks/tlk_1",
        as_json({"id": "tlk_1", "status": "started"}),
        Answer(500),
        as_json({"id": "tlk_1", "status": "done", "result_url": result_url}),
    )
    service.script(
        "/results/tlk_1.mp4",
        Answer(200, b"\x00\x00\x00\x18ftypmp42", {"content-type": "video/mp4"}),
    )
    sleeps = Sleeps()
    clip = await did(service, sleeps).create("Olá, turma!", "pt-BR", workdir=tmp_path)
    assert clip is not None
    assert clip.read_bytes().startswith(b"\x00\x00\x00\x18ftyp")
    (created,) = service.requests_to("/talks")
    assert created.headers["authorization"] == f"Basic {KEY}"
    assert json.loads(created.body) == {
        "source_url": "https://example.invalid/presenter.png",
        "script": {
            "type": "text",
            "input": "Olá, turma!",
            "provider": {"type": "microsoft", "voice_id": "pt-BR-FranciscaNeural"},
        },
    }
    assert len(service.requests_to("/talks/tlk_1")) == 3
    (download,) = service.requests_to("/results/tlk_1.mp4")
    assert "authorization" not in {name.lower() for name in download.headers}
    assert 0.5 in sleeps.delays  # polled at the interval


@pytest.mark.asyncio
async def test_did_rejected_talk_is_an_error(service: FakeService, tmp_path: Path) -> None:
    service.script("/talks", as_json({"id": "tlk_2", "status": "created"}, 201))
    service.script("/talks/tlk_2", as_json({"id": "tlk_2", "status": "rejected"}))
    provider = did(service, Sleeps())
    with pytest.raises(ProviderError, match="status 'rejected'"):
        await provider.create("Olá", "pt", workdir=tmp_path)
    assert KEY not in repr(provider)


def test_settings_choose_the_providers(service: FakeService) -> None:
    ai = AISettings(
        tts_provider="elevenlabs",
        elevenlabs_api_key=SecretStr(KEY),
        elevenlabs_voices={"pt": "voice-pt"},
        elevenlabs_base_url=service.url,
        avatar_provider="d-id",
        did_api_key=SecretStr(KEY),
        did_source_url="https://example.invalid/p.png",
    )
    tts = tts_from_settings(ai)
    assert isinstance(tts, ElevenLabsTTS)
    assert tts.base_url == service.url
    assert tts.voice("pt-BR") == "voice-pt"
    assert isinstance(avatar_from_settings(ai), DIDAvatar)
    assert KEY not in repr(ai)
    with pytest.raises(ValueError, match=r"needs ai\.elevenlabs_api_key"):
        tts_from_settings(AISettings(tts_provider="elevenlabs"))
    assert avatar_from_settings(AISettings()).name == "none"


@pytest.mark.asyncio
async def test_a_video_narrated_by_the_http_provider(
    service: FakeService, mp3: bytes, tmp_path: Path
) -> None:
    """The renderer takes the provider's MP3 like espeak-ng's WAV; a 401 fails the scene."""
    service.script(TTS_PT, Answer(200, mp3, AUDIO), Answer(401))
    provider = eleven(service, Sleeps())
    branding = Branding("Curso", width=160, height=90)
    result = await render_video(
        [SceneInput("Um", "Olá.")],
        workdir=tmp_path,
        output=tmp_path / "video.mp4",
        tts=provider,
        branding=branding,
        language="pt-BR",
    )
    assert (result.video_codec, result.audio_codec) == ("h264", "aac")
    assert result.warnings == []
    with pytest.raises(SceneRenderError) as caught:
        await render_video(
            [SceneInput("Um", "Olá.")],
            workdir=tmp_path,
            output=tmp_path / "other.mp4",
            tts=provider,
            branding=branding,
            language="pt-BR",
        )
    assert str(caught.value) == (
        "scene 1: speech synthesis failed "
        "(elevenlabs: authentication failed (HTTP 401): check the API key)"
    )
