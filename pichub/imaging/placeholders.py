"""Placeholders: what a page can show while an image loads, computed once at upload.

Two of them, both from a small copy (`preview`, long side PREVIEW px) of the
upright pixels that the upload has decoded anyway (the smallest working
copy, or the first frame of an animation), so they add no decode:

- a BlurHash (blurha.sh): a ~30-character string that decoders on every
  front-end platform turn into a blurred picture of the image. 4×3 components
  (3×4 for a portrait image, 4×4 for a square one), computed by the `blurhash`
  package (pure Python) from a HASH_SIZE px copy; pixels with alpha are
  composited on white first, as PicHub's outputs without alpha are.
- the dominant colour, `#rrggbb`: the median-cut quantisation of the preview
  to PALETTE colours, its most frequent colour. Pixels less than half opaque
  do not count (a logo's transparent background is not its colour); a fully
  transparent image is white.

Placeholders describe the stored image (what `url` serves), so a HEIC is
described by its WebP or JPEG, and an image re-encoded without alpha by its
pixels on white.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import blurhash
from PIL import Image

from pichub.imaging import codecs

#: Long side of the copy the placeholders are computed from.
PREVIEW: Final = 64
#: Long side of the pixels the BlurHash is computed from (its encoder is pure Python: it
#: costs width × height × components; 32 px is plenty for 4 components a side).
HASH_SIZE: Final = 32
#: Components of the BlurHash along the long and the short side.
COMPONENTS: Final = (4, 3)
#: Colours the preview is reduced to before the most frequent one is taken.
PALETTE: Final = 6
#: Pixels with less alpha than this are left out of the dominant colour.
OPAQUE: Final = 128
#: Modes Pillow resizes as they are (others are converted before resizing).
_RESIZABLE: Final = frozenset({"RGB", "RGBA", "L", "LA"})


@dataclass(frozen=True)
class Placeholder:
    """A BlurHash of the image and its dominant colour (`#rrggbb`, lower case)."""

    blurhash: str
    dominant_color: str


def preview(im: Image.Image) -> Image.Image:
    """A copy of `im` (loaded, upright) in RGB or RGBA, its long side at most PREVIEW."""
    scale = PREVIEW / max(im.size)
    source = im if im.mode in _RESIZABLE else im.convert("RGBA" if codecs.has_alpha(im)
                                                         else "RGB")
    if scale < 1:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        source = source.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    mode = "RGBA" if codecs.has_alpha(source) else "RGB"
    return source.convert(mode) if source.mode != mode else source.copy()


def compute(small: Image.Image) -> Placeholder | None:
    """The placeholders of the image `small` is a `preview` of (any small image does; it is
    previewed again if bigger). None when its pixels cannot be read."""
    try:
        small = preview(small)
        return Placeholder(_blurhash(small), _dominant(small))
    except (ValueError, OSError):
        return None


def _on_white(im: Image.Image) -> Image.Image:
    if im.mode != "RGBA":
        return im
    background = Image.new("RGB", im.size, codecs.WHITE)
    background.paste(im, (0, 0), im)
    return background


def _blurhash(im: Image.Image) -> str:
    scale = min(1.0, HASH_SIZE / max(im.size))
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    pixels = _on_white(im).resize(size, Image.Resampling.BOX)
    data = pixels.tobytes()  # RGB, 3 bytes a pixel, row after row
    stride = 3 * size[0]
    rows = [[data[at:at + 3] for at in range(y * stride, (y + 1) * stride, 3)]
            for y in range(size[1])]
    x, y = components(im.size)
    return str(blurhash.encode(rows, x, y))


def components(size: tuple[int, int]) -> tuple[int, int]:
    """BlurHash components (x, y) for an image of `size`: more along the long side."""
    long, short = COMPONENTS
    if size[0] == size[1]:
        return long, long
    return (long, short) if size[0] > size[1] else (short, long)


def _dominant(im: Image.Image) -> str:
    if im.mode == "RGBA":
        data = im.tobytes()
        opaque = b"".join(data[at:at + 3] for at in range(0, len(data), 4)
                          if data[at + 3] >= OPAQUE)
        if not opaque:
            return "#ffffff"
        im = Image.frombytes("RGB", (len(opaque) // 3, 1), opaque)
    reduced = im.quantize(PALETTE, method=Image.Quantize.MEDIANCUT)
    palette: list[int] = reduced.getpalette() or []
    counts = [(count, index) for count, index in reduced.getcolors(PALETTE) or [(1, 0)]
              if isinstance(index, int)]  # a palette image's colours are indices
    _, index = max(counts, key=lambda entry: (entry[0], -entry[1]))  # ties: the first
    red, green, blue = palette[3 * index:3 * index + 3] or [255, 255, 255]
    return f"#{red:02x}{green:02x}{blue:02x}"
