"""ffmpeg from the imageio-ffmpeg wheel, run as a lowered-priority asyncio subprocess.

The wheel ships no ffprobe: :func:`probe` reads what ``ffmpeg -i`` prints instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg  # type: ignore[import-untyped]

__all__ = [
    "NICENESS",
    "FFmpegError",
    "Probe",
    "ffmpeg_exe",
    "probe",
    "run_ffmpeg",
    "start_lowered",
]

logger = logging.getLogger(__name__)

NICENESS = 10
"""Renders yield the CPU to the API (2 cores): ``nice -n 10`` where ``nice`` exists."""

_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #\d+:\d+\S*: (Video|Audio): (\w+)")


class FFmpegError(Exception):
    """ffmpeg failed or timed out; ``stderr`` holds its full output (log it, don't show it)."""

    def __init__(self, reason: str, stderr: str = "") -> None:
        self.reason = reason
        self.stderr = stderr
        super().__init__(reason)


@dataclass(frozen=True)
class Probe:
    """What ``ffmpeg -i`` says of a media file."""

    duration: float
    video_codec: str | None
    audio_codec: str | None


async def start_lowered(*command: str, **options: Any) -> asyncio.subprocess.Process:
    """Start ``command`` in a session of its own, its scheduling group at ``NICENESS``.

    Its own session: Ctrl+C or a SIGTERM sent to the server's process group is the
    server's to handle (a render stops at the next scene and is released), not a killed
    encoder that would count as a failed attempt. But a session is also a scheduling
    group of its own (the kernel's autogroups, on by default), and groups share the CPU
    equally whatever the niceness inside: so the new group is lowered too, or each
    encoder would take as much CPU as the whole API.
    """
    process = await asyncio.create_subprocess_exec(*command, start_new_session=True, **options)
    _lower_autogroup(process.pid)
    return process


def _lower_autogroup(pid: int) -> None:
    # A write to /proc, answered by the kernel at once: no need for a thread.
    with contextlib.suppress(OSError):  # no autogroups, a read-only /proc, or it exited
        Path(f"/proc/{pid}/autogroup").write_text(f"{NICENESS}\n")


def ffmpeg_exe() -> str:
    """The ffmpeg binary of the imageio-ffmpeg wheel (no system ffmpeg needed)."""
    executable: str = imageio_ffmpeg.get_ffmpeg_exe()
    return executable


async def run_ffmpeg(args: list[str], *, timeout: float, check: bool = True) -> str:
    """Run ffmpeg with ``args`` at a lower priority and return its stderr.

    The process is killed when ``timeout`` passes or the calling task is cancelled.

    Raises:
        FFmpegError: A non-zero exit (with ``check``) or the timeout.
    """
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    nice = shutil.which("nice")
    if nice is not None:
        command = [nice, "-n", str(NICENESS), *command]
    process = await start_lowered(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, raw = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        await _kill(process)
        raise FFmpegError(f"ffmpeg timed out after {timeout:g} s") from None
    except BaseException:
        # Cancelled (or anything else): never leave an encoder running.
        await _kill(process)
        raise
    stderr = raw.decode("utf-8", "replace")
    if check and process.returncode != 0:
        logger.warning("ffmpeg exited with %s: %s", process.returncode, stderr)
        raise FFmpegError(f"ffmpeg exited with status {process.returncode}", stderr)
    return stderr


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def probe(path: Path, *, timeout: float = 30.0) -> Probe:
    """Duration and first video and audio codecs of ``path``, from ``ffmpeg -i``.

    Raises:
        FFmpegError: ffmpeg printed no duration (not a media file).
    """
    stderr = await run_ffmpeg(["-i", str(path)], timeout=timeout, check=False)
    match = _DURATION.search(stderr)
    if match is None:
        raise FFmpegError("not a media file", stderr)
    hours, minutes, seconds = match.groups()
    codecs: dict[str, str] = {}
    for kind, codec in _STREAM.findall(stderr):
        codecs.setdefault(kind, codec)
    return Probe(
        duration=int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        video_codec=codecs.get("Video"),
        audio_codec=codecs.get("Audio"),
    )
