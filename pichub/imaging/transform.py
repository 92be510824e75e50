"""Make one variant of a stored image: pure, synchronous Pillow, run in the pool.

Order of work, chosen so a big JPEG never costs a full-size decode:

1. open lazily and read the size, EXIF orientation and ICC profile;
2. plan the geometry (geometry.plan) on the upright size;
3. shrink on load: JPEG `draft` decodes at 1/2, 1/4 or 1/8 scale (DCT
   scaling) to no less than the resized size, then `reduce` box-averages by
   an integer factor while at least REDUCING_GAP× remains;
4. rotate upright (ImageOps.exif_transpose) on that small image;
5. one resample (Lanczos) of the crop box straight to the output size
   (geometry.source_box: same pixels as "resize all, then crop");
6. pad for `contain` (transparent if the format has alpha, else white);
7. encode with only the ICC profile kept (no EXIF, XMP or comments).

Animated GIF/WebP sources stay animated when the output is GIF or WebP (every
frame resized the same way, durations and loop kept), otherwise frame 1 is used.

Encoder settings, measured on this 2-core VM (20 MP JPEG → 800×600 cover;
whole transform: JPEG ≈ 70–85 ms, WebP ≈ 120 ms, AVIF ≈ 110–125 ms, PNG
≈ 185 ms; a plain full-size decode alone costs 105–190 ms). Encoder alone on
the 800×600 result: JPEG q85 2 ms (optimize +3 ms for −5 % bytes,
progressive +10 ms: both off); WebP method 2/4/6 ≈ 35/75/210 ms, sizes within
a few % of each other (method 4, libwebp's and sharp's default balance);
AVIF speed 6/8/10 ≈ 190/67/28 ms at equal size (speed 8); PNG level 3/6
≈ 70/175 ms on a photo but level 3 is 75 % bigger on flat graphics, where PNG
is the right choice (level 6, zlib's default).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageOps, ImageSequence

from pichub.errors import BadRequest
from pichub.imaging import geometry
from pichub.imaging.formats import ALPHA_FORMATS, ANIMATED_FORMATS, FORMATS, canonical, mime_of
from pichub.imaging.spec import TransformSpec, quality_for

ORIENTATION: Final = 0x0112
SWAPPING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})
#: Resample at least this much after shrink-on-load, for the final filter's quality.
REDUCING_GAP: Final = 2.0
#: Output pixels × frames allowed for an animation (RGBA frames live in memory).
MAX_ANIMATION_PIXELS: Final = 64_000_000
RESAMPLE: Final = Image.Resampling.LANCZOS
#: Modes Pillow's `reduce` refuses; the resample after the mode conversion reduces them.
UNREDUCIBLE: Final = frozenset({"1", "P", "I;16", "I;16L", "I;16B", "I;16N"})
WHITE: Final = (255, 255, 255)
CLEAR: Final = (0, 0, 0, 0)


@dataclass(frozen=True)
class Encoded:
    """An encoded variant and what the HTTP layer needs to know about it."""

    data: bytes
    format: str
    mime: str
    width: int
    height: int


def transform(
    source: Path,
    source_format: str,
    spec: TransformSpec,
    *,
    default_quality: int = 80,
    max_dimension: int | None = None,
) -> Encoded:
    """Decode `source`, apply `spec` with sharp's geometry, encode. Raises BadRequest
    only for an animation too large at the requested size."""
    fmt = canonical(source_format) or source_format
    quality = spec.q or quality_for(spec.fm, default_quality)
    with Image.open(source, formats=[FORMATS[fmt][2]]) as im:
        orientation = _orientation(im)
        icc = _rgb_icc(im)
        upright = _upright_size(im.size, orientation)
        p = geometry.plan(upright, spec.w, spec.h, spec.fit, max_dimension)
        if getattr(im, "n_frames", 1) > 1 and spec.fm in ANIMATED_FORMATS:
            return _animation(im, orientation, p, spec.fm, quality, icc)
        frame = decode_scaled(im, fmt, orientation, p.resize)
        out = _finish(frame, p, spec.fm)
        data = _encode_still(out, spec.fm, quality, icc)
    return Encoded(data, spec.fm, mime_of(spec.fm), out.width, out.height)


def _rgb_icc(im: Image.Image) -> bytes | None:
    """The embedded ICC profile if it describes RGB: output is always RGB(A), and a
    grey or CMYK profile on RGB pixels would be wrong (such pixels are converted
    without colour management)."""
    icc = im.info.get("icc_profile")
    return icc if isinstance(icc, bytes) and icc[16:20] == b"RGB " else None


def _orientation(im: Image.Image) -> int:
    value = im.getexif().get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright_size(size: geometry.Size, orientation: int) -> geometry.Size:
    return (size[1], size[0]) if orientation in SWAPPING_ORIENTATIONS else size


def decode_scaled(
    im: Image.Image, fmt: str, orientation: int, target: geometry.Size
) -> Image.Image:
    """The loaded, upright first frame, no smaller than `target` (upright) but
    shrunk on load as far as that allows: JPEG draft, then integer `reduce`."""
    stored_target = _upright_size(target, orientation)
    if fmt == "jpeg":
        im.draft(im.mode, stored_target)
    im.load()
    factor = 1 if im.mode in UNREDUCIBLE else _reduce_factor(im.size, stored_target)
    frame = im.reduce(factor) if factor > 1 else im
    if orientation != 1:
        frame = ImageOps.exif_transpose(frame)
    return frame


def _reduce_factor(size: geometry.Size, target: geometry.Size) -> int:
    scale = min(size[0] / target[0], size[1] / target[1])
    return max(1, math.floor(scale / REDUCING_GAP))


def _working_mode(im: Image.Image) -> Image.Image:
    """RGB or RGBA: what resizing, padding and every encoder handle alike."""
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    mode = "RGBA" if has_alpha else "RGB"
    return im if im.mode == mode else im.convert(mode)


def _finish(frame: Image.Image, p: geometry.Plan, fmt: str) -> Image.Image:
    """Resample the crop box to size, pad for contain, then fit the output format's modes."""
    im = _working_mode(frame)
    size = (p.crop[2] - p.crop[0], p.crop[3] - p.crop[1])
    if p.cropped or size != im.size:
        box = geometry.source_box(p, im.size)
        im = im.resize(size, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    alpha_out = fmt in ALPHA_FORMATS
    if p.padded:
        canvas = Image.new("RGBA" if alpha_out else "RGB", p.canvas, CLEAR if alpha_out else WHITE)
        if im.mode == "RGBA":
            canvas.paste(im, p.offset, im)
        else:
            canvas.paste(im, p.offset)
        im = canvas
    if im.mode == "RGBA" and not alpha_out:
        im = _flatten(im)
    im.info = {}  # nothing from the source may leak into the encoder (EXIF, XMP, comments)
    return im


def _flatten(im: Image.Image) -> Image.Image:
    background = Image.new("RGB", im.size, WHITE)
    background.paste(im, (0, 0), im)
    return background


def _save_options(fmt: str, quality: int, icc: bytes | None) -> dict[str, Any]:
    options: dict[str, Any] = {"icc_profile": icc} if icc and fmt != "gif" else {}
    if fmt == "jpeg":
        options |= {"quality": quality, "optimize": False, "progressive": False}
    elif fmt == "webp":
        options |= {"quality": quality, "method": 4}
    elif fmt == "avif":
        options |= {"quality": quality, "speed": 8}
    elif fmt == "png":
        options |= {"compress_level": 6}
    return options


def _encode_still(im: Image.Image, fmt: str, quality: int, icc: bytes | None) -> bytes:
    out = io.BytesIO()
    im.save(out, FORMATS[fmt][2], **_save_options(fmt, quality, icc))
    return out.getvalue()


def _frames(
    im: Image.Image, orientation: int, p: geometry.Plan, fmt: str
) -> Iterator[tuple[Image.Image, int]]:
    for frame in ImageSequence.Iterator(im):
        duration = int(frame.info.get("duration", 100))
        rgba = frame.convert("RGBA")
        if orientation != 1:
            rgba = ImageOps.exif_transpose(rgba)
        yield _finish(rgba, p, fmt), duration


def _animation(
    im: Image.Image,
    orientation: int,
    p: geometry.Plan,
    fmt: str,
    quality: int,
    icc: bytes | None,
) -> Encoded:
    frame_count = int(getattr(im, "n_frames", 1))
    if frame_count * p.canvas[0] * p.canvas[1] > MAX_ANIMATION_PIXELS:
        raise BadRequest(
            "Requested size is too large for an animated image",
            {"frames": frame_count, "max_pixels": MAX_ANIMATION_PIXELS},
        )
    loop = im.info.get("loop")
    frames, durations = zip(*_frames(im, orientation, p, fmt), strict=True)
    options = _save_options(fmt, quality, icc)
    options |= {"save_all": True, "append_images": list(frames[1:]), "duration": list(durations)}
    if fmt == "gif":
        options |= {"disposal": 2} | ({} if loop is None else {"loop": loop})
    else:
        options["loop"] = 1 if loop is None else loop  # GIF without NETSCAPE loop plays once
    out = io.BytesIO()
    frames[0].save(out, FORMATS[fmt][2], **options)
    return Encoded(out.getvalue(), fmt, mime_of(fmt), p.canvas[0], p.canvas[1])
