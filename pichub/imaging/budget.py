"""What decoding an image costs, known from its header before any pixel is decoded.

A GIF of 965 bytes can declare a 2000×2000 canvas and 40 frames: every frame
is decoded at full canvas size, so the pixel limit per frame and the frame
limit, checked separately, let 640 MB of work through. `DecodeCost` multiplies
them (width × height × frames × bytes per pixel) and is checked against
`storage.max_decode_mb` by uploads (422) and by /img transforms (400) before
anything is decoded. `decode_units` turns the same numbers into a weight the
web layer can charge the `img_miss` rate limit with.

Frames are streamed, so memory does not grow with their count, but an
animated encode holds about ANIMATION_MIN_FRAMES full canvases at once
(measured: a 2000×2000 animation grows the peak by 116 MB with 3 frames,
131 MB with 10; 4000×4000 with 3 frames by 450 MB). An animation therefore
counts as at least that many frames: a 2-frame 7000×7000 GIF, within the
pixel and frame limits, would otherwise cost 1.5 GB.

No Pillow here: plain arithmetic on what the header said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from pichub.imaging.formats import ANIMATED_FORMATS
from pichub.imaging.spec import TransformSpec

MB: Final = 2**20
#: Bytes per pixel of an animation frame: frames are composited into an RGBA canvas.
ANIMATION_BYTES_PER_PIXEL: Final = 4
#: Full canvases an animated encode holds at once (source frames, the RGBA frame,
#: libwebp's key-frame and sub-frame candidates): the least an animation counts as.
ANIMATION_MIN_FRAMES: Final = 8
#: Bytes per pixel of formats whose decoders hold buffers of their own besides Pillow's
#: image: libheif's YCbCr planes and RGB copy, libjxl's buffers and output, measured on a
#: 12 MP photo (HEIC 7.3, JPEG XL 8.2). A 48 MP iPhone HEIC needs 390 MB.
DECODER_BYTES_PER_PIXEL: Final = {"heic": 8, "jxl": 8}
#: Decoded source pixels (frames × width × height) per unit of `decode_units`: 16 MP of
#: animation frames cost about what one miss on a large still costs (≈ 0.1 s here).
DECODE_UNIT_PIXELS: Final = 16_000_000


def bytes_per_pixel(mode: str) -> int:
    """Pillow's in-memory size of one pixel of `mode`: 1 for bilevel, grey and
    palette images, 2 for 16-bit grey, else 4 (Pillow stores RGB as 4 bytes too)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


@dataclass(frozen=True)
class DecodeCost:
    """The memory a full decode of `frames` frames of a width × height image takes."""

    width: int
    height: int
    frames: int
    bytes_per_pixel: int

    @classmethod
    def of(cls, width: int, height: int, frames: int, mode: str,
           fmt: str | None = None) -> DecodeCost:
        """The cost of decoding `frames` frames of an image whose first frame has `mode`;
        animations count at 4 bytes per pixel whatever their mode, HEIC and JPEG XL
        (`fmt`) at DECODER_BYTES_PER_PIXEL."""
        bpp = ANIMATION_BYTES_PER_PIXEL if frames > 1 else bytes_per_pixel(mode)
        return cls(width, height, frames, DECODER_BYTES_PER_PIXEL.get(fmt or "", bpp))

    @property
    def counted_frames(self) -> int:
        """`frames`, but at least ANIMATION_MIN_FRAMES for an animation."""
        return max(self.frames, ANIMATION_MIN_FRAMES) if self.frames > 1 else 1

    @property
    def bytes(self) -> int:
        return self.width * self.height * self.counted_frames * self.bytes_per_pixel

    def exceeds(self, limit_bytes: int | None) -> bool:
        return limit_bytes is not None and self.bytes > limit_bytes

    def explain(self, limit_bytes: int) -> str:
        """A sentence naming the numbers, for the client."""
        frames = f" × {self.frames} frames" if self.frames > 1 else ""
        if self.counted_frames != self.frames:
            frames += f" (counted as {self.counted_frames}: the least an animation costs)"
        return (
            f"decoding needs {math.ceil(self.bytes / MB)} MB ({self.width}×{self.height} pixels"
            f"{frames} × {self.bytes_per_pixel} bytes), more than the limit of "
            f"{limit_bytes // MB} MB"
        )


#: Peak bytes per pixel of an upload conversion, measured (20 MP JPEG and 24 MP PNG, one at
#: a time in a fresh process): re-encoding to WebP ≈ 10 (the decode, then libwebp's own
#: copies; codecs.WEBP_FAST_METHOD for big images), to AVIF ≈ 13, to JPEG, PNG or GIF ≈ 4-5,
#: keeping the file (verify decode) ≈ 4. To JPEG XL ≈ 24 (libjxl's encoder holds about 20
#: bytes a pixel whatever its effort).
CONVERSION_BYTES_PER_PIXEL: Final = {"webp": 10, "avif": 13, "jxl": 25}
DEFAULT_CONVERSION_BYTES_PER_PIXEL: Final = 5
#: What a HEIC or JPEG XL source adds to a conversion (its decoder's buffers), measured on
#: 12 MP: HEIC → WebP 11.2, → JPEG 8.3, → JPEG XL 29.2; JPEG XL → WebP 13.9, kept 10.2.
SOURCE_EXTRA_BYTES_PER_PIXEL: Final = {"heic": 3, "jxl": 5}


def conversion_bytes(width: int, height: int, target: str | None,
                     source: str | None = None) -> int:
    """About the most memory converting a width × height upload in format `source` to
    `target` (None: the source's format) takes, for admission before the work starts."""
    per_pixel = CONVERSION_BYTES_PER_PIXEL.get(target or "", DEFAULT_CONVERSION_BYTES_PER_PIXEL)
    per_pixel += SOURCE_EXTRA_BYTES_PER_PIXEL.get(source or "", 0)
    return width * height * per_pixel


def decode_units(width: int, height: int, frames: int, spec: TransformSpec) -> int:
    """The decode cost of making `spec` from a stored width × height image of `frames`
    frames, in units of one still image (for rate limits that charge by cost).

    A still source, or an animated one whose output is a still format (only frame 1
    is decoded), costs 1; an animated output decodes every frame at full canvas size
    whatever the output size, so it costs frames × pixels / DECODE_UNIT_PIXELS,
    rounded up, and at least 1.
    """
    if frames <= 1 or spec.fm not in ANIMATED_FORMATS:
        return 1
    return max(1, math.ceil(width * height * frames / DECODE_UNIT_PIXELS))
