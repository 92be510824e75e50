"""What uploads (ops) and variants (transform) share: orientation, modes, encoders.

One copy of each: the EXIF orientation and its transposes, flattening to a
mode the encoder takes, the encoder settings, still encoding, and animation
encoding that streams frames (`FrameSequence`) instead of holding a list of
full-canvas RGBA frames.

Encoder settings, measured on this 2-core VM (20 MP JPEG → 800×600 cover;
whole transform: JPEG ≈ 70–85 ms, WebP ≈ 120 ms, AVIF ≈ 110–125 ms, PNG
≈ 185 ms; a plain full-size decode alone costs 105–190 ms). Encoder alone on
the 800×600 result: JPEG q85 2 ms (optimize +3 ms for −5 % bytes,
progressive +10 ms: both off); WebP method 2/4/6 ≈ 35/75/210 ms, sizes within
a few % of each other (method 4, libwebp's and sharp's default balance);
AVIF speed 6/8/10 ≈ 190/67/28 ms at equal size (speed 8); PNG level 3/6
≈ 70/175 ms on a photo but level 3 is 75 % bigger on flat graphics, where PNG
is the right choice (level 6, zlib's default). JPEG XL effort 4 (libjxl's
"cheetah"): 800×600 in ≈ 17 ms, effort 7 (libjxl's default) ≈ 290 ms for 2 %
fewer bytes on photos; 12 MP ≈ 1.2 s against ≈ 7.6 s.

JPEG XL is written in sRGB (the plugin takes no ICC profile), so pixels with
another profile (Display P3, Adobe RGB) are converted to sRGB first, with
LittleCMS, instead of being mislabelled.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image, ImageCms, PngImagePlugin

from pichub.imaging.formats import ALPHA_FORMATS, FORMATS, LOSSY_FORMATS

ORIENTATION: Final = 0x0112
#: EXIF orientation → the transpose that makes the pixels upright.
TRANSPOSES: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPPING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})
WHITE: Final = (255, 255, 255)
EXIF_HEADER: Final = b"Exif\x00\x00"
#: Formats whose encoders keep a grey image grey (the others get RGB).
GREY_FORMATS: Final = frozenset({"jpeg", "png"})
#: Source `info` keys that describe pixels, not metadata (kept for the encoder).
PIXEL_INFO: Final = ("transparency",)
#: Encoder settings per format (see the module docstring for the measurements).
ENCODER: Final[dict[str, dict[str, Any]]] = {
    "jpeg": {"optimize": False, "progressive": False},
    "webp": {"method": 4},
    "avif": {"speed": 8},
    "png": {"compress_level": 6},
    "gif": {},
    # lossless_jpeg off: the plugin would otherwise transcode a JPEG source from its file,
    # metadata and all, whatever the upload's metadata policy removed.
    "jxl": {"effort": 4, "lossless_jpeg": False},
}
#: From this many pixels up a still WebP is encoded with method 2: measured on a 20 MP
#: photo, 1.2 s instead of 2.2 s and 204 MB of peak memory instead of 291 MB, for 2 % more
#: bytes (SSIM to the source 0.940 instead of 0.944 at q85). Variants and small uploads,
#: where the encode is short and the bytes are sent again and again, keep method 4.
WEBP_FAST_PIXELS: Final = 4_000_000
WEBP_FAST_METHOD: Final = 2
#: The ICC colour space a profile must have to describe pixels of a mode.
ICC_SPACES: Final = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY"}
DEFAULT_DURATION_MS: Final = 100
#: What Pillow raises on data it cannot decode (truncated GIFs raise IndexError; libheif and
#: libjxl failures come through their plugins as RuntimeError).
DECODE_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
                        RuntimeError)
#: Formats whose decoders turn the pixels upright themselves (HEIF `irot`/`imir`, JPEG XL's
#: codestream orientation): their EXIF orientation is not applied again.
SELF_ORIENTING: Final = frozenset({"heic", "jxl"})
SRGB: Final = ImageCms.createProfile("sRGB")

Size = tuple[int, int]


class DecodeError(OSError):
    """A frame of the source did not decode (truncated or corrupt data)."""


@dataclass(frozen=True)
class Metadata:
    """What an encoder writes besides pixels: `exif` is TIFF bytes without the
    `Exif\\0\\0` header, `comment` a JPEG COM. Nothing else from the source leaks."""

    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    comment: bytes | None = None


def frame_count(im: Image.Image, fmt: str) -> int:
    """The frames of an animation. A JPEG is one picture even as an MPO file (its
    other pictures are a stereo pair or a depth map, not frames); a HEIF file with
    several images (a burst, a collection) is shown by its primary image."""
    return 1 if fmt in ("jpeg", "heic") else int(getattr(im, "n_frames", 1))


def load_frame(im: Image.Image, index: int, canvas: Size) -> None:
    """Seek to frame `index` and decode it. DecodeError when it does not decode, or
    when it lies outside `canvas` (the size the limits were checked on): a GIF frame
    may, and Pillow then grows the image to hold it (a 1×1 frame at 65000,65000
    makes it 17 GB), so this is checked after the seek, before the decode."""
    try:
        im.seek(index)
        if im.size != canvas:
            raise DecodeError(f"frame {index + 1} lies outside the {canvas[0]}×{canvas[1]} canvas")
        im.load()
    except DecodeError:
        raise
    except DECODE_ERRORS as exc:
        raise DecodeError(f"frame {index + 1} does not decode") from exc


def orientation(im: Image.Image, fmt: str) -> int:
    """The EXIF orientation still to apply, 1 when absent or not a valid value.

    HEIF and JPEG XL decoders output upright pixels (the HEIF plugin also resets the EXIF
    tag); a JPEG XL that is a recompressed JPEG is decoded back to that JPEG (the
    plugin's `jpeg` flag), whose EXIF orientation still applies."""
    if fmt in SELF_ORIENTING and not (fmt == "jxl" and getattr(im, "jpeg", False)):
        return 1
    value = im.getexif().get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(size: Size, orientation: int) -> Size:
    return (size[1], size[0]) if orientation in SWAPPING_ORIENTATIONS else size


def upright(im: Image.Image, orientation: int) -> Image.Image:
    """`im` turned to its EXIF `orientation`: a new image, or `im` itself when upright."""
    method = TRANSPOSES.get(orientation)
    return im if method is None else im.transpose(method)


def has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def flatten(im: Image.Image, fmt: str) -> Image.Image:
    """`im` in a mode `fmt`'s encoder takes; alpha composited on white where `fmt`
    has none. Returns `im` itself when it already fits (GIF takes any mode)."""
    if fmt == "gif":
        return im
    if has_alpha(im):
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        if fmt in ALPHA_FORMATS:
            return rgba
        background = Image.new("RGB", im.size, WHITE)
        background.paste(rgba, (0, 0), rgba)
        return background
    if im.mode == "RGB" or (im.mode == "L" and fmt in GREY_FORMATS):
        return im
    return im.convert("RGB")


def matching_icc(icc: bytes | None, mode: str) -> bytes | None:
    """`icc` if it describes pixels of `mode`: a CMYK or grey profile on RGB pixels
    (converted without colour management) would be wrong."""
    space = ICC_SPACES.get(mode)
    return icc if icc and space is not None and icc[16:20] == space else None


def save_options(fmt: str, quality: int, meta: Metadata, mode: str) -> dict[str, Any]:
    """Pillow's save options for `fmt`: encoder settings, quality, and `meta`
    where the format can carry it (GIF carries none)."""
    options = dict(ENCODER[fmt])
    if fmt in LOSSY_FORMATS:
        options["quality"] = quality
    if fmt == "gif":
        return options
    if fmt == "jxl":  # sRGB only (encode_still converts); b"": never the image's own EXIF
        options["exif"] = EXIF_HEADER + meta.exif if meta.exif else b""
        if meta.xmp:
            options["xmp"] = meta.xmp
        return options
    if icc := matching_icc(meta.icc, mode):
        options["icc_profile"] = icc
    if meta.exif:
        options["exif"] = EXIF_HEADER + meta.exif
    if meta.xmp and fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", meta.xmp)
        options["pnginfo"] = info
    elif meta.xmp:
        options["xmp"] = meta.xmp
    if meta.comment and fmt == "jpeg":
        options["comment"] = meta.comment
    return options


def encode_still(im: Image.Image, fmt: str, quality: int, meta: Metadata) -> bytes:
    """Encode `im` (already in a mode `flatten` gives) with `meta` and nothing else:
    the image's own `info` (EXIF, XMP, comments Pillow would copy) is cleared."""
    im.info = {key: im.info[key] for key in PIXEL_INFO if key in im.info}
    if fmt == "jxl":
        im = to_srgb(im, meta.icc)
    out = io.BytesIO()
    options = save_options(fmt, quality, meta, im.mode)
    if fmt == "webp" and im.width * im.height >= WEBP_FAST_PIXELS:
        options["method"] = WEBP_FAST_METHOD
    im.save(out, FORMATS[fmt][2], **options)
    return out.getvalue()


def to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """`im` (RGB or RGBA) converted from its ICC profile to sRGB; `im` itself without one
    (untagged pixels are taken as sRGB) or when the profile cannot be read."""
    profile = matching_icc(icc, im.mode) if im.mode in ("RGB", "RGBA") else None
    if profile is None:
        return im
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(im, source, SRGB, outputMode=im.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im
    assert converted is not None
    return converted


class FrameSequence(Image.Image):
    """An animation whose frames are made one at a time, when an encoder seeks to them.

    Pillow's animated WebP writer asks each image it is given for `n_frames`
    and encodes `seek(0)`, `seek(1)` … one at a time; its GIF writer walks
    the frames with ImageSequence. Given this object instead of a list of
    frames, memory holds one source frame and one output frame, plus what
    the encoder keeps: libwebp a few canvases, Pillow's GIF writer every
    frame as a palette image (1 byte per pixel) for its delta optimisation.

    `make` turns the loaded source frame into the output frame. `durations`
    grows as frames are made; both writers read `duration[i]` only after
    seeking to frame i, so this list is what `encode_animation` passes as
    `duration` (the tests check durations survive). A source frame that
    fails to decode or lies outside the canvas raises DecodeError (load_frame),
    never EOFError, which a writer would take for the end of the animation.
    """

    def __init__(
        self,
        source: Image.Image,
        frames: int,
        make: Callable[[Image.Image], Image.Image],
        mode: str = "RGBA",
    ) -> None:
        super().__init__()
        self._source = source
        self._canvas = source.size
        self._frames = frames
        self._make = make
        self._mode = mode
        self._index = -1
        self.durations: list[int] = []
        self.seek(0)

    @property
    def n_frames(self) -> int:
        return self._frames

    @property
    def is_animated(self) -> bool:
        return self._frames > 1

    def tell(self) -> int:
        return self._index

    def seek(self, frame: int) -> None:
        if not 0 <= frame < self._frames:
            raise EOFError("no more frames")
        if frame == self._index:
            return
        load_frame(self._source, frame, self._canvas)
        duration = int(self._source.info.get("duration", DEFAULT_DURATION_MS))
        out = self._make(self._source)
        if out.mode != self.mode:
            out = out.convert(self.mode)
        self.im = out.im
        self._size = out.size
        if frame == len(self.durations):
            self.durations.append(duration)
        self._index = frame


def encode_animation(
    frames: FrameSequence, fmt: str, quality: int, meta: Metadata, loop: int | None
) -> bytes:
    """Encode an animated GIF or WebP frame by frame.

    `loop` None means the source had no loop count (a GIF without NETSCAPE
    extension plays once): GIF output then has none either, WebP gets 1.
    Frames are disposed to the background, so transparent pixels never show
    the frame before.
    """
    options = save_options(fmt, quality, meta, frames.mode)
    options |= {"save_all": True, "duration": frames.durations}
    if fmt == "gif":
        options |= {"disposal": 2} | ({} if loop is None else {"loop": loop})
    else:
        options["loop"] = 1 if loop is None else loop
    out = io.BytesIO()
    frames.save(out, FORMATS[fmt][2], **options)
    return out.getvalue()
