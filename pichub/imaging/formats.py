"""The image formats PicHub accepts and serves, and sniffing them from bytes.

Stored and served formats are in FORMATS. HEIC/HEIF is accepted at upload only
(SOURCE_ONLY): browsers cannot show it, so an upload is always converted to a
web format and its original bytes are kept beside (services.uploads).
"""

from __future__ import annotations

from typing import Final

# format -> (mime, stored extension, Pillow format name)
FORMATS: Final[dict[str, tuple[str, str, str]]] = {
    "jpeg": ("image/jpeg", "jpg", "JPEG"),
    "png": ("image/png", "png", "PNG"),
    "webp": ("image/webp", "webp", "WEBP"),
    "gif": ("image/gif", "gif", "GIF"),
    "avif": ("image/avif", "avif", "AVIF"),
    "jxl": ("image/jxl", "jxl", "JXL"),
}
#: Formats read at upload but never stored or served as such (same shape as FORMATS).
SOURCE_ONLY: Final[dict[str, tuple[str, str, str]]] = {
    "heic": ("image/heic", "heic", "HEIF"),
}
ALPHA_FORMATS: Final = frozenset({"png", "webp", "gif", "avif", "jxl"})
ANIMATED_FORMATS: Final = frozenset({"gif", "webp"})
#: Formats whose encoders take a quality.
LOSSY_FORMATS: Final = frozenset({"jpeg", "webp", "avif", "jxl"})
#: What uploads may be converted to (the form's `format`).
UPLOAD_FORMATS: Final = frozenset({"jpeg", "png", "webp", "avif", "jxl"})
#: Every name a URL extension, `fm` or the upload form may use → the canonical format name.
FORMAT_ALIASES: Final = {"jpg": "jpeg", **{name: name for name in FORMATS}}
#: Bytes `sniff` needs: an ISO BMFF `ftyp` box lists its brands in its first few dozen.
SNIFF_BYTES: Final = 64
#: `ftyp` brands of HEIF files whose pictures are HEVC (iPhone photos: `heic`), or of the
#: generic HEIF structure (`mif1` still images, `msf1` sequences), AVIF excepted.
HEIC_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevx",
                                b"mif1", b"msf1"})
AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
JXL_CODESTREAM: Final = b"\xff\x0a"
JXL_CONTAINER: Final = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def canonical(name: str) -> str | None:
    """The canonical format for a name in any case (`JPG` → `jpeg`), None if unknown."""
    return FORMAT_ALIASES.get(name.lower())


def mime_of(fmt: str) -> str:
    return FORMATS[fmt][0]


def ext_of(fmt: str) -> str:
    return FORMATS[fmt][1]


def pillow_name(fmt: str) -> str:
    """The Pillow format name of any format PicHub reads (stored or source-only)."""
    return (FORMATS.get(fmt) or SOURCE_ONLY[fmt])[2]


def source_ext(fmt: str) -> str:
    """The file extension of any format PicHub reads (a kept HEIC original: `heic`)."""
    return (FORMATS.get(fmt) or SOURCE_ONLY[fmt])[1]


def source_mime(fmt: str) -> str:
    return (FORMATS.get(fmt) or SOURCE_ONLY[fmt])[0]


def sniff(head: bytes) -> str | None:
    """The format from the first bytes of a file (SNIFF_BYTES are enough), or None.

    Never trust the name or the Content-Type: an SVG or HTML file renamed
    `.jpg` is text, and text has none of these signatures.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((JXL_CODESTREAM, JXL_CONTAINER)):
        return "jxl"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    return None


def _sniff_ftyp(head: bytes) -> str | None:
    """AVIF or HEIC from an `ftyp` box: the major brand, then the compatible ones (the minor
    version between them is no brand). AVIF wins: an AVIF may also list `mif1`."""
    box_len = int.from_bytes(head[:4], "big")
    end = min(max(box_len, 12), len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & AVIF_BRANDS:
        return "avif"
    if brands & HEIC_BRANDS:
        return "heic"
    return None
