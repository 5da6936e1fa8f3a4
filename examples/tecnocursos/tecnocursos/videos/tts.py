"""Speech and avatar providers: the protocols and the local, offline defaults."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from tecnocursos.videos.ffmpeg import start_lowered
from tecnocursos.videos.models import ProviderError, sanitise_tail

__all__ = [
    "NO_ESPEAK_WARNING",
    "SILENT_WARNING",
    "AvatarProvider",
    "EspeakTTS",
    "NoAvatar",
    "SilentTTS",
    "Speech",
    "TTSProvider",
    "local_tts",
    "wav_duration",
]

logger = logging.getLogger(__name__)

SILENT_WARNING = "silent narration with burned-in captions"
"""The result's warning when the narration is silence (with its reason before it)."""

NO_ESPEAK_WARNING = f"no espeak-ng: {SILENT_WARNING}"


# --8<-- [start:protocols]
@dataclass(frozen=True)
class Speech:
    """Narration audio written by a provider."""

    path: Path
    duration: float
    """Seconds."""


@runtime_checkable
class TTSProvider(Protocol):
    """Text to speech. ``captions`` is true when the audio carries no words (burn them in)."""

    name: str
    captions: bool

    async def synth(self, text: str, language: str, *, workdir: Path) -> Speech:
        """Write the narration of ``text`` in ``language`` into ``workdir``."""
        ...


@runtime_checkable
class AvatarProvider(Protocol):
    """A talking-head clip for a scene's narration, or None when there is no avatar."""

    name: str

    async def create(self, text: str, language: str, *, workdir: Path) -> Path | None:
        """Write the avatar clip into ``workdir`` and return it, or None."""
        ...

    # --8<-- [end:protocols]


class NoAvatar:
    """The local default: no avatar."""

    name = "none"

    async def create(self, text: str, language: str, *, workdir: Path) -> Path | None:
        """No clip."""
        return None


def wav_duration(path: Path) -> float:
    """Length of a PCM WAV file in seconds."""
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / float(audio.getframerate())


class SilentTTS:
    """Silence as long as reading the text takes; the slide shows the script as captions."""

    name = "silent"
    captions = True

    def __init__(
        self, *, words_per_minute: int = 160, min_seconds: float = 2.0, reason: str | None = None
    ) -> None:
        if words_per_minute <= 0 or min_seconds < 0:
            raise ValueError("words_per_minute must be positive and min_seconds >= 0")
        self.reason = reason
        """Why the narration is silent (``no espeak-ng``), for the result's warning."""
        self.words_per_minute = words_per_minute
        self.min_seconds = min_seconds

    @property
    def warning(self) -> str:
        """The warning a render with this provider carries."""
        return f"{self.reason}: {SILENT_WARNING}" if self.reason else SILENT_WARNING

    def reading_time(self, text: str) -> float:
        """Seconds a reader needs for ``text``."""
        return max(self.min_seconds, len(text.split()) * 60.0 / self.words_per_minute)

    async def synth(self, text: str, language: str, *, workdir: Path) -> Speech:
        """Write a silent 16 kHz mono WAV of the text's reading time."""
        seconds = self.reading_time(text)
        path = workdir / f"silence-{uuid.uuid4().hex}.wav"
        rate = 16_000
        with wave.open(str(path), "wb") as audio:
            audio.setnchannels(1)
            audio.setsampwidth(2)
            audio.setframerate(rate)
            audio.writeframes(b"\x00\x00" * int(seconds * rate))
        return Speech(path, wav_duration(path))


ESPEAK_VOICES = {
    "pt": "pt-br",
    "pt-br": "pt-br",
    "pt-pt": "pt",
    "en": "en-us",
    "en-us": "en-us",
    "en-gb": "en",
}
"""Languages (lower case) to espeak-ng voices; an unknown language uses its first part."""


class EspeakTTS:
    """espeak-ng (Debian's package) as an asyncio subprocess: offline, Portuguese and English."""

    name = "espeak-ng"
    captions = False

    def __init__(
        self, executable: str = "espeak-ng", *, timeout: float = 60.0, speed: int = 160
    ) -> None:
        self.executable = executable
        self.timeout = timeout
        self.speed = speed

    @staticmethod
    def voice(language: str) -> str:
        """The espeak-ng voice of ``language`` (``pt-BR`` -> ``pt-br``)."""
        key = language.strip().lower().replace("_", "-")
        return ESPEAK_VOICES.get(key) or ESPEAK_VOICES.get(key.split("-")[0], "en-us")

    async def synth(self, text: str, language: str, *, workdir: Path) -> Speech:
        """Speak ``text`` into a WAV file; the text goes through stdin, never the command line."""
        path = workdir / f"speech-{uuid.uuid4().hex}.wav"
        process = await start_lowered(
            self.executable,
            "-v",
            self.voice(language),
            "-s",
            str(self.speed),
            "-w",
            str(path),
            "--stdin",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(process.communicate(text.encode("utf-8")), self.timeout)
        except asyncio.TimeoutError:
            await _kill(process)
            raise ProviderError(
                self.name, f"timed out after {self.timeout:g} s", retryable=True
            ) from None
        except BaseException:
            await _kill(process)
            raise
        if process.returncode != 0 or not path.is_file():
            stderr = err.decode("utf-8", "replace")
            logger.warning("espeak-ng exited with %s: %s", process.returncode, stderr)
            raise ProviderError(
                self.name, f"exited with status {process.returncode}: {sanitise_tail(stderr)}"
            )
        return Speech(path, wav_duration(path))


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


def local_tts(*, force_silent: bool = False) -> TTSProvider:
    """The ``local`` provider: espeak-ng when on PATH, else silence (the render says why)."""
    if force_silent:
        return SilentTTS()
    executable = shutil.which("espeak-ng")
    if executable is None:
        return SilentTTS(reason="no espeak-ng")
    return EspeakTTS(executable)
