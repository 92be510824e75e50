"""What `pichub backfill` makes again from a stored image, with one decode at most.

An image stored before PicHub made working copies, or restored from a backup
(which leaves them out), lacks its copies; one stored before PicHub described
images lacks its placeholders and EXIF summary. `remake` reads the stored
file once for whatever is missing: the EXIF summary from its header, the
copies and the placeholders from its pixels, decoded no larger than needed
(JPEG shrinks on load), or the placeholders from its smallest working copy
when only they are missing (a 512 px JPEG, not a 20 MP WebP).

The stored file is the source of truth, as at upload: the summary is of the
EXIF it keeps, so its GPS position is there only when the upload kept its
location, and nothing when it was uploaded with `remove_exif`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pichub.imaging import geometry, placeholders, working
from pichub.imaging.exif import ExifSummary, summarise
from pichub.imaging.formats import FORMATS


@dataclass(frozen=True)
class Remade:
    """The working copies made (empty when none were asked for or none apply) and, when
    asked for (`described`), the image's placeholders and EXIF summary."""

    copies: list[working.WorkingCopy]
    described: bool = False
    placeholder: placeholders.Placeholder | None = None
    exif: ExifSummary | None = None


def remake(path: Path, fmt: str, size: geometry.Size, *, copies: bool, describe: bool,
           smallest_copy: Path | None = None) -> Remade:
    """Blocking: the working copies of the stored still image at `path` (upright `size`) if
    `copies`, its placeholders and EXIF summary if `describe`; an animation gets the latter
    from its first frame. `smallest_copy`: a working copy to take the placeholders from."""
    levels = working.levels_for(size) if copies else ()
    with Image.open(path, formats=[FORMATS[fmt][2]]) as im:
        exif = _exif(im, fmt) if describe else None
        if not describe and not levels:
            return Remade([])
        if not levels and smallest_copy is not None:
            return Remade([], True, _from_copy(smallest_copy), exif)
        if fmt == "jpeg":
            wanted = working.level_size(size, levels[0]) if levels else (
                placeholders.PREVIEW, placeholders.PREVIEW)
            im.draft(im.mode, wanted)
        im.load()  # a still, or an animation's first frame
        made, smallest = working.pyramid(im, size, _icc(im)) if levels else ([], im)
        if not describe:
            return Remade(made)
        return Remade(made, True, placeholders.compute(smallest), exif)


def _exif(im: Image.Image, fmt: str) -> ExifSummary | None:
    """The summary of the file's EXIF, its GPS position included: the stored file has one
    only when the upload kept its location."""
    return None if fmt == "gif" else summarise(im.getexif(), with_gps=True)


def _from_copy(path: Path) -> placeholders.Placeholder | None:
    with Image.open(path, formats=[FORMATS[working.format_of(path)][2]]) as im:
        if im.format == "JPEG":
            im.draft(im.mode, (placeholders.PREVIEW, placeholders.PREVIEW))
        im.load()
        return placeholders.compute(im)


def _icc(im: Image.Image) -> bytes | None:
    icc = im.info.get("icc_profile")
    return icc if isinstance(icc, bytes) else None
