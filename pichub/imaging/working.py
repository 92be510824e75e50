"""Working copies: small renditions of a stored image that variants are made from.

Decoding is what a cold variant mostly costs, and only JPEG can decode at a
reduced size (Pillow has no shrink-on-load for WebP, PNG or AVIF): a 20 MP
photo stored as WebP (the default) takes ~0.5 s to decode on this VM, for any
variant. So when PicHub stores a still image it also keeps a small pyramid of
working copies (LEVELS: long sides of 1600 and 512 px, only those well below
the original), made from the pixels it has just decoded anyway. A variant is
made from the smallest copy that still has WORKING_MARGIN times the pixels
the output needs on each axis, with the original's geometry (the crop box is
mapped onto the copy), and from the original when none is big enough.

Copies are JPEG (q92) for opaque images and PNG for images with alpha: JPEG
decodes fastest (and can itself shrink on load); transparency needs a
lossless format. On the bench photos they add about 12 % to the stored bytes
(4:4:4 chroma would double that for no visible gain after the final resample;
tests/test_imaging_working.py holds variants through a copy to SSIM ≥ 0.98
of the same variants from the original, text screenshots included). They are
files beside the original (`<id>.w1600.jpg`), written before the image's row
commits, deleted with the image, left out of backups (made again on the first
transform that decodes the original, or by `pichub backfill`: imaging.stored).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from pichub.imaging import codecs, geometry

#: Long sides of the working copies, largest first.
LEVELS: Final = (1600, 512)
#: A copy serves a variant when it has this many times the pixels needed on each axis,
#: so one more resample from a lossy copy stays visually the same as from the original.
WORKING_MARGIN: Final = 1.25
#: A level is made only for originals this many times longer: smaller ones are cheap already.
MIN_GAIN: Final = 1.5
JPEG_QUALITY: Final = 92
RESAMPLE: Final = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class WorkingCopy:
    """One encoded working copy: its level (long side), format and pixels' size."""

    level: int
    format: str  # "jpeg" or "png"
    width: int
    height: int
    data: bytes

    @property
    def ext(self) -> str:
        return "jpg" if self.format == "jpeg" else "png"


def levels_for(size: geometry.Size) -> tuple[int, ...]:
    """The levels worth keeping for an original of `size` (upright)."""
    return tuple(level for level in LEVELS if max(size) >= level * MIN_GAIN)


def level_size(size: geometry.Size, level: int) -> geometry.Size:
    """The size of the copy at `level`: long side `level`, the original's aspect."""
    scale = level / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def make(im: Image.Image, original: geometry.Size, icc: bytes | None) -> list[WorkingCopy]:
    """The working copies of `original` (upright size) from `im`: its upright, loaded
    pixels at that size or, after a reduced decode, smaller (levels above what `im` has
    are skipped). Each level is made from the previous one: one cheap step each."""
    return pyramid(im, original, icc)[0]


def pyramid(im: Image.Image, original: geometry.Size,
            icc: bytes | None) -> tuple[list[WorkingCopy], Image.Image]:
    """`make`'s copies, and the smallest picture made on the way (`im` itself when no
    level was made): a cheap start for anything else that needs few pixels (placeholders)."""
    copies: list[WorkingCopy] = []
    source = im
    for level in levels_for(original):
        target = level_size(original, level)
        if source.width < target[0] or source.height < target[1]:
            continue
        try:
            resized = _resized(source, target)
            copies.append(_encode(resized, level, icc))
        except (ValueError, OSError):  # a mode Pillow cannot convert: variants use the original
            break
        source = resized
    return copies, source


def pick(original: geometry.Size, needed: geometry.Size,
         available: tuple[int, ...]) -> int | None:
    """The smallest available level with WORKING_MARGIN times `needed` (the size the whole
    image is resized to) on both axes; None when the original must be used."""
    for level in sorted(available):
        width, height = level_size(original, level)
        if width >= needed[0] * WORKING_MARGIN and height >= needed[1] * WORKING_MARGIN:
            return level
    return None


def format_of(path: Path) -> str:
    """The format of a working copy file, from its name."""
    return "png" if path.suffix == ".png" else "jpeg"


def _resized(im: Image.Image, target: geometry.Size) -> Image.Image:
    mode = "RGBA" if codecs.has_alpha(im) else "RGB"
    source = im if im.mode == mode else im.convert(mode)
    return source.resize(target, RESAMPLE, reducing_gap=3.0)


def _encode(im: Image.Image, level: int, icc: bytes | None) -> WorkingCopy:
    out = io.BytesIO()
    profile = codecs.matching_icc(icc, im.mode)
    extra = {"icc_profile": profile} if profile else {}
    if im.mode == "RGBA":
        im.save(out, "PNG", compress_level=1, **extra)
        fmt = "png"
    else:
        im.save(out, "JPEG", quality=JPEG_QUALITY, **extra)
        fmt = "jpeg"
    return WorkingCopy(level, fmt, im.width, im.height, out.getvalue())
