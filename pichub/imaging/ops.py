"""Upload processing: sniff, check the limits, verify, then keep, rewrite or re-encode.

Pure and synchronous; runs in the thread pool. Raises PichubError subclasses
for bad input so that the upload service can report each file of a batch on
its own. Error messages never carry Pillow's text (it names temp file paths).

What is stored:

- the original bytes, when the format stays, the orientation is upright and
  the metadata policy removes nothing from this file (no generation loss);
- the original image data with edited metadata (containers.rewrite: location
  or, with `remove_exif`, all metadata removed), when only metadata changes;
- else a re-encode (codecs) from a single decode: the decode that verifies
  the file is the one encoded from, rotated upright, and the source is freed
  as soon as a rotated or converted copy replaces it. Animations are
  encoded frame by frame (codecs.FrameSequence).

Limits, checked from the header before any decode: `max_pixels` per frame,
`max_frames`, and the decode budget (budget.DecodeCost: pixels × frames ×
bytes per pixel), which is what stops a tiny file with a huge animated canvas.
JPEG XL's plugin decodes on open, so its limits are checked on `jxl.read_header`
first; an animated JPEG XL is refused (415).

HEIC/HEIF is never stored as such (browsers cannot show it): it becomes the
`target`, else JPEG (PNG when it has alpha), and `original_format` tells the
caller to keep the uploaded bytes beside. libheif applies the container's
rotation and mirroring (`irot`/`imir`) while decoding, 10-bit pictures are
decoded to 8 bits, the primary image of a multi-image file is the one stored.

Each result also carries what the image's answer tells about it, computed here
from what is decoded anyway: its placeholders (placeholders.py: from the
smallest working copy, or the first frame of an animation) and the summary of
the EXIF the stored file keeps (exif.py, read before any stripping).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from pichub.errors import UnsupportedMediaType, ValidationError
from pichub.imaging import codecs, containers, jxl, placeholders, working
from pichub.imaging.budget import DecodeCost
from pichub.imaging.exif import ExifSummary, summarise
from pichub.imaging.formats import (
    ANIMATED_FORMATS,
    SNIFF_BYTES,
    SOURCE_ONLY,
    pillow_name,
    sniff,
)
from pichub.imaging.metadata import MetadataPolicy

ACCEPTED = "JPEG, PNG, WebP, GIF, AVIF, HEIC/HEIF, JPEG XL"


@dataclass(frozen=True)
class UploadResult:
    """What to store: `data` is None when the original bytes are kept unchanged;
    `working` are the still image's working copies, made from the pixels decoded here;
    `placeholder` and `exif` what the image's answer tells about it (placeholders, exif)."""

    data: bytes | None
    format: str
    width: int
    height: int
    frames: int
    working: tuple[working.WorkingCopy, ...] = ()
    #: The upload's format when its bytes are to be kept beside the stored image (HEIC).
    original_format: str | None = None
    placeholder: placeholders.Placeholder | None = None
    exif: ExifSummary | None = None


def process_upload(
    path: Path,
    *,
    target: str | None,
    quality: int,
    remove_exif: bool,
    keep_location: bool,
    max_pixels: int,
    max_frames: int,
    max_decode_bytes: int,
) -> UploadResult:
    """Validate the file at `path` and produce what PicHub stores for it.

    `target` None keeps the source format; `quality` applies only to a re-encode.
    """
    source = _sniff(path)
    limits = Limits(max_pixels, max_frames, max_decode_bytes)
    if source == "jxl":
        _check_jxl(path, limits)
    policy = MetadataPolicy(remove_all=remove_exif, keep_location=keep_location)
    with _open(path, source) as im:
        frames = _check_limits(im, source, limits)
        fmt = target or _stored_format(source, im)
        with _decoding():  # PNG keeps EXIF after the pixels: decodes
            orientation = codecs.orientation(im, source)
            exif = _exif_summary(im, fmt, policy)
        if fmt != source or orientation != 1:
            result = _reencode(im, source, fmt, frames, orientation, quality, policy)
            return replace(result, exif=exif)
        first = _verify(im, frames)
        copies: list[working.WorkingCopy] = []
        if frames == 1:
            copies, first = working.pyramid(im, im.size, im.info.get("icc_profile"))
        kept = UploadResult(None, fmt, im.width, im.height, frames, tuple(copies),
                            placeholder=placeholders.compute(first), exif=exif)
    return _with_metadata(path, kept, quality, policy)


@dataclass(frozen=True)
class Limits:
    """`storage.max_pixels`, `storage.max_frames`, and the decode budget in bytes."""

    max_pixels: int
    max_frames: int
    max_decode_bytes: int


def probe(path: Path) -> tuple[int, int, str] | None:
    """The width and height an image file declares and its format (header only, no
    decode); None when it is not one PicHub reads (`process_upload` then says why)."""
    try:
        with open(path, "rb") as fh:
            source = sniff(fh.read(SNIFF_BYTES))
        if source is None:
            return None
        if source == "jxl":  # its plugin decodes on open
            header = jxl.read_header(path)
            return header.width, header.height, source
        with Image.open(path, formats=[pillow_name(source)]) as im:
            return im.width, im.height, source
    except (*codecs.DECODE_ERRORS, OSError):
        return None


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        source = sniff(fh.read(SNIFF_BYTES))
    if source is None:
        raise UnsupportedMediaType(
            "Unsupported file format",
            f"Accepted formats: {ACCEPTED}. The type is read from the bytes.",
        )
    return source


def _open(path: Path, fmt: str) -> Image.Image:
    name = pillow_name(fmt)
    try:
        return Image.open(path, formats=[name])
    except codecs.DECODE_ERRORS:
        message = f"cannot decode image: not a valid {name} file"
        if fmt == "heic":
            message += " (HEIF image sequences without a still image are not supported)"
        raise ValidationError.field("file", message) from None


def _stored_format(source: str, im: Image.Image) -> str:
    """The format an upload keeps when none is asked for: its own, except for formats
    browsers cannot show (HEIC): JPEG, or PNG to keep an alpha channel."""
    if source not in SOURCE_ONLY:
        return source
    return "png" if codecs.has_alpha(im) else "jpeg"


def _check_jxl(path: Path, limits: Limits) -> None:
    """The limits of a JPEG XL file, from its header: its plugin decodes on open."""
    try:
        header = jxl.read_header(path)
    except (ValueError, OSError):
        raise ValidationError.field(
            "file", "cannot decode image: not a valid JPEG XL file") from None
    if header.animated:
        raise UnsupportedMediaType(
            "Unsupported file format",
            "Animated JPEG XL is not supported (its frames cannot be counted before "
            "decoding); still JPEG XL images are.")
    _check_numbers(header.width, header.height, 1, 1, "RGBA", "jxl", limits)


@contextmanager
def _decoding() -> Iterator[None]:
    """Pillow's decoding errors → 422 with a plain message (theirs may name the temp file)."""
    try:
        yield
    except codecs.DECODE_ERRORS:
        raise ValidationError.field("file", "image data is truncated or corrupt") from None


def _check_limits(im: Image.Image, fmt: str, limits: Limits) -> int:
    """The frames to decode, once the header's numbers are within `limits`."""
    with _decoding():
        frames = codecs.frame_count(im, fmt)
        # A HEIF file's images (a burst, a sequence's stills) are not frames, but each is
        # parsed: they count against max_frames all the same.
        images = int(getattr(im, "n_frames", 1)) if fmt == "heic" else frames
    _check_numbers(im.width, im.height, frames, images, im.mode, fmt, limits)
    return frames


def _check_numbers(width: int, height: int, frames: int, images: int, mode: str, fmt: str,
                   limits: Limits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ValidationError.field(
            "file", f"image has {pixels} pixels, more than the limit of {limits.max_pixels}"
        )
    if images > limits.max_frames:
        what = "images" if fmt == "heic" else "frames"
        raise ValidationError.field(
            "file", f"image has {images} {what}, more than the limit of {limits.max_frames}"
        )
    cost = DecodeCost.of(width, height, frames, mode, fmt)
    if cost.exceeds(limits.max_decode_bytes):
        raise ValidationError.field("file", cost.explain(limits.max_decode_bytes))


def _verify(im: Image.Image, frames: int) -> Image.Image:
    """Decode every frame: a truncated or garbage file fails here, not later on /img.
    Returns a small copy of the first frame of an animation (for its placeholders), `im`
    itself for a still."""
    canvas = im.size
    first = im
    with _decoding():
        for index in range(frames):
            codecs.load_frame(im, index, canvas)
            if index == 0 and frames > 1:
                first = placeholders.preview(im)
    return first


def _exif_summary(im: Image.Image, fmt: str, policy: MetadataPolicy) -> ExifSummary | None:
    """The summary of the EXIF that the stored file keeps: none with `remove_exif`, none
    in a GIF (it carries no EXIF), the GPS position only when the location is kept."""
    if policy.remove_all or fmt == "gif":
        return None
    return summarise(im.getexif(), with_gps=policy.keep_location)


def _with_metadata(
    path: Path, kept: UploadResult, quality: int, policy: MetadataPolicy
) -> UploadResult:
    """`kept`, or its bytes with the metadata `policy` removes rewritten in place;
    re-encoded only when the container has no rewriter (AVIF) or an odd structure."""
    if policy.keeps_everything:
        return kept
    data = path.read_bytes()
    try:
        rewritten = containers.rewrite(data, kept.format, policy)
    except ValueError:
        rewritten = None
    if rewritten is data:
        return kept
    if rewritten is not None:
        return replace(kept, data=rewritten)
    del data
    with _open(path, kept.format) as im:
        if not _metadata_changes(im, policy):
            return kept
        result = _reencode(im, kept.format, kept.format, kept.frames, 1, quality, policy)
    return replace(result, placeholder=kept.placeholder, exif=kept.exif)


def _metadata_changes(im: Image.Image, policy: MetadataPolicy) -> bool:
    """Whether `policy` changes the EXIF, XMP or comment that Pillow reads from `im`."""
    tiff = _tiff(im.info.get("exif"))
    xmp = _as_bytes(im.info.get("xmp"))
    return (
        (tiff is not None and policy.exif(tiff) is not tiff)
        or (xmp is not None and policy.xmp(xmp) is not xmp)
        or (policy.remove_all and bool(im.info.get("comment")))
    )


def _reencode(
    im: Image.Image,
    source: str,
    fmt: str,
    frames: int,
    orientation: int,
    quality: int,
    policy: MetadataPolicy,
) -> UploadResult:
    # Upright pixels get orientation 1 in EXIF and XMP, also where the decoder turned them.
    upright = orientation != 1 or source in codecs.SELF_ORIENTING
    meta = _metadata(im, replace(policy, upright=upright))
    if frames > 1 and fmt in ANIMATED_FORMATS:
        return _reencode_animation(im, fmt, frames, orientation, quality, meta)
    with _decoding():
        im.load()
    frame = codecs.upright(im, orientation)
    if frame is not im:
        im.close()  # free the decoded source: the upright copy replaces it
    flat = codecs.flatten(frame, fmt)
    if flat is not frame:
        frame.close()
    data = codecs.encode_still(flat, fmt, quality, meta)
    copies, smallest = working.pyramid(flat, flat.size, meta.icc)
    original = source if source in SOURCE_ONLY else None
    return UploadResult(data, fmt, flat.width, flat.height, 1, tuple(copies), original,
                        placeholders.compute(smallest))


def _reencode_animation(
    im: Image.Image, fmt: str, frames: int, orientation: int, quality: int, meta: codecs.Metadata
) -> UploadResult:
    loop = im.info.get("loop")
    first: list[Image.Image] = []  # a small copy of the first output frame: placeholders

    def make(frame: Image.Image) -> Image.Image:
        out = codecs.flatten(codecs.upright(frame.convert("RGBA"), orientation), fmt)
        if not first:
            first.append(placeholders.preview(out))
        return out

    try:
        sequence = codecs.FrameSequence(im, frames, make)
        data = codecs.encode_animation(sequence, fmt, quality, meta, loop)
    except codecs.DecodeError:
        raise ValidationError.field("file", "image data is truncated or corrupt") from None
    width, height = codecs.upright_size(im.size, orientation)
    placeholder = placeholders.compute(first[0]) if first else None
    return UploadResult(data, fmt, width, height, frames, placeholder=placeholder)


def _metadata(im: Image.Image, policy: MetadataPolicy) -> codecs.Metadata:
    """What a re-encode writes: the ICC profile always, EXIF, XMP and the comment as
    `policy` edits them (the pixels are upright now: orientation 1)."""
    tiff = _tiff(im.info.get("exif"))
    xmp = _as_bytes(im.info.get("xmp"))
    comment = im.info.get("comment")
    return codecs.Metadata(
        icc=im.info.get("icc_profile"),
        exif=None if tiff is None else policy.exif(tiff),
        xmp=None if xmp is None else policy.xmp(xmp),
        comment=None if policy.remove_all or not isinstance(comment, bytes) else comment,
    )


def _tiff(exif: object) -> bytes | None:
    """EXIF as Pillow keeps it in `info` → TIFF bytes without the `Exif\\0\\0` header."""
    if not isinstance(exif, bytes) or not exif:
        return None
    return exif.removeprefix(codecs.EXIF_HEADER)


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, str):
        return value.encode()
    return value if isinstance(value, bytes) and value else None
