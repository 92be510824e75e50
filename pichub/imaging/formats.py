"""The image formats PicHub accepts and serves, and sniffing them from bytes."""

from __future__ import annotations

from typing import Final

# format -> (mime, stored extension, Pillow format name)
FORMATS: Final[dict[str, tuple[str, str, str]]] = {
    "jpeg": ("image/jpeg", "jpg", "JPEG"),
    "png": ("image/png", "png", "PNG"),
    "webp": ("image/webp", "webp", "WEBP"),
    "gif": ("image/gif", "gif", "GIF"),
    "avif": ("image/avif", "avif", "AVIF"),
}
ALPHA_FORMATS: Final = frozenset({"png", "webp", "gif", "avif"})
ANIMATED_FORMATS: Final = frozenset({"gif", "webp"})
#: Formats whose encoders take a quality.
LOSSY_FORMATS: Final = frozenset({"jpeg", "webp", "avif"})
#: What uploads may be converted to (the form's `format`).
UPLOAD_FORMATS: Final = frozenset({"jpeg", "png", "webp"})
#: Every name a URL extension, `fm` or the upload form may use → the canonical format name.
FORMAT_ALIASES: Final = {"jpg": "jpeg", **{name: name for name in FORMATS}}


def canonical(name: str) -> str | None:
    """The canonical format for a name in any case (`JPG` → `jpeg`), None if unknown."""
    return FORMAT_ALIASES.get(name.lower())


def mime_of(fmt: str) -> str:
    return FORMATS[fmt][0]


def ext_of(fmt: str) -> str:
    return FORMATS[fmt][1]


def sniff(head: bytes) -> str | None:
    """The format from the first bytes of a file (32 are enough), or None.

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
    if head[4:8] == b"ftyp":
        box_len = int.from_bytes(head[:4], "big")
        brands = head[8 : min(max(box_len, 12), len(head))]
        if b"avif" in brands or b"avis" in brands:
            return "avif"
    return None
