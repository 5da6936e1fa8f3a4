"""Slides with Pillow: course branding, the scene's title, its script and image.

Uploaded images are untrusted: their size is read from the header and checked before a
pixel is decoded, so a decompression bomb is refused instead of exhausting memory.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from tecnocursos.videos.models import Branding, SceneInput, SceneRenderError

__all__ = ["MAX_SOURCE_PIXELS", "SlideFont", "fit_text", "load_font", "render_slide", "wrap_text"]

MAX_SOURCE_PIXELS = 40_000_000
"""Largest uploaded image decoded (40 megapixels, ~160 MB as RGBA); larger is refused."""

_DEJAVU = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)
_DEJAVU_BOLD = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
)
_ELLIPSIS = "…"

SlideFont = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=128)
def load_font(size: int, *, bold: bool = False) -> SlideFont:
    """DejaVu Sans (Debian's fonts-dejavu-core) when installed, else Pillow's bundled font.

    Both cover Latin-1, so Portuguese accents render.
    """
    for candidate in _DEJAVU_BOLD if bold else _DEJAVU:
        if candidate.is_file():
            return ImageFont.truetype(str(candidate), size)
    return ImageFont.load_default(size=size)


def wrap_text(text: str, font: SlideFont, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width``; words too long are split."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if measure.textlength(candidate, font=font) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            # A word wider than the line (a URL, a typo) is cut into pieces that fit.
            while measure.textlength(word, font=font) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and measure.textlength(word[:cut], font=font) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    return lines


def fit_text(
    text: str, width: float, height: float, max_size: int, min_size: int
) -> tuple[SlideFont, list[str], int]:
    """The largest font (down to ``min_size``) whose wrapped text fits; else truncated."""
    size = max_size
    while True:
        font = load_font(size)
        line_height = int(size * 1.25)
        lines = wrap_text(text, font, width)
        fits = len(lines) * line_height <= height
        if fits or size <= min_size:
            break
        size = max(min_size, int(size * 0.85))
    if not fits:
        keep = max(1, int(height // line_height))
        lines = lines[:keep]
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        last = lines[-1].rstrip()
        while last and measure.textlength(last + _ELLIPSIS, font=font) > width:
            last = last[:-1].rstrip()
        lines[-1] = last + _ELLIPSIS
    return font, lines, line_height


def _open_image(path: Path, scene_index: int) -> Image.Image:
    try:
        with Image.open(path) as probe:
            width, height = probe.size
            if width * height > MAX_SOURCE_PIXELS:
                raise SceneRenderError(
                    scene_index,
                    f"the image is {width}x{height} pixels, over the "
                    f"{MAX_SOURCE_PIXELS // 1_000_000} megapixel limit",
                )
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                probe.load()
            picture: Image.Image = probe.convert("RGBA")
            return picture
    except SceneRenderError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refuses at open() what claims over twice its own limit.
        raise SceneRenderError(
            scene_index,
            f"the image is over the {MAX_SOURCE_PIXELS // 1_000_000} megapixel limit",
        ) from None
    except UnidentifiedImageError:
        raise SceneRenderError(scene_index, "the image is not a readable picture") from None
    except (OSError, SyntaxError, ValueError):
        # Truncated or corrupt data: Pillow raises OSError (or SyntaxError in some plugins).
        raise SceneRenderError(scene_index, "the image is corrupt or truncated") from None


def render_slide(
    scene: SceneInput,
    branding: Branding,
    output: Path,
    *,
    scene_index: int,
    captions: bool = False,
) -> None:
    """Draw the slide of ``scene`` into ``output`` (PNG).

    Args:
        scene: Title, script and optional image.
        branding: Course name, colours and size.
        output: Where the PNG is written.
        scene_index: For errors (0-based).
        captions: Burn the script in as a caption band (silent narration).

    Raises:
        SceneRenderError: The image is corrupt, not an image, or too large.
    """
    w, h = branding.width, branding.height
    slide = Image.new("RGB", (w, h), branding.background_color)
    draw = ImageDraw.Draw(slide)
    margin = max(8, w // 32)

    bar = max(16, h // 12)
    draw.rectangle((0, 0, w, bar), fill=branding.primary_color)
    bar_font, bar_lines, _ = fit_text(branding.course_name, w - 2 * margin, bar, bar * 6 // 10, 6)
    draw.text(
        (margin, bar // 2), bar_lines[0], font=bar_font, fill=branding.bar_text_color, anchor="lm"
    )

    title_top = bar + margin // 2
    title_height = h // 7
    title_font, title_lines, title_lh = fit_text(
        scene.title, w - 2 * margin, title_height, h // 14, 8
    )
    for i, line in enumerate(title_lines):
        draw.text(
            (margin, title_top + i * title_lh), line, font=title_font, fill=branding.text_color
        )

    body_top = title_top + title_height + margin // 2
    caption_height = h // 4 if captions else 0
    body_bottom = h - margin - caption_height
    text_left, text_width = margin, w - 2 * margin
    if scene.image is not None:
        picture = _open_image(scene.image, scene_index)
        box_w, box_h = (w - 3 * margin) // 2, max(1, body_bottom - body_top)
        picture.thumbnail((box_w, box_h))
        x = w - margin - box_w + (box_w - picture.width) // 2
        y = body_top + (box_h - picture.height) // 2
        slide.paste(picture, (x, y), picture)
        text_width = box_w

    if not captions:
        body_font, body_lines, body_lh = fit_text(
            scene.script, text_width, max(1, body_bottom - body_top), h // 20, 6
        )
        for i, line in enumerate(body_lines):
            draw.text(
                (text_left, body_top + i * body_lh), line, font=body_font, fill=branding.text_color
            )
    else:
        top = h - caption_height
        draw.rectangle((0, top, w, h), fill="#000000")
        cap_font, cap_lines, cap_lh = fit_text(
            scene.script, w - 2 * margin, caption_height - margin, h // 22, 6
        )
        for i, line in enumerate(cap_lines):
            draw.text((margin, top + margin // 2 + i * cap_lh), line, font=cap_font, fill="#ffffff")
    slide.save(output, format="PNG")
