"""Decompression bombs built byte by byte: tiny files whose canvas is huge.

Every frame is a 1×1 dot on a big canvas, so the file stays under a few KB
while a decoder that composites each frame at full canvas size pays
width × height × 4 bytes per frame. Nothing binary is committed; the dots
move, so no two frames are equal and no encoder may merge them.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

Size = tuple[int, int]
#: (index 0) black, white, red, blue: a 4-colour global palette.
PALETTE = bytes((0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255))


def _dot(index: int, size: Size) -> tuple[int, int]:
    """Where frame `index`'s dot sits: spread over the canvas, at even coordinates
    (WebP frame offsets are even)."""
    return (index * 74) % size[0] & ~1, (index * 106) % size[1] & ~1


def _lzw_one_pixel(colour: int) -> bytes:
    """LZW data of a 1-pixel image with a minimum code size of 2: clear, colour, end."""
    bits = 4 | colour << 3 | 5 << 6
    return bytes((2, 2, bits & 0xFF, bits >> 8, 0))


def gif(size: Size = (2000, 2000), frames: int = 40,
        last_at: tuple[int, int] | None = None) -> bytes:
    """An animated GIF of `frames` 1×1 frames on a `size` canvas (≈ 965 bytes for 40).

    `last_at` puts the last frame there, even far outside the canvas: Pillow grows
    the image to hold it when it gets to that frame, after any header check.
    """
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", *size, 0xF1, 0, 0) + PALETTE)
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for index in range(frames):
        at = last_at if last_at is not None and index == frames - 1 else _dot(index, size)
        out += b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # keep the previous frame, 100 ms
        out += b"\x2c" + struct.pack("<HHHHB", *at, 1, 1, 0)
        out += _lzw_one_pixel(2 + index % 2)
    return bytes(out + b"\x3b")


def _chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\x00" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def _u24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def _vp8l_dot(colour: tuple[int, int, int, int]) -> bytes:
    """The VP8L chunk of a lossless 1×1 WebP made by Pillow."""
    out = io.BytesIO()
    Image.new("RGBA", (1, 1), colour).save(out, "WEBP", lossless=True)
    data = out.getvalue()
    start = data.index(b"VP8L")
    return data[start:]


def webp(size: Size = (2000, 2000), frames: int = 40) -> bytes:
    """An animated WebP of `frames` 1×1 frames on a `size` canvas."""
    dots = [_vp8l_dot((255, 0, 0, 255)), _vp8l_dot((0, 0, 255, 255))]
    body = _chunk(b"VP8X", bytes((0x12, 0, 0, 0)) + _u24(size[0] - 1) + _u24(size[1] - 1))
    body += _chunk(b"ANIM", b"\xff\xff\xff\xff" + b"\x00\x00")
    for index in range(frames):
        x, y = _dot(index, size)
        header = _u24(x // 2) + _u24(y // 2) + _u24(0) + _u24(0) + _u24(100) + b"\x00"
        body += _chunk(b"ANMF", header + dots[index % 2])
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _fctl(sequence: int, size: Size, offset: tuple[int, int]) -> bytes:
    return _png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, *size, *offset, 1, 10, 0, 0))


def apng(size: Size = (2000, 2000), frames: int = 40) -> bytes:
    """An animated PNG: a blank `size` first frame (a few KB of zlib), then 1×1 frames."""
    width, height = size
    out = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", *size, 8, 0, 0, 0, 0))
    out += _png_chunk(b"acTL", struct.pack(">II", frames, 0))
    out += _fctl(0, size, (0, 0))
    out += _png_chunk(b"IDAT", zlib.compress(bytes(height * (width + 1)), 9))
    for index in range(1, frames):
        out += _fctl(2 * index - 1, (1, 1), _dot(index, size))
        dot = zlib.compress(bytes((0, 255)))
        out += _png_chunk(b"fdAT", struct.pack(">I", 2 * index) + dot)
    return out + _png_chunk(b"IEND", b"")
