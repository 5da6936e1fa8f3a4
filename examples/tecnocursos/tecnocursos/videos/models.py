"""The renderer's value objects and errors: what a worker passes in and gets back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import ImageColor

__all__ = [
    "Branding",
    "ProviderError",
    "RenderCancelled",
    "RenderProgress",
    "RenderResult",
    "SceneInput",
    "SceneRenderError",
    "SceneTiming",
    "sanitise_tail",
]


@dataclass(frozen=True)
class SceneInput:
    """One scene of a video: a slide with narration."""

    title: str
    """Shown large on the slide."""

    script: str
    """The narration, spoken by the TTS provider and shown on the slide."""

    image: Path | None = None
    """An uploaded image to fit on the slide (untrusted: checked before it is decoded)."""

    duration_hint: float | None = None
    """Seconds the scene should last at least (the narration may be longer)."""


@dataclass(frozen=True)
class Branding:
    """The course's look: name, colours, size of the video."""

    course_name: str
    """Written in the title bar of every slide."""

    primary_color: str = "#1f4e79"
    """Title bar colour (any colour Pillow understands)."""

    background_color: str = "#ffffff"
    """Slide background."""

    text_color: str = "#1a1a1a"
    """Title and script colour."""

    bar_text_color: str = "#ffffff"
    """Colour of the course name in the title bar."""

    width: int = 1280
    """Video width in pixels (even)."""

    height: int = 720
    """Video height in pixels (even)."""

    def __post_init__(self) -> None:
        # Checked here, where the course's settings become a Branding, rather than as an
        # error in the middle of a render.
        for name in ("primary_color", "background_color", "text_color", "bar_text_color"):
            _check_colour(name, getattr(self, name))
        if not (64 <= self.width <= 3840 and 64 <= self.height <= 2160):
            raise ValueError("branding width and height must be within 64x64 and 3840x2160")
        if self.width % 2 or self.height % 2:
            raise ValueError("branding width and height must be even (H.264 yuv420p)")


def _check_colour(name: str, value: str) -> None:
    try:
        ImageColor.getrgb(value)
    except ValueError:
        raise ValueError(f"branding.{name} is not a colour") from None


@dataclass(frozen=True)
class RenderProgress:
    """Reported after each scene: enough for a job row's progress columns."""

    scene_index: int
    """The scene just finished (0-based)."""

    scene_count: int
    """Scenes in the video."""

    percent: float
    """0-100; the concatenation is the last step."""

    stage: str
    """``scene`` after a scene, ``concat`` before joining, ``done`` at the end."""


@dataclass(frozen=True)
class SceneTiming:
    """How long one scene took to make, and how long it lasts."""

    index: int
    tts_seconds: float
    """Wall time of speech synthesis."""
    encode_seconds: float
    """Wall time of the slide and ffmpeg segment."""
    duration: float
    """Length of the scene in the video (seconds)."""


@dataclass(frozen=True)
class RenderResult:
    """A finished video."""

    output: Path
    duration: float
    """Length of the MP4 as probed (seconds)."""
    video_codec: str
    audio_codec: str
    scenes: list[SceneTiming]
    warnings: list[str] = field(default_factory=list)
    """Degradations the user should know about, e.g. silent narration."""


class RenderCancelled(Exception):  # noqa: N818 (the name the worker's issue uses)
    """The render was cancelled (between scenes, or by task cancellation)."""


class SceneRenderError(Exception):
    """A scene could not be rendered; the message names the scene, never a path."""

    def __init__(self, scene_index: int, reason: str) -> None:
        self.scene_index = scene_index
        self.reason = reason
        super().__init__(f"scene {scene_index + 1}: {reason}")


class ProviderError(Exception):
    """An AI provider failed; the message never includes a key or the request body."""

    def __init__(self, provider: str, reason: str, *, retryable: bool = False) -> None:
        self.provider = provider
        self.reason = reason
        self.retryable = retryable
        super().__init__(f"{provider}: {reason}")


_PATHLIKE = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s'\",:]+")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def sanitise_tail(text: str, *, limit: int = 200) -> str:
    """The last ``limit`` characters of tool output, one line, paths replaced by ``<path>``."""
    flat = " ".join(text.split())
    flat = _PATHLIKE.sub("<path>", flat)
    flat = _UNPRINTABLE.sub("?", flat)
    if len(flat) <= limit:
        return flat
    tail = flat[-limit:]
    # Start at a word, not in the middle of one.
    return "…" + (tail.split(" ", 1)[1] if " " in tail else tail)
