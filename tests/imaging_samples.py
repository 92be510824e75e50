"""Real test images made with Pillow, written to files: textured photos, bands,
alpha, animation, EXIF orientation, ICC. Shared by the imaging tests (and
reusable by upload/view tests)."""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageCms, ImageDraw

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
ORIENTATION = 0x0112
MAKE = 0x010F
LANDSCAPE = (640, 480)
PORTRAIT = (480, 640)
SQUARE = (500, 500)


def textured(size: tuple[int, int]) -> Image.Image:
    """An RGB image with detail everywhere (a fractal plus noise), like a photo."""
    small = (max(1, size[0] // 4), max(1, size[1] // 4))
    fractal = Image.effect_mandelbrot(small, (-2.0, -1.2, 1.0, 1.2), 40).convert("RGB")
    noise = Image.effect_noise(small, 40).convert("RGB")
    return Image.blend(fractal, noise, 0.3).resize(size, Image.Resampling.BILINEAR)


@functools.cache
def srgb_icc() -> bytes:
    """A real ICC profile (Pillow's built-in sRGB)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return bytes(profile.tobytes())


def jpeg(path: Path, size: tuple[int, int] = LANDSCAPE, *, quality: int = 90) -> Path:
    """A textured RGB JPEG: pass LANDSCAPE, PORTRAIT, SQUARE or any size."""
    textured(size).save(path, "JPEG", quality=quality)
    return path


def bands(path: Path, size: tuple[int, int] = (300, 100), fmt: str = "PNG") -> Path:
    """Three equal vertical bands, red | green | blue (left, centre, right)."""
    im = Image.new("RGB", size, RED)
    third = size[0] // 3
    im.paste(GREEN, (third, 0, 2 * third, size[1]))
    im.paste(BLUE, (2 * third, 0, size[0], size[1]))
    im.save(path, fmt)
    return path


def png_with_alpha(path: Path, size: tuple[int, int] = (200, 100)) -> Path:
    """Transparent background with an opaque red rectangle in the middle."""
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).rectangle(
        (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4), fill=(*RED, 255)
    )
    im.save(path, "PNG")
    return path


def animated_gif(
    path: Path,
    size: tuple[int, int] = (120, 80),
    durations: Sequence[int] = (100, 200, 300, 400),
    *,
    loop: int | None = 0,
) -> Path:
    """An animated GIF with one distinctly coloured frame per duration."""
    colours = [(255 * (i % 2), 60 * i % 256, 255 - 50 * i % 256) for i in range(len(durations))]
    frames = [Image.new("RGB", size, colour) for colour in colours]
    for index, frame in enumerate(frames):  # a moving square, so no two frames are equal
        ImageDraw.Draw(frame).rectangle((index * 10, 10, index * 10 + 20, 30), fill=(255, 255, 0))
    options: dict[str, object] = {"save_all": True, "append_images": frames[1:]}
    options["duration"] = list(durations)
    if loop is not None:
        options["loop"] = loop
    frames[0].save(path, "GIF", **options)
    return path


def exif_bytes(orientation: int = 1, make: str | None = "PicHubCam") -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    if make:
        exif[MAKE] = make
    return exif.tobytes()


def oriented_jpeg(path: Path, stored: tuple[int, int] = (200, 100), orientation: int = 6) -> Path:
    """A JPEG stored sideways with EXIF orientation and a red 20×20 marker at the
    stored top-left corner (orientation 6 shows it at the upright top-right)."""
    im = Image.new("RGB", stored, (128, 128, 128))
    im.paste(RED, (0, 0, 20, 20))
    im.save(path, "JPEG", quality=95, exif=exif_bytes(orientation))
    return path


def jpeg_with_metadata(path: Path, size: tuple[int, int] = (160, 120)) -> Path:
    """A textured JPEG with EXIF (camera make), an ICC profile and a comment."""
    textured(size).save(
        path, "JPEG", quality=90, exif=exif_bytes(1), icc_profile=srgb_icc(), comment=b"secret"
    )
    return path


def garbage(path: Path) -> Path:
    """JPEG magic bytes followed by noise: looks right, does not decode."""
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    return path


def open_bytes(data: bytes) -> Image.Image:
    """Open an encoded image held in memory."""
    return Image.open(io.BytesIO(data))
