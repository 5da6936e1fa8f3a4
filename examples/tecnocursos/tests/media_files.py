"""Tiny real media files, made by hand, and multipart bodies with raw file names."""

from __future__ import annotations

import io
import struct
import wave
import zlib


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png() -> bytes:
    """A valid 1x1 grey PNG."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + _png_chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """A JPEG's start: SOI and a JFIF APP0 segment, then EOI."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9"


def gif() -> bytes:
    """A valid 1x1 GIF."""
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
        b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


def webp() -> bytes:
    """A RIFF/WEBP container with a lossless (VP8L) 1x1 bitstream."""
    vp8l = b"\x2f\x00\x00\x00\x00\x88\x88\x08"
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav() -> bytes:
    """A real WAV (the ``wave`` module): 10 ms of 8 kHz mono silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


def mp3_id3() -> bytes:
    """An ID3v2.4 tag (empty) followed by an MPEG-1 Layer III frame header."""
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(413)


def mp3_frame() -> bytes:
    """A bare MPEG-1 Layer III frame (128 kbit/s, 44.1 kHz): frame sync, no tag."""
    return b"\xff\xfb\x90\x64" + bytes(413)


def ogg() -> bytes:
    """An Ogg page header (beginning of stream)."""
    return b"OggS\x00\x02" + bytes(8) + b"\x01\x00\x00\x00" + bytes(8) + b"\x01\x1e" + bytes(30)


def flac() -> bytes:
    """``fLaC`` and a STREAMINFO metadata block."""
    return b"fLaC\x80\x00\x00\x22" + bytes(34)


def m4a() -> bytes:
    """An ISO base media ``ftyp`` box with the M4A brand."""
    return b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + b"\x00\x00\x00\x08free"


ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56)
HTML = b"<!DOCTYPE html><html><script>alert(1)</script></html>"

BOUNDARY = "tc-media-boundary-7d1f"


def multipart(
    data: bytes,
    *,
    filename: str = "upload.bin",
    content_type: str = "application/octet-stream",
    fields: dict[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    r"""A ``multipart/form-data`` body with ``data`` as its ``file`` part.

    The file name goes in raw (only ``\`` and ``"`` escaped, as the quoted-string
    grammar needs), unlike httpx, which percent-encodes quotes and control characters
    before the server could see them.
    """
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields or {}).items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{quoted}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
