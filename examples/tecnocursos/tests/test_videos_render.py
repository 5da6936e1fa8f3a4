"""The offline renderer: real slides, real espeak-ng, real ffmpeg; the MP4 is probed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from tecnocursos.core.settings import AISettings
from tecnocursos.videos import (
    Branding,
    EspeakTTS,
    RenderCancelled,
    RenderProgress,
    SceneInput,
    SceneRenderError,
    SilentTTS,
    Speech,
    probe,
    render_video,
)
from tecnocursos.videos.ffmpeg import NICENESS, run_ffmpeg
from tecnocursos.videos.providers import tts_from_settings
from tecnocursos.videos.render import FRAME_RATE
from tecnocursos.videos.slides import fit_text, load_font, render_slide, wrap_text
from tecnocursos.videos.tts import NO_ESPEAK_WARNING, SILENT_WARNING

SMALL = Branding("Curso de Programação", width=320, height=180)
PORTUGUESE = "Olá! Nesta aula você aprenderá funções, exceções e ações em Python."
ENGLISH = "Welcome to the second lesson."


@pytest.fixture
def espeak() -> EspeakTTS:
    """espeak-ng from PATH; CI installs it (.ci/run), so there a missing binary fails."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("espeak-ng is not installed (.ci/run installs Debian's package)")
        pytest.skip("espeak-ng is not installed")
    return EspeakTTS(executable)


def make_png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    image = Image.new("RGB", size, "#ffcc00")
    ImageDraw.Draw(image).ellipse((4, 4, size[0] - 4, size[1] - 4), fill="#0044aa")
    image.save(path)
    return path


def png_bomb(path: Path, side: int = 100_000) -> Path:
    """A tiny file whose header claims side x side pixels (10 gigapixels by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def top_level_atoms(path: Path) -> list[str]:
    """The MP4's top-level box types in file order."""
    atoms: list[str] = []
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        atoms.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return atoms


@pytest.mark.asyncio
async def test_three_scenes_render_into_one_h264_aac_mp4_with_fast_start(
    tmp_path: Path, espeak: EspeakTTS
) -> None:
    """Portuguese and English narration and an uploaded PNG: one probed, seekable MP4."""
    scenes = [
        SceneInput("Introdução", PORTUGUESE),
        SceneInput("Second scene", ENGLISH, image=make_png(tmp_path / "upload.png")),
        SceneInput("Conclusão", "Até a próxima!", duration_hint=2.0),
    ]
    work = tmp_path / "work"
    work.mkdir()
    reports: list[RenderProgress] = []

    async def progress(report: RenderProgress) -> None:
        reports.append(report)

    output = tmp_path / "out" / "video.mp4"
    result = await render_video(
        scenes,
        workdir=work,
        output=output,
        tts=espeak,
        branding=SMALL,
        language="pt-BR",
        progress=progress,
    )

    probed = await probe(output)
    assert (probed.video_codec, probed.audio_codec) == ("h264", "aac")
    assert (result.video_codec, result.audio_codec) == ("h264", "aac")
    narration = sum(scene.duration for scene in result.scenes)
    assert abs(probed.duration - narration) < 0.5
    assert result.scenes[2].duration >= 2.0  # the hint is longer than "Até a próxima!"
    # The picture lasts as long as the sound (no drift from scene to scene): frame count.
    counted = await run_ffmpeg(
        ["-i", str(output), "-map", "0:v", "-c", "copy", "-f", "null", "-"], timeout=60
    )
    frames = int(re.findall(r"frame=\s*(\d+)", counted)[-1])
    # Each segment rounds up to a whole frame; none may end before its narration.
    assert narration * FRAME_RATE - 0.5 <= frames <= narration * FRAME_RATE + len(scenes)
    atoms = top_level_atoms(output)
    assert atoms.index("moov") < atoms.index("mdat")  # fast start
    assert result.warnings == []
    assert [r.stage for r in reports] == ["scene", "scene", "scene", "concat", "done"]
    assert reports[-1].percent == 100.0
    assert list(work.iterdir()) == []  # temporary files removed


@pytest.mark.asyncio
async def test_a_scene_without_a_script_is_silent_for_its_duration(
    tmp_path: Path, espeak: EspeakTTS
) -> None:
    """Nothing to say is not an error: espeak-ng writes no file for empty text."""
    scenes = [SceneInput("Title only", "  \n "), SceneInput("Timed", "", duration_hint=3.0)]
    output = tmp_path / "video.mp4"
    result = await render_video(
        scenes, workdir=tmp_path, output=output, tts=espeak, branding=SMALL, language="en"
    )
    probed = await probe(output)
    assert (probed.video_codec, probed.audio_codec) == ("h264", "aac")
    assert result.scenes[0].duration >= 2.0  # the silence's minimum
    assert result.scenes[1].duration >= 3.0
    assert abs(probed.duration - sum(scene.duration for scene in result.scenes)) < 0.5
    assert result.warnings == []


@pytest.mark.parametrize("size", [(320, 180), (1280, 720)])
def test_slides_wrap_accented_text_and_keep_their_size(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    width, height = size
    branding = Branding(
        "Formação em Ciência de Dados — módulo avançado", width=width, height=height
    )
    long_script = " ".join([PORTUGUESE] * 60) + " " + "Pneumoultramicroscópico" * 8
    for captions in (False, True):
        slide = tmp_path / f"slide-{width}-{captions}.png"
        scene = SceneInput(
            "Ações, funções e exceções " * 5, long_script, image=make_png(tmp_path / "i.png")
        )
        render_slide(scene, branding, slide, scene_index=0, captions=captions)
        with Image.open(slide) as image:
            assert image.size == size


def test_wrapped_lines_fit_and_overflow_ends_with_an_ellipsis() -> None:
    font = load_font(14)
    text = "Programação orientada a objetos: exceções " * 20 + "x" * 300
    width = 150.0
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = wrap_text(text, font, width)
    assert len(lines) > 5
    assert all(measure.textlength(line, font=font) <= width for line in lines)
    _, kept, line_height = fit_text(text, width, 60, max_size=20, min_size=10)
    assert len(kept) * line_height <= 60
    assert kept[-1].endswith("…")


@pytest.mark.parametrize(
    ("writer", "reason"),
    [
        (lambda path: path.write_bytes(b"%PDF-1.4 not a picture " * 20), "not a readable"),
        (lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50), "corrupt"),
        (lambda path: png_bomb(path, side=7_000), "megapixel limit"),
        (png_bomb, "megapixel limit"),
        (lambda path: path.write_bytes(make_png_bytes()[:120]), "corrupt or truncated"),
    ],
    ids=["not-an-image", "bad-png", "over-limit", "png-bomb", "truncated"],
)
@pytest.mark.asyncio
async def test_a_bad_upload_fails_its_scene_by_number_without_paths(
    tmp_path: Path, writer: object, reason: str
) -> None:
    image = tmp_path / "secret-dir" / "upload.png"
    image.parent.mkdir()
    assert callable(writer)
    writer(image)
    work = tmp_path / "work"
    work.mkdir()
    scenes = [SceneInput("Um", "Primeira cena."), SceneInput("Dois", "Segunda cena.", image=image)]
    with pytest.raises(SceneRenderError) as caught:
        await render_video(
            scenes,
            workdir=work,
            output=tmp_path / "video.mp4",
            tts=SilentTTS(min_seconds=0.5),
            branding=SMALL,
            language="pt",
        )
    assert caught.value.scene_index == 1
    assert str(caught.value).startswith("scene 2: ")
    assert reason in str(caught.value)
    assert str(tmp_path) not in str(caught.value)
    assert "secret-dir" not in str(caught.value)
    assert list(work.iterdir()) == []
    assert not (tmp_path / "video.mp4").exists()


def make_png_bytes() -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.effect_noise((200, 200), 60).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.asyncio
async def test_cancel_between_scenes_stops_and_cleans_up(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    done: list[int] = []

    async def progress(report: RenderProgress) -> None:
        done.append(report.scene_index)

    scenes = [SceneInput(f"Cena {n}", "Texto curto.") for n in range(3)]
    with pytest.raises(RenderCancelled):
        await render_video(
            scenes,
            workdir=work,
            output=tmp_path / "video.mp4",
            tts=SilentTTS(min_seconds=0.5),
            branding=SMALL,
            language="pt",
            progress=progress,
            cancelled=lambda: len(done) >= 1,
        )
    assert done == [0]  # the second scene never started
    assert list(work.iterdir()) == []
    assert not (tmp_path / "video.mp4").exists()


@pytest.mark.asyncio
async def test_silent_provider_burns_in_captions_and_says_so(tmp_path: Path) -> None:
    tts = tts_from_settings(AISettings(tts_provider="silent"))
    assert isinstance(tts, SilentTTS)
    assert tts.captions
    result = await render_video(
        [SceneInput("Legendas", "Um texto de doze palavras para medir o tempo de leitura.")],
        workdir=tmp_path,
        output=tmp_path / "video.mp4",
        tts=tts,
        branding=SMALL,
        language="pt-BR",
    )
    assert result.warnings == [SILENT_WARNING]  # forced: no "no espeak-ng"
    assert result.audio_codec == "aac"
    assert abs(result.duration - tts.reading_time("x " * 11)) < 0.5
    slide = tmp_path / "slide.png"
    render_slide(SceneInput("t", "caption text"), SMALL, slide, scene_index=0, captions=True)
    with Image.open(slide) as image:
        # The caption band: black across the bottom quarter, behind white text.
        band = image.convert("RGB").crop((0, 180 - 180 // 4, 320, 180))
        assert band.getpixel((1, band.height - 1)) == (0, 0, 0)


FALLBACK_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from tecnocursos.core.settings import AISettings
from tecnocursos.videos import Branding, SceneInput, render_video
from tecnocursos.videos.providers import tts_from_settings

async def main() -> None:
    tts = tts_from_settings(AISettings(tts_provider="local"))
    work = Path(sys.argv[1])
    result = await render_video(
        [SceneInput("Sem voz", "Narração silenciosa com legendas.")], workdir=work,
        output=work / "video.mp4", tts=tts, branding=Branding("C", width=160, height=90),
        language="pt-BR")
    print(json.dumps({"provider": tts.name, "captions": tts.captions,
                      "warnings": result.warnings, "audio": result.audio_codec}))

asyncio.run(main())
"""


def test_local_provider_without_espeak_falls_back_to_silent_captions(tmp_path: Path) -> None:
    """A process whose PATH has no espeak-ng (nor nice): silent narration, with a warning."""
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", FALLBACK_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["provider"] == "silent"
    assert report["captions"] is True
    assert report["warnings"] == [NO_ESPEAK_WARNING]
    assert report["audio"] == "aac"


class BrokenAudioTTS:
    """A provider whose 'audio' is not audio: ffmpeg fails on the scene."""

    name = "broken"
    captions = False

    async def synth(self, text: str, language: str, *, workdir: Path) -> Speech:
        path = workdir / "speech.wav"
        path.write_bytes(b"RIFF....WAVEnot really" * 10)
        return Speech(path, 1.0)


@pytest.mark.asyncio
async def test_an_ffmpeg_failure_names_the_scene_with_a_bounded_path_free_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SceneRenderError) as caught:
        await render_video(
            [SceneInput("Um", "Texto.")],
            workdir=work,
            output=tmp_path / "video.mp4",
            tts=BrokenAudioTTS(),
            branding=SMALL,
            language="pt",
        )
    message = str(caught.value)
    assert message.startswith("scene 1: encoding failed: ffmpeg exited with status")
    assert str(tmp_path) not in message
    assert len(message) < 300
    assert str(work) in caplog.text  # the full stderr is logged for the operator
    assert list(work.iterdir()) == []


def ffmpeg_children() -> list[int]:
    """Processes whose parent is this one and whose command line names ffmpeg."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"ffmpeg" in command:
            found.append(int(entry.name))
    return found


def niceness(pid: int) -> int:
    """Field 19 of /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.asyncio
async def test_cancelling_the_task_kills_ffmpeg_and_cleans_up(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # A long scene (the hint), so ffmpeg is still encoding when the task is cancelled.
    scene = SceneInput("Longa", "Texto.", duration_hint=600.0)
    task = asyncio.create_task(
        render_video(
            [scene],
            workdir=work,
            output=tmp_path / "video.mp4",
            tts=SilentTTS(min_seconds=0.5),
            branding=SMALL,
            language="pt",
        )
    )
    for _ in range(200):
        if ffmpeg_children():
            break
        await asyncio.sleep(0.05)
    children = ffmpeg_children()
    assert children, "ffmpeg never started"
    if shutil.which("nice"):
        # The encoder runs at a lower priority than the API.
        assert niceness(children[0]) == NICENESS + os.nice(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ffmpeg_children() == []
    assert list(work.iterdir()) == []
    assert not (tmp_path / "video.mp4").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"primary_color": "not-a-colour"}, "branding.primary_color is not a colour"),
        ({"width": 321}, "must be even"),
        ({"height": 10}, "within 64x64"),
    ],
)
def test_branding_is_checked_when_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Branding("Curso", **options)


class PatternAvatar:
    """A local avatar provider: a colour test pattern, with or without a tone, by ffmpeg."""

    name = "test-pattern"

    def __init__(self, *, sound: bool) -> None:
        self.sound = sound

    async def create(self, text: str, language: str, *, workdir: Path) -> Path | None:
        clip = workdir / "avatar.mp4"
        sources = ["-f", "lavfi", "-i", "testsrc=size=96x96:rate=25:duration=1.6"]
        if self.sound:
            sources += ["-f", "lavfi", "-i", "sine=frequency=440:duration=1.6"]
        await run_ffmpeg(["-y", *sources, "-pix_fmt", "yuv420p", str(clip)], timeout=60)
        return clip


@pytest.mark.parametrize("sound", [True, False], ids=["clip-speaks", "tts-speaks"])
@pytest.mark.asyncio
async def test_an_avatar_clip_is_overlaid_in_the_corner(tmp_path: Path, sound: bool) -> None:
    branding = Branding("Curso", width=320, height=180)
    result = await render_video(
        [SceneInput("Avatar", "Olá, eu sou o instrutor.")],
        workdir=tmp_path,
        output=tmp_path / "video.mp4",
        tts=SilentTTS(min_seconds=3.0),
        branding=branding,
        language="pt-BR",
        avatar=PatternAvatar(sound=sound),
    )
    assert (result.video_codec, result.audio_codec) == ("h264", "aac")
    # A clip with sound is the narration (1.6 s); without, the TTS provider's (3 s).
    assert abs(result.scenes[0].duration - (1.6 if sound else 3.0)) < 0.1
    frame = tmp_path / "frame.png"
    await run_ffmpeg(
        ["-y", "-ss", "0.5", "-i", str(result.output), "-frames:v", "1", str(frame)], timeout=60
    )
    with Image.open(frame) as image:
        corner = image.convert("RGB").crop((320 - 60, 180 - 60, 320 - 10, 180 - 10))
        left = image.convert("RGB").crop((10, 100, 60, 110))
        # The test pattern's colours in the corner; the slide's white where no avatar is.
        assert len(corner.getcolors(10_000) or []) > 4
        assert all(min(colour) > 200 for _, colour in left.getcolors(10_000) or [(0, (0, 0, 0))])


@pytest.mark.asyncio
async def test_an_avatar_failure_names_the_scene(tmp_path: Path) -> None:
    class BrokenAvatar:
        name = "broken"

        async def create(self, text: str, language: str, *, workdir: Path) -> Path | None:
            clip = workdir / "avatar.mp4"
            clip.write_bytes(b"not a video")
            return clip

    with pytest.raises(SceneRenderError, match=r"^scene 1: the avatar clip is not a video$"):
        await render_video(
            [SceneInput("Avatar", "Olá.")],
            workdir=tmp_path,
            output=tmp_path / "video.mp4",
            tts=SilentTTS(),
            branding=SMALL,
            language="pt",
            avatar=BrokenAvatar(),
        )
