"""Resize geometry of sharp's `resize` fit modes, as pure integer math (no Pillow).

sharp (libvips) computes one shrink factor per axis from the source and the
box: `cover`/`outside` take the smaller of W/w and H/h for both axes,
`contain`/`inside` the larger, `fill` keeps each; with one side given both axes
use that side's factor. The resized size is the source divided by the factors,
rounded half up (libvips' VIPS_ROUND_UINT, JavaScript's Math.round), never
below 1 pixel. Then `cover` centre-crops to at most w×h (sharp's
`(in - out + 1) / 2` offsets) and `contain` pads to exactly w×h (offsets
`(out - in) / 2`). Enlargement is allowed, as in sharp.

PicHub adds one bound: the output never exceeds `max_dimension` on a side
(only `outside` and one-sided requests can get there; they are scaled down,
keeping the aspect ratio, as if `inside max_dimension×max_dimension`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Box = tuple[int, int, int, int]
Size = tuple[int, int]


@dataclass(frozen=True)
class Plan:
    """How to turn a W×H source into the output.

    `resize` is the size of the whole source after resizing; `crop` the box
    (left, top, right, bottom) kept from that resized image; `canvas` the
    output size and `offset` where the cropped image sits on it (non-zero only
    for `contain`, whose padding is transparent or white).
    """

    resize: Size
    crop: Box
    canvas: Size
    offset: tuple[int, int]

    @property
    def cropped(self) -> bool:
        return self.crop != (0, 0, self.resize[0], self.resize[1])

    @property
    def padded(self) -> bool:
        return self.canvas != (self.crop[2] - self.crop[0], self.crop[3] - self.crop[1])


def _round(value: float) -> int:
    """Math.round for positive numbers; at least 1 so no axis vanishes."""
    return max(1, math.floor(value + 0.5))


def shrink_factors(src: Size, w: int | None, h: int | None, fit: str) -> tuple[float, float]:
    """sharp's ResolveShrink: source pixels per output pixel on each axis."""
    width, height = src
    if w is not None and h is not None:
        hshrink, vshrink = width / w, height / h
        if fit in ("cover", "outside"):
            hshrink = vshrink = min(hshrink, vshrink)
        elif fit in ("contain", "inside"):
            hshrink = vshrink = max(hshrink, vshrink)
    elif w is not None:
        hshrink = vshrink = width / w
    elif h is not None:
        hshrink = vshrink = height / h
    else:
        hshrink = vshrink = 1.0
    # sharp never shrinks an axis below one pixel.
    return min(hshrink, float(width)), min(vshrink, float(height))


def resized_size(src: Size, w: int | None, h: int | None, fit: str) -> Size:
    """The size of the whole source after the resize step."""
    hshrink, vshrink = shrink_factors(src, w, h, fit)
    return _round(src[0] / hshrink), _round(src[1] / vshrink)


def _bounded(src: Size, size: Size, max_dimension: int | None) -> Size:
    if max_dimension is None or max(size) <= max_dimension:
        return size
    return resized_size(src, min(size[0], max_dimension), min(size[1], max_dimension), "inside")


def centre_crop(size: Size, w: int, h: int) -> Box:
    """sharp's centre gravity crop of at most w×h out of `size`."""
    out_w, out_h = min(w, size[0]), min(h, size[1])
    left, top = (size[0] - out_w + 1) // 2, (size[1] - out_h + 1) // 2
    return left, top, left + out_w, top + out_h


def plan(
    src: Size,
    w: int | None,
    h: int | None,
    fit: str,
    max_dimension: int | None = None,
) -> Plan:
    """The plan for a `src` (upright) source, a w/h box and a sharp fit mode."""
    size = resized_size(src, w, h, fit)
    full: Box = (0, 0, size[0], size[1])
    if w is None or h is None or fit in ("inside", "outside"):
        size = _bounded(src, size, max_dimension)
        return Plan(size, (0, 0, size[0], size[1]), size, (0, 0))
    if fit == "cover":
        crop = centre_crop(size, w, h)
        return Plan(size, crop, (crop[2] - crop[0], crop[3] - crop[1]), (0, 0))
    if fit == "contain":
        offset = ((w - size[0]) // 2, (h - size[1]) // 2)
        return Plan(size, full, (w, h), offset)
    return Plan(size, full, size, (0, 0))  # fill


def source_box(p: Plan, src: Size) -> tuple[float, float, float, float]:
    """`p.crop` mapped back onto an image of size `src` (for a one-step crop+resample).

    Resampling this (fractional) box of the source straight to the crop's size
    samples exactly the pixels that "resize all, then crop" would, without
    building the full resized image first.
    """
    sx, sy = src[0] / p.resize[0], src[1] / p.resize[1]
    left, top, right, bottom = p.crop
    return left * sx, top * sy, right * sx, bottom * sy
