"""Make one variant of a stored image: pure, synchronous Pillow, run in the pool.

Order of work, chosen so a big JPEG never costs a full-size decode and a
small file with a huge canvas never costs a decode at all:

1. open lazily and read the size, mode and frame count from the header;
   refuse (400) a source whose decode would pass `max_decode_bytes`
   (budget.DecodeCost: pixels × frames decoded × bytes per pixel);
2. read the EXIF orientation and ICC profile; plan the geometry
   (geometry.plan) on the upright size;
3. shrink on load: JPEG `draft` decodes at 1/2, 1/4 or 1/8 scale (DCT
   scaling) to no less than the resized size, then `reduce` box-averages by
   an integer factor while at least REDUCING_GAP× remains;
4. rotate upright on that small image;
5. one resample (Lanczos) of the crop box straight to the output size
   (geometry.source_box: same pixels as "resize all, then crop");
6. pad for `contain` (transparent if the format has alpha, else white);
7. encode (codecs: the encoder settings shared with uploads) with only the
   ICC profile kept (no EXIF, XMP or comments).

Animated GIF/WebP sources stay animated when the output is GIF or WebP (every
frame resized the same way, durations and loop kept), otherwise only frame 1
is decoded. Animation frames are made one at a time as the encoder asks for
them (codecs.FrameSequence), so memory holds a few frames whatever their
count; the output is bounded by MAX_ANIMATION_PIXELS pixel-frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from pichub.errors import BadRequest
from pichub.imaging import codecs, geometry, jxl
from pichub.imaging.budget import ANIMATION_MIN_FRAMES, MB, DecodeCost
from pichub.imaging.formats import ALPHA_FORMATS, ANIMATED_FORMATS, FORMATS, canonical, mime_of
from pichub.imaging.spec import TransformSpec, quality_for

#: Resample at least this much after shrink-on-load, for the final filter's quality.
REDUCING_GAP: Final = 2.0
#: Output pixels × frames allowed for an animation, counted as at least
#: ANIMATION_MIN_FRAMES frames: libwebp holds about that many output canvases (so
#: one frame is at most 8 MP: 256 MB of canvases), Pillow's GIF writer keeps every
#: output frame (1 byte per pixel) and each pixel-frame costs encoder time (WebP
#: method 4: about 0.15 s per megapixel-frame here).
MAX_ANIMATION_PIXELS: Final = 64_000_000
RESAMPLE: Final = Image.Resampling.LANCZOS
#: Modes Pillow's `reduce` refuses; the resample after the mode conversion reduces them.
UNREDUCIBLE: Final = frozenset({"1", "P", "I;16", "I;16L", "I;16B", "I;16N"})
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
    max_decode_bytes: int | None = None,
    plan_size: geometry.Size | None = None,
    on_decoded: Callable[[Image.Image], object] | None = None,
    decode_at_least: geometry.Size = (1, 1),
) -> Encoded:
    """Decode `source`, apply `spec` with sharp's geometry, encode.

    `plan_size`: the (upright) size of the image the geometry is planned on when
    `source` is a smaller rendition of it (a working copy): the output then has
    exactly the size and framing the original would give. `on_decoded` is shown the
    upright decoded still before it is resized (to keep working copies from it); it is
    shrunk on load no further than `decode_at_least`.
    Raises BadRequest, before decoding anything, for a source over
    `max_decode_bytes` or an animation too large at the requested size.
    """
    fmt = canonical(source_format) or source_format
    quality = spec.q or quality_for(spec.fm, default_quality)
    if fmt == "jxl":  # its plugin decodes on open: the budget is checked on the header
        header = jxl.read_header(source)
        _check_budget(header.width, header.height, 1, "RGBA", fmt, max_decode_bytes)
    with Image.open(source, formats=[FORMATS[fmt][2]]) as im:
        frames = codecs.frame_count(im, fmt)
        animated = frames > 1 and spec.fm in ANIMATED_FORMATS
        _check_budget(im.width, im.height, frames if animated else 1, im.mode, fmt,
                      max_decode_bytes)
        orientation = codecs.orientation(im, fmt)
        meta = codecs.Metadata(icc=im.info.get("icc_profile"))
        upright = codecs.upright_size(im.size, orientation)
        p = geometry.plan(plan_size or upright, spec.w, spec.h, spec.fit, max_dimension)
        if animated:
            return _animation(im, frames, orientation, p, spec.fm, quality, meta)
        wanted = max(p.resize[0], decode_at_least[0]), max(p.resize[1], decode_at_least[1])
        target = _within(wanted, upright)
        # A working copy is small already: decoded whole, as JPEG's DCT scaling would cost
        # the quality that the copy's margin is there to keep.
        frame = decode_scaled(im, fmt, orientation, target, draft=plan_size is None)
        if on_decoded is not None:
            on_decoded(frame)
        out = _finish(frame, p, spec.fm)
        data = codecs.encode_still(out, spec.fm, quality, meta)
    return Encoded(data, spec.fm, mime_of(spec.fm), out.width, out.height)


def _within(size: geometry.Size, bound: geometry.Size) -> geometry.Size:
    """`size`, no larger than `bound` on either axis (a rendition smaller than the plan's
    resize step is decoded whole; the final resample enlarges)."""
    return min(size[0], bound[0]), min(size[1], bound[1])


def _check_budget(width: int, height: int, frames: int, mode: str, fmt: str,
                  limit: int | None) -> None:
    cost = DecodeCost.of(width, height, frames, mode, fmt)
    if limit is not None and cost.exceeds(limit):
        raise BadRequest(
            f"Image is too large to transform: {cost.explain(limit)}",
            {"width": width, "height": height, "frames": frames,
             "decode_mb": math.ceil(cost.bytes / MB), "max_decode_mb": limit // MB},
        )


def decode_scaled(
    im: Image.Image, fmt: str, orientation: int, target: geometry.Size, *, draft: bool = True
) -> Image.Image:
    """The loaded, upright first frame, no smaller than `target` (upright) but
    shrunk on load as far as that allows: JPEG draft (unless `draft` is False), then
    integer `reduce`."""
    stored_target = codecs.upright_size(target, orientation)
    if fmt == "jpeg" and draft:
        im.draft(im.mode, stored_target)
    im.load()
    factor = 1 if im.mode in UNREDUCIBLE else _reduce_factor(im.size, stored_target)
    frame = im.reduce(factor) if factor > 1 else im
    return codecs.upright(frame, orientation)


def _reduce_factor(size: geometry.Size, target: geometry.Size) -> int:
    scale = min(size[0] / target[0], size[1] / target[1])
    return max(1, math.floor(scale / REDUCING_GAP))


def _working_mode(im: Image.Image) -> Image.Image:
    """RGB or RGBA: what resizing, padding and every encoder handle alike."""
    mode = "RGBA" if codecs.has_alpha(im) else "RGB"
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
        canvas = Image.new("RGBA" if alpha_out else "RGB", p.canvas,
                           CLEAR if alpha_out else codecs.WHITE)
        if im.mode == "RGBA":
            canvas.paste(im, p.offset, im)
        else:
            canvas.paste(im, p.offset)
        im = canvas
    return codecs.flatten(im, fmt)


def _animation(
    im: Image.Image,
    frames: int,
    orientation: int,
    p: geometry.Plan,
    fmt: str,
    quality: int,
    meta: codecs.Metadata,
) -> Encoded:
    if max(frames, ANIMATION_MIN_FRAMES) * p.canvas[0] * p.canvas[1] > MAX_ANIMATION_PIXELS:
        raise BadRequest(
            "Requested size is too large for an animated image",
            {"frames": frames, "max_pixels": MAX_ANIMATION_PIXELS},
        )
    loop = im.info.get("loop")

    def make(frame: Image.Image) -> Image.Image:
        return _finish(codecs.upright(frame.convert("RGBA"), orientation), p, fmt)

    sequence = codecs.FrameSequence(im, frames, make)
    data = codecs.encode_animation(sequence, fmt, quality, meta, loop)
    return Encoded(data, fmt, mime_of(fmt), p.canvas[0], p.canvas[1])
