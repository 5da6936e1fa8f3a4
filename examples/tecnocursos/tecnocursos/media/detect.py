"""What a file is, from its first bytes: never from the client's name or content type."""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "detect_type", "kind_of"]

SNIFF_BYTES = 16
"""Bytes needed to recognise every accepted type."""


def detect_type(head: bytes) -> str | None:
    """The media type of a file starting with ``head``, or ``None`` when unknown.

    Images: PNG, JPEG, GIF, WebP. Audio: MP3 (an ID3 tag or an MPEG audio frame sync),
    WAV (RIFF/WAVE), Ogg, FLAC, M4A/MP4 (an ISO base media ``ftyp`` box).
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"ID3") or _mpeg_frame_sync(head):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    return None


def _mpeg_frame_sync(head: bytes) -> bool:
    # 11 set sync bits, then a version other than "reserved" (01) and a layer other
    # than "reserved" (00): https://www.mp3-tech.org/programmer/frame_header.html
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    return version != 0b01 and layer != 0b00


def kind_of(media_type: str) -> str:
    """``image`` or ``audio``: the top-level type of a detected media type."""
    return media_type.partition("/")[0]
