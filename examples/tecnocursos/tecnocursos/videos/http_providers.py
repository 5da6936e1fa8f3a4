"""HTTP providers for commercial services: ElevenLabs speech and D-ID avatar videos.

Both speak the services' documented request and response shapes; the base URL is a
setting, so tests (and a self-hosted gateway) point them elsewhere. Keys are ``SecretStr``
and appear in no error, log line or ``repr``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
from pydantic import SecretStr

from tecnocursos.videos.ffmpeg import FFmpegError, probe
from tecnocursos.videos.models import ProviderError
from tecnocursos.videos.resilience import CircuitBreaker, RetryPolicy, Sleep, send_with_retries
from tecnocursos.videos.tts import Speech

__all__ = ["DIDAvatar", "ElevenLabsTTS"]


class ElevenLabsTTS:
    """ElevenLabs text to speech.

    ``POST /v1/text-to-speech/{voice_id}`` with ``xi-api-key``, a JSON body
    (``text``, ``model_id``, ``language_code``), answered with ``audio/mpeg``.
    """

    name = "elevenlabs"
    captions = False

    def __init__(
        self,
        api_key: SecretStr,
        *,
        voices: dict[str, str],
        default_voice: str,
        model_id: str = "eleven_multilingual_v2",
        base_url: str = "https://api.elevenlabs.io",
        output_format: str = "mp3_44100_128",
        timeout: float = 60.0,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._api_key = api_key
        self.voices = {key.lower(): value for key, value in voices.items()}
        self.default_voice = default_voice
        self.model_id = model_id
        self.base_url = base_url.rstrip("/")
        self.output_format = output_format
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"ElevenLabsTTS(base_url={self.base_url!r}, model_id={self.model_id!r}, "
            "api_key=**********)"
        )

    def voice(self, language: str) -> str:
        """The voice of ``language``: exact (``pt-br``), its first part (``pt``), the default."""
        key = language.lower().replace("_", "-")
        return self.voices.get(key) or self.voices.get(key.split("-")[0]) or self.default_voice

    # --8<-- [start:elevenlabs-synth]
    async def synth(self, text: str, language: str, *, workdir: Path) -> Speech:
        """Speak ``text``; the MP3 is written into ``workdir``.

        Raises:
            ProviderError: The service failed (see :func:`send_with_retries`) or its answer
                is not audio.
        """
        body: dict[str, Any] = {
            "text": text,
            "model_id": self.model_id,
            "language_code": language.split("-")[0].lower(),
        }
        async with httpx2.AsyncClient(base_url=self.base_url, timeout=self.timeout) as client:
            response = await send_with_retries(
                client,
                "POST",
                f"/v1/text-to-speech/{self.voice(language)}",
                provider=self.name,
                breaker=self.breaker,
                policy=self.policy,
                sleep=self._sleep,
                params={"output_format": self.output_format},
                headers={"xi-api-key": self._api_key.get_secret_value(), "accept": "audio/mpeg"},
                json=body,
            )
        if not response.headers.get("content-type", "").startswith("audio/"):
            raise ProviderError(self.name, "the answer is not audio")
        path = workdir / f"speech-{uuid.uuid4().hex}.mp3"
        path.write_bytes(response.content)
        try:
            probed = await probe(path)
        except FFmpegError:
            raise ProviderError(self.name, "the audio could not be read") from None
        return Speech(path, probed.duration)
        # --8<-- [end:elevenlabs-synth]


class DIDAvatar:
    """D-ID talking heads.

    ``POST /talks`` (``source_url`` and a text ``script``), poll
    ``GET /talks/{id}`` until ``done``, then download ``result_url`` (without the key: it is a
    pre-signed URL on another host).
    """

    name = "d-id"

    def __init__(
        self,
        api_key: SecretStr,
        *,
        source_url: str,
        base_url: str = "https://api.d-id.com",
        voices: dict[str, str] | None = None,
        timeout: float = 60.0,
        poll_interval: float = 2.0,
        max_wait: float = 600.0,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._api_key = api_key
        self.source_url = source_url
        self.base_url = base_url.rstrip("/")
        self.voices = voices or {"pt": "pt-BR-FranciscaNeural", "en": "en-US-JennyNeural"}
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"DIDAvatar(base_url={self.base_url!r}, api_key=**********)"

    def _headers(self) -> dict[str, str]:
        return {
            "authorization": f"Basic {self._api_key.get_secret_value()}",
            "accept": "application/json",
        }

    async def create(self, text: str, language: str, *, workdir: Path) -> Path | None:
        """Create a talk, wait for it and download the clip into ``workdir``.

        Raises:
            ProviderError: The service failed, rejected the talk, or took over ``max_wait``.
        """
        voice = self.voices.get(language.split("-")[0].lower(), next(iter(self.voices.values())))
        body = {
            "source_url": self.source_url,
            "script": {
                "type": "text",
                "input": text,
                "provider": {"type": "microsoft", "voice_id": voice},
            },
        }
        retry: dict[str, Any] = {
            "provider": self.name,
            "breaker": self.breaker,
            "policy": self.policy,
            "sleep": self._sleep,
        }
        async with httpx2.AsyncClient(base_url=self.base_url, timeout=self.timeout) as client:
            created = await send_with_retries(
                client, "POST", "/talks", headers=self._headers(), json=body, **retry
            )
            talk_id = _field(created, "id", self.name)
            deadline = time.monotonic() + self.max_wait
            while True:
                polled = await send_with_retries(
                    client,
                    "GET",
                    f"/talks/{quote(talk_id, safe='')}",
                    headers=self._headers(),
                    **retry,
                )
                status = _field(polled, "status", self.name)
                if status == "done":
                    result_url = _field(polled, "result_url", self.name)
                    break
                if status in ("error", "rejected"):
                    raise ProviderError(self.name, f"the talk ended with status {status!r}")
                if time.monotonic() >= deadline:
                    raise ProviderError(
                        self.name,
                        f"the talk was not done within {self.max_wait:g} s",
                        retryable=True,
                    )
                await self._sleep(self.poll_interval)
        # The clip is on another host (pre-signed): a separate client, no key sent there.
        async with httpx2.AsyncClient(timeout=self.timeout) as download:
            clip = await send_with_retries(download, "GET", result_url, **retry)
        path = workdir / f"avatar-{uuid.uuid4().hex}.mp4"
        path.write_bytes(clip.content)
        return path


def _field(response: httpx2.Response, name: str, provider: str) -> str:
    try:
        value = response.json()[name]
    except (ValueError, KeyError, TypeError):
        raise ProviderError(provider, f"the answer has no {name!r}") from None
    if not isinstance(value, str) or not value:
        raise ProviderError(provider, f"the answer's {name!r} is not a string")
    return value
