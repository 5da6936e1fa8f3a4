"""The offline renderer: scenes -> slides + narration -> H.264/AAC segments -> one MP4.

A worker calls :func:`render_video`; it needs no database, no broker and no network (unless
the TTS provider given is an HTTP one).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from tecnocursos.videos.ffmpeg import FFmpegError, Probe, probe, run_ffmpeg
from tecnocursos.videos.models import (
    Branding,
    ProviderError,
    RenderCancelled,
    RenderProgress,
    RenderResult,
    SceneInput,
    SceneRenderError,
    SceneTiming,
    sanitise_tail,
)
from tecnocursos.videos.slides import render_slide
from tecnocursos.videos.tts import AvatarProvider, SilentTTS, Speech, TTSProvider

__all__ = ["FRAME_RATE", "render_video"]

logger = logging.getLogger(__name__)

FRAME_RATE = 25
"""Frames per second of every segment (a still image needs few)."""

_SILENCE = SilentTTS()
"""The narration of a scene without a script."""

FFMPEG_THREADS = 2
"""Encoder threads: bounded, so a render leaves the API a core on a 2-core machine."""


def _segment_args(slide: Path, audio: Path, duration: float, output: Path) -> list[str]:
    # Same codec parameters for every segment, so the concat demuxer can copy them.
    return [
        "-y",
        "-loop", "1",
        # The still is read once a second and the fps filter repeats it up to FRAME_RATE
        # (to the exact end, unlike -r): a third less work than a PNG decode per frame.
        "-framerate", "1",
        "-i", str(slide),
        "-i", str(audio),
        "-af", "apad",  # silence after the narration when the duration hint is longer
        "-t", f"{duration:.3f}",
        "-c:v", "libx264",
        "-preset", "veryfast",
        "-tune", "stillimage",
        "-pix_fmt", "yuv420p",
        "-vf", f"fps={FRAME_RATE}",
        "-c:a", "aac",
        "-b:a", "128k",
        "-ar", "44100",
        "-ac", "1",
        "-threads", str(FFMPEG_THREADS),
        str(output),
    ]  # fmt: skip


async def render_video(
    scenes: Sequence[SceneInput],
    *,
    workdir: Path,
    output: Path,
    tts: TTSProvider,
    branding: Branding,
    language: str,
    progress: Callable[[RenderProgress], Awaitable[None]] | None = None,
    cancelled: Callable[[], bool] | None = None,
    avatar: AvatarProvider | None = None,
    scene_timeout: float = 300.0,
) -> RenderResult:
    """Render ``scenes`` into one MP4 (H.264 + AAC, fast start) at ``output``.

    Temporary files live in a fresh directory under ``workdir``, removed on success,
    failure and cancellation.

    Args:
        scenes: The scenes, in order.
        workdir: Where temporary files go (the same file system as ``output`` is best).
        output: The finished MP4; written only when every scene rendered.
        tts: The narration provider (``captions`` true burns the script in).
        branding: Course name, colours and video size.
        language: ``pt-BR``, ``en``...: the narration's language.
        progress: Awaited after each scene and at the end.
        cancelled: Checked before each scene; true stops the render.
        avatar: Makes a talking-head clip per scene, overlaid in the bottom right corner;
            when the clip has sound, that is the scene's narration (no TTS call).
        scene_timeout: Seconds an ffmpeg step may take.

    Raises:
        RenderCancelled: ``cancelled()`` returned true.
        SceneRenderError: A scene failed (the message names it, never a path).
        ValueError: No scenes.
    """
    if not scenes:
        raise ValueError("a video needs at least one scene")
    warnings: list[str] = []
    if tts.captions:
        warnings.append(
            tts.warning if isinstance(tts, SilentTTS) else f"{tts.name}: captions burned in"
        )
    temp = workdir / f"render-{uuid.uuid4().hex}"
    temp.mkdir(parents=True)
    timings: list[SceneTiming] = []
    segments: list[Path] = []
    total = len(scenes)
    try:
        for index, scene in enumerate(scenes):
            if cancelled is not None and cancelled():
                raise RenderCancelled(f"cancelled before scene {index + 1} of {total}")
            segment, timing = await _render_scene(
                scene, index, temp, tts, avatar, branding, language, scene_timeout
            )
            segments.append(segment)
            timings.append(timing)
            if progress is not None:
                await progress(
                    RenderProgress(index, total, 100.0 * (index + 1) / (total + 1), "scene")
                )
        if cancelled is not None and cancelled():
            raise RenderCancelled("cancelled before the concatenation")
        if progress is not None:
            await progress(RenderProgress(total - 1, total, 100.0 * total / (total + 1), "concat"))
        partial = temp / "video.mp4"
        await _concat(segments, temp, partial, scene_timeout)
        probed = await probe(partial)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(partial), str(output))
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    if progress is not None:
        await progress(RenderProgress(total - 1, total, 100.0, "done"))
    return RenderResult(
        output=output,
        duration=probed.duration,
        video_codec=probed.video_codec or "",
        audio_codec=probed.audio_codec or "",
        scenes=timings,
        warnings=warnings,
    )


def _avatar_args(
    slide: Path, clip: Path, narration: Path | None, duration: float, output: Path, height: int
) -> list[str]:
    # The clip in the bottom right corner at a third of the height; its own sound is the
    # narration when it has one (the avatar speaks), else the TTS provider's.
    margin = max(4, height // 36)
    audio = "[2:a]" if narration is not None else "[1:a]"
    graph = (
        f"[0:v]fps={FRAME_RATE}[bg];[1:v]scale=-2:{height // 3 // 2 * 2}[av];"
        f"[bg][av]overlay=W-w-{margin}:H-h-{margin}:eof_action=pass,format=yuv420p[v];"
        f"{audio}apad[a]"
    )
    inputs = ["-loop", "1", "-framerate", "1", "-i", str(slide), "-i", str(clip)]
    if narration is not None:
        inputs += ["-i", str(narration)]
    return [
        "-y", *inputs,
        "-filter_complex", graph,
        "-map", "[v]", "-map", "[a]",
        "-t", f"{duration:.3f}",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage",
        "-c:a", "aac", "-b:a", "128k", "-ar", "44100", "-ac", "1",
        "-threads", str(FFMPEG_THREADS),
        str(output),
    ]  # fmt: skip


async def _render_scene(
    scene: SceneInput,
    index: int,
    temp: Path,
    tts: TTSProvider,
    avatar: AvatarProvider | None,
    branding: Branding,
    language: str,
    timeout: float,
) -> tuple[Path, SceneTiming]:
    started = time.perf_counter()
    clip, clip_probe = await _avatar_clip(avatar, scene, index, temp, language)
    speaks = clip_probe is not None and clip_probe.audio_codec is not None
    speech: Speech | None = None
    if not speaks and not scene.script.strip():
        # Nothing to say: silence for the scene's duration (a provider would refuse it).
        speech = await _SILENCE.synth("", language, workdir=temp)
    elif not speaks:
        try:
            speech = await tts.synth(scene.script, language, workdir=temp)
        except ProviderError as error:
            raise SceneRenderError(index, f"speech synthesis failed ({error})") from error
    synthesised = time.perf_counter()
    slide = temp / f"slide-{index:03d}.png"
    captions = tts.captions and not speaks
    # Pillow's drawing is CPU work: off the event loop, so an in-process worker's API answers.
    await asyncio.to_thread(
        render_slide, scene, branding, slide, scene_index=index, captions=captions
    )
    spoken = clip_probe.duration if speaks and clip_probe else speech.duration if speech else 0.0
    duration = max(spoken, scene.duration_hint or 0.0, 0.5)
    segment = temp / f"scene-{index:03d}.mp4"
    if clip is not None:
        narration = None if speech is None else speech.path
        args = _avatar_args(slide, clip, narration, duration, segment, branding.height)
    elif speech is not None:
        args = _segment_args(slide, speech.path, duration, segment)
    else:  # unreachable: without a speaking clip, the TTS provider spoke
        raise SceneRenderError(index, "no narration")
    try:
        await run_ffmpeg(args, timeout=timeout)
    except FFmpegError as error:
        # The full stderr is logged by run_ffmpeg; the message gets a bounded, path-free tail.
        tail = sanitise_tail(error.stderr, limit=160)
        raise SceneRenderError(
            index, f"encoding failed: {error.reason}" + (f" ({tail})" if tail else "")
        ) from None
    return segment, SceneTiming(
        index, synthesised - started, time.perf_counter() - synthesised, duration
    )


async def _avatar_clip(
    avatar: AvatarProvider | None, scene: SceneInput, index: int, temp: Path, language: str
) -> tuple[Path | None, Probe | None]:
    if avatar is None:
        return None, None
    try:
        clip = await avatar.create(scene.script, language, workdir=temp)
    except ProviderError as error:
        raise SceneRenderError(index, f"the avatar failed ({error})") from error
    if clip is None:
        return None, None
    try:
        probed = await probe(clip)
    except FFmpegError:
        raise SceneRenderError(index, "the avatar clip is not a video") from None
    if probed.video_codec is None:
        raise SceneRenderError(index, "the avatar clip has no picture")
    return clip, probed


async def _concat(segments: list[Path], temp: Path, output: Path, timeout: float) -> None:
    listing = temp / "segments.txt"
    # The concat demuxer's list: file names relative to the list, quoted for its parser.
    listing.write_text(
        "".join(f"file '{segment.name}'\n" for segment in segments), encoding="utf-8"
    )
    args = [
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        str(output),
    ]
    try:
        await run_ffmpeg(args, timeout=timeout)
    except FFmpegError as error:
        raise SceneRenderError(
            len(segments) - 1, f"joining the scenes failed: {error.reason}"
        ) from None
