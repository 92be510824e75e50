"""Real HEIC files for the ingest tests, made with pillow-heif's encoder (libheif + x265).

PicHub itself only decodes (pi-heif); pillow-heif is a test dependency. The
iPhone-like photo is what an iPhone writes: 12 MP (4032×3024 sensor pixels),
HEVC in a grid of 512×512 tiles, the rotation of a phone held upright stored
as a container transform (`irot`) together with EXIF orientation 6, camera
EXIF with a GPS position, and an ICC profile.
"""

from __future__ import annotations

import io
import struct
from typing import Final

import pillow_heif
from PIL import Image

from tests.imaging_samples import srgb_icc

RED: Final = (255, 0, 0)
BLUE: Final = (0, 0, 255)
GREY: Final = (128, 128, 128)
#: The sensor's (stored) size of an iPhone 12 MP photo; shown upright it is 3024×4032.
SENSOR: Final = (4032, 3024)
MARK: Final = 400


def _exif(orientation: int, gps: bool) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    return exif.tobytes()


def iphone_photo() -> bytes:
    """12 MP, held upright (EXIF 6 + `irot`), grid-coded: red marks the stored top-left
    corner, blue the stored bottom-left. Shown upright (turned 90° clockwise) red is at
    the top right and blue at the top left."""
    im = Image.new("RGB", SENSOR, GREY)
    im.paste(RED, (0, 0, MARK, MARK))
    im.paste(BLUE, (0, SENSOR[1] - MARK, MARK, SENSOR[1]))
    out = io.BytesIO()
    pillow_heif.encode("RGB", im.size, im.tobytes(), out, quality=50, tile_size=512,
                       exif=_exif(6, gps=True), icc_profile=srgb_icc())
    return out.getvalue()


def small(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (10, 200, 30),
          *, pad: int = 0) -> bytes:
    """A small plain HEIC; `pad` bytes of a `free` box after it make the file bigger
    without changing the picture (for quota tests)."""
    im = Image.new("RGB", size, colour)
    out = io.BytesIO()
    pillow_heif.encode("RGB", im.size, im.tobytes(), out, quality=90)
    data = out.getvalue()
    return data + struct.pack(">I4s", pad + 8, b"free") + bytes(pad) if pad else data


def with_alpha(size: tuple[int, int] = (64, 48)) -> bytes:
    """Left half transparent, right half opaque red."""
    im = Image.new("RGBA", size, (*RED, 255))
    im.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    pillow_heif.encode("RGBA", im.size, im.tobytes(), out, quality=90)
    return out.getvalue()


def ten_bit(size: tuple[int, int] = (64, 48)) -> bytes:
    """A 10-bit HEIC (from 16-bit RGB samples): orange, (255, 128, 0) in 8 bits."""
    pixel = struct.pack("<HHH", 0xFFFF, 0x8000, 0x0000)
    out = io.BytesIO()
    pillow_heif.encode("RGB;16", size, pixel * (size[0] * size[1]), out, quality=90)
    return out.getvalue()


def several_images(count: int) -> bytes:
    """One file with `count` top-level images (a burst); the first is primary (green)."""
    heif = pillow_heif.from_pillow(Image.new("RGB", (64, 48), (0, 255, 0)))
    for _ in range(count - 1):
        heif.add_from_pillow(Image.new("RGB", (32, 32), BLUE))
    out = io.BytesIO()
    heif.save(out, quality=50)
    return out.getvalue()
