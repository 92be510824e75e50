"""Upload processing: sniff, verify, apply orientation, re-encode. Pure and synchronous.

Runs in the thread pool. Raises PichubError subclasses for bad input so that
the upload service can report each file of a batch on its own.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, ImageSequence

from pichub.errors import UnsupportedMediaType, ValidationError
from pichub.imaging.formats import ALPHA_FORMATS, ANIMATED_FORMATS, FORMATS, sniff

ORIENTATION = 0x0112
ACCEPTED = "JPEG, PNG, WebP, GIF, AVIF"


@dataclass(frozen=True)
class UploadResult:
    """What to store: `data` is None when the original bytes are kept unchanged."""

    data: bytes | None
    format: str
    width: int
    height: int
    frames: int


def _open(path: Path, fmt: str) -> Image.Image:
    try:
        return Image.open(path, formats=[FORMATS[fmt][2]])
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationError.field("file", f"cannot decode image: {exc}") from None


def _check_limits(im: Image.Image, max_pixels: int, max_frames: int) -> int:
    pixels = im.width * im.height
    if pixels > max_pixels:
        raise ValidationError.field(
            "file", f"image has {pixels} pixels, more than the limit of {max_pixels}"
        )
    frames = int(getattr(im, "n_frames", 1))
    if frames > max_frames:
        raise ValidationError.field(
            "file", f"image has {frames} frames, more than the limit of {max_frames}"
        )
    return frames


def _verify_decodes(im: Image.Image, frames: int) -> None:
    """Decode every frame: a truncated or garbage file fails here, not later on /img."""
    try:
        for index in range(frames):
            im.seek(index)
            im.load()
        im.seek(0)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValidationError.field("file", f"image data is truncated or corrupt: {exc}") from None


def _flatten(im: Image.Image, fmt: str) -> Image.Image:
    """A mode the target encoder takes; alpha composited on white where it has none."""
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if fmt in ALPHA_FORMATS:
        if fmt == "gif":
            return im
        return im.convert("RGBA" if has_alpha else "RGB") if im.mode not in ("RGB", "RGBA") else im
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im if im.mode in ("RGB", "L") else im.convert("RGB")


def _metadata(im: Image.Image, remove_exif: bool) -> dict[str, Any]:
    """Encoder kwargs: ICC always kept; EXIF (orientation reset to 1) and XMP unless removed."""
    meta: dict[str, Any] = {}
    if icc := im.info.get("icc_profile"):
        meta["icc_profile"] = icc
    if remove_exif:
        return meta
    exif = Image.Exif()  # a copy: the image's own Exif must keep its orientation
    exif.load(im.getexif().tobytes())
    if len(exif):
        if ORIENTATION in exif:
            exif[ORIENTATION] = 1
        meta["exif"] = exif.tobytes()
    if xmp := im.info.get("xmp"):
        meta["xmp"] = xmp
    return meta


def _save_options(fmt: str, quality: int) -> dict[str, Any]:
    if fmt == "jpeg":
        return {"quality": quality}
    if fmt == "webp":
        return {"quality": quality, "method": 4}
    if fmt == "avif":
        return {"quality": quality, "speed": 8}
    if fmt == "png":
        return {"compress_level": 6}
    return {}


def _encode_animation(im: Image.Image, fmt: str, quality: int, meta: dict[str, Any]) -> bytes:
    frames, durations = [], []
    for frame in ImageSequence.Iterator(im):
        durations.append(int(frame.info.get("duration", 100)))
        frames.append(frame.convert("RGBA"))
    out = io.BytesIO()
    options = _save_options(fmt, quality)
    if fmt == "gif":
        meta = {}
    frames[0].save(
        out, FORMATS[fmt][2], save_all=True, append_images=frames[1:], duration=durations,
        loop=int(im.info.get("loop", 0)), **options, **meta,
    )
    return out.getvalue()


def _encode_still(im: Image.Image, fmt: str, quality: int, meta: dict[str, Any]) -> bytes:
    im.seek(0)
    upright = ImageOps.exif_transpose(im) or im
    flat = _flatten(upright, fmt)
    if fmt == "gif":
        meta = {}
    out = io.BytesIO()
    flat.save(out, FORMATS[fmt][2], **_save_options(fmt, quality), **meta)
    return out.getvalue()


def process_upload(
    path: Path,
    *,
    target: str | None,
    quality: int,
    remove_exif: bool,
    max_pixels: int,
    max_frames: int,
) -> UploadResult:
    """Validate the file at `path` and produce what PicHub stores for it.

    `target` None keeps the source format. The original bytes are kept untouched
    (no generation loss) when the format stays, nothing needs rotating and the
    metadata stays; otherwise the image is re-encoded with `quality`.
    """
    with open(path, "rb") as fh:
        source = sniff(fh.read(32))
    if source is None:
        raise UnsupportedMediaType(
            "Unsupported file format",
            f"Accepted formats: {ACCEPTED}. The type is read from the bytes.",
        )
    fmt = target or source
    with _open(path, source) as im:
        frames = _check_limits(im, max_pixels, max_frames)
        _verify_decodes(im, frames)
        orientation = im.getexif().get(ORIENTATION, 1)
        if fmt == source and orientation == 1 and not remove_exif:
            return UploadResult(None, fmt, im.width, im.height, frames)
        meta = _metadata(im, remove_exif)
        animated = frames > 1 and fmt in ANIMATED_FORMATS
        if animated:
            data = _encode_animation(im, fmt, quality, meta)
        else:
            data = _encode_still(im, fmt, quality, meta)
    with Image.open(io.BytesIO(data)) as out:
        return UploadResult(data, fmt, out.width, out.height, frames if animated else 1)
