"""Edit an image file's metadata without touching its image data (no re-encoding).

When an upload keeps its format and needs no rotation, only its metadata may
have to change (location stripped, or everything with `remove_exif`).
`rewrite` walks the container — JPEG segments, PNG chunks, WebP RIFF chunks,
GIF blocks, JPEG XL boxes — and rebuilds it with the EXIF, XMP and (JPEG) IPTC that the
MetadataPolicy returns: the pixels are the very bytes uploaded, so there is no generation
loss, and animated PNG/WebP/GIF stay animated. Blocks that are not metadata
are copied unchanged.

With `remove_exif` only what rendering needs survives (ICC profile,
colour/transparency/animation chunks); everything else (EXIF, XMP, comments,
IPTC, maker blocks) goes. Without it, EXIF, XMP and IPTC are edited and the
rest stays, except data after the end of the image (a second MPO picture, a
motion-photo video), which may carry its own location: it is kept only with
`keep_location`.

`rewrite` returns its input object itself when nothing changed (so the upload
is stored byte for byte), and raises ValueError on a structure it does not
understand (the caller then re-encodes instead).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from typing import Final

from pichub.imaging import jxl
from pichub.imaging.codecs import EXIF_HEADER
from pichub.imaging.metadata import MetadataPolicy

Parts = list[bytes | memoryview]
#: Largest compressed XMP (PNG iTXt) we inflate; XMP is a few KB, this is a zlib bomb.
MAX_XMP_BYTES: Final = 4 * 2**20


def rewrite(data: bytes, fmt: str, policy: MetadataPolicy) -> bytes | None:
    """`data` with its metadata edited per `policy`; `data` itself when nothing
    changes; None when `fmt` has no rewriter (AVIF). Raises ValueError on a
    container it cannot walk (or, for JPEG XL, must not edit)."""
    rewriter = REWRITERS.get(fmt)
    if rewriter is None:
        return None
    try:
        result = rewriter(memoryview(data), policy)
    except (IndexError, struct.error) as exc:
        raise ValueError("truncated container") from exc
    return data if result == data else result


def _starts(view: memoryview, prefix: bytes) -> bool:
    return bytes(view[: len(prefix)]) == prefix


def _tail(view: memoryview, pos: int, policy: MetadataPolicy) -> Parts:
    """Bytes after the image's end marker: kept only when nothing may be removed."""
    return [view[pos:]] if policy.keeps_everything and pos < len(view) else []


# --- JPEG: segments -------------------------------------------------------------------------

EOI, SOS, COM = 0xD9, 0xDA, 0xFE
APP0, APP1, APP2, APP13, APP14 = 0xE0, 0xE1, 0xE2, 0xED, 0xEE
XMP_HEADER: Final = b"http://ns.adobe.com/xap/1.0/\x00"
ICC_HEADER: Final = b"ICC_PROFILE\x00"
MPF_HEADER: Final = b"MPF\x00"
PHOTOSHOP_HEADER: Final = b"Photoshop 3.0\x00"
MAX_SEGMENT: Final = 65533
#: Markers without a length: TEM and the restart markers.
STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
#: The end of entropy-coded data: a marker that is neither stuffing (FF00) nor RSTn.
_ENTROPY_END: Final = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg(view: memoryview, policy: MetadataPolicy) -> bytes:
    if not _starts(view, b"\xff\xd8"):
        raise ValueError("not a JPEG")
    parts: Parts = [b"\xff\xd8"]
    pos = 2
    while True:
        marker, pos = _jpeg_marker(view, pos)
        if marker == EOI:
            parts.append(b"\xff\xd9")
            break
        if marker in STANDALONE:
            parts.append(view[pos - 2 : pos])
            continue
        end = pos + int.from_bytes(view[pos : pos + 2], "big")
        payload = view[pos + 2 : end]
        parts += _jpeg_segment(marker, payload, policy, view[pos - 2 : end])
        pos = end
        if marker == SOS:
            found = _ENTROPY_END.search(view, pos)
            if found is None:
                raise ValueError("no end of scan")
            parts.append(view[pos : found.start()])
            pos = found.start()
    return b"".join(parts + _tail(view, pos, policy))


def _jpeg_marker(view: memoryview, pos: int) -> tuple[int, int]:
    """The marker at `pos` (fill bytes skipped) and where its segment starts."""
    if view[pos] != 0xFF:
        raise ValueError("marker expected")
    while view[pos] == 0xFF:
        pos += 1
    return view[pos], pos + 1


def _jpeg_segment(
    marker: int, payload: memoryview, policy: MetadataPolicy, whole: memoryview
) -> Parts:
    """The segment as it should be written: unchanged, edited, or dropped ([])."""
    if marker == APP1 and _starts(payload, EXIF_HEADER):
        return _jpeg_edited(marker, EXIF_HEADER, payload, policy.exif, whole)
    if marker == APP1 and _starts(payload, XMP_HEADER):
        return _jpeg_edited(marker, XMP_HEADER, payload, policy.xmp, whole)
    if marker == APP13 and _starts(payload, PHOTOSHOP_HEADER):
        return _jpeg_edited(marker, PHOTOSHOP_HEADER, payload, policy.iptc, whole)
    if marker == APP2 and _starts(payload, MPF_HEADER):
        return [whole] if policy.keeps_everything else []  # it indexes the dropped tail
    if policy.remove_all and not _jpeg_renders(marker, payload):
        return []
    return [whole]


def _jpeg_renders(marker: int, payload: memoryview) -> bool:
    """Needed to show the image: JFIF, the ICC profile, Adobe's colour transform, and
    every non-APPn, non-comment segment."""
    if marker == APP2:
        return _starts(payload, ICC_HEADER)
    return marker in (APP0, APP14) or not (0xE0 <= marker <= 0xEF or marker == COM)


def _jpeg_edited(
    marker: int,
    header: bytes,
    payload: memoryview,
    edit: Callable[[bytes], bytes | None],
    whole: memoryview,
) -> Parts:
    original = bytes(payload[len(header) :])
    edited = edit(original)
    if edited is original:
        return [whole]
    if edited is None or len(header) + len(edited) > MAX_SEGMENT:
        return []
    body = header + edited
    return [bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body]


# --- PNG: chunks ----------------------------------------------------------------------------

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD: Final = b"XML:com.adobe.xmp"
TEXT_CHUNKS: Final = frozenset({b"tEXt", b"zTXt", b"iTXt"})
#: Ancillary chunks that change how the image looks or moves (kept by remove_exif).
PNG_RENDERING: Final = frozenset({
    b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs", b"cICP",
    b"mDCV", b"cLLI", b"acTL", b"fcTL", b"fdAT",
})


def _png(view: memoryview, policy: MetadataPolicy) -> bytes:
    if not _starts(view, PNG_SIGNATURE):
        raise ValueError("not a PNG")
    parts: Parts = [PNG_SIGNATURE]
    pos = 8
    while True:
        length = int.from_bytes(view[pos : pos + 4], "big")
        tag = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if end > len(view):
            raise ValueError("truncated chunk")
        parts += _png_chunk(tag, view[pos + 8 : end - 4], policy, view[pos:end])
        pos = end
        if tag == b"IEND":
            break
    return b"".join(parts + _tail(view, pos, policy))


def _png_chunk(tag: bytes, body: memoryview, policy: MetadataPolicy, whole: memoryview) -> Parts:
    if tag == b"eXIf":
        edited = policy.exif(bytes(body))
        return _png_edited(tag, body, edited, whole)
    if tag in TEXT_CHUNKS:
        return _png_text(tag, body, policy, whole)
    if policy.remove_all and tag[:1].islower() and tag not in PNG_RENDERING:
        return []
    return [whole]


def _png_text(tag: bytes, body: memoryview, policy: MetadataPolicy, whole: memoryview) -> Parts:
    keyword = bytes(body[:80]).split(b"\x00", 1)[0]
    if policy.remove_all:
        return []
    if tag == b"iTXt" and keyword == XMP_KEYWORD:
        packet = _itxt_text(body)
        edited = None if packet is None else policy.xmp(packet)
        if edited is packet and packet is not None:
            return [whole]
        return [] if edited is None else [_png_bytes(tag, _itxt(XMP_KEYWORD, edited))]
    if keyword.startswith(b"Raw profile type") and not policy.keep_location:
        return []  # ImageMagick's hex-encoded EXIF/XMP/IPTC: may hold a location
    return [whole]


def _itxt_text(body: memoryview) -> bytes | None:
    """The text of an iTXt chunk (inflated if compressed), None if unreadable."""
    try:
        _keyword, rest = bytes(body).split(b"\x00", 1)
        _language, _translated, text = rest[2:].split(b"\x00", 2)
        if rest[0] == 0:
            return text
        inflater = zlib.decompressobj()
        out = inflater.decompress(text, MAX_XMP_BYTES)
    except (ValueError, IndexError, zlib.error):
        return None
    return None if inflater.unconsumed_tail else out


def _itxt(keyword: bytes, text: bytes) -> bytes:
    return keyword + b"\x00\x00\x00\x00\x00" + text


def _png_edited(tag: bytes, body: memoryview, edited: bytes | None, whole: memoryview) -> Parts:
    if edited is None:
        return []
    if edited == body:
        return [whole]
    return [_png_bytes(tag, edited)]


def _png_bytes(tag: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(tag + body)
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)


# --- WebP: RIFF chunks ----------------------------------------------------------------------

VP8X_EXIF, VP8X_XMP = 0x08, 0x04
#: Chunks that make the picture (kept by remove_exif); EXIF, XMP and unknown chunks go.
WEBP_RENDERING: Final = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})


def _webp(view: memoryview, policy: MetadataPolicy) -> bytes:
    if not _starts(view, b"RIFF") or not _starts(view[8:], b"WEBP"):
        raise ValueError("not a WebP")
    end = 8 + int.from_bytes(view[4:8], "little")
    chunks: list[tuple[bytes, bytes | memoryview]] = []
    pos = 12
    while pos + 8 <= end:
        tag = bytes(view[pos : pos + 4])
        size = int.from_bytes(view[pos + 4 : pos + 8], "little")
        body = view[pos + 8 : pos + 8 + size]
        if len(body) != size:
            raise ValueError("truncated chunk")
        edited = _webp_chunk(tag, body, policy)
        if edited is not None:
            chunks.append((tag, edited))
        pos += 8 + size + size % 2
    body_parts: Parts = [b"WEBP"]
    for tag, data in _webp_flags(chunks):
        body_parts += [tag, struct.pack("<I", len(data)), data, b"\x00" * (len(data) % 2)]
    riff = b"".join(body_parts)
    return b"".join([b"RIFF", struct.pack("<I", len(riff)), riff, *_tail(view, end, policy)])


def _webp_chunk(tag: bytes, body: memoryview, policy: MetadataPolicy) -> bytes | memoryview | None:
    if tag == b"EXIF":
        raw = bytes(body)
        header = EXIF_HEADER if raw.startswith(EXIF_HEADER) else b""
        edited = policy.exif(raw[len(header) :])
        return None if edited is None else header + edited
    if tag == b"XMP ":
        return policy.xmp(bytes(body))
    if policy.remove_all and tag not in WEBP_RENDERING:
        return None
    return body


def _webp_flags(
    chunks: list[tuple[bytes, bytes | memoryview]],
) -> list[tuple[bytes, bytes | memoryview]]:
    """The chunks with VP8X's EXIF and XMP flags saying what is really there."""
    tags = {tag for tag, _ in chunks}
    out: list[tuple[bytes, bytes | memoryview]] = []
    for tag, body in chunks:
        if tag == b"VP8X":
            flags = body[0] & ~(VP8X_EXIF | VP8X_XMP)
            flags |= (VP8X_EXIF if b"EXIF" in tags else 0) | (VP8X_XMP if b"XMP " in tags else 0)
            out.append((tag, bytes((flags,)) + bytes(body[1:])))
        else:
            out.append((tag, body))
    return out


# --- GIF: blocks ----------------------------------------------------------------------------

XMP_APP: Final = b"XMP DataXMP"
#: The XMP application extension ends with this, so that a reader walking its
#: sub-blocks through the raw XML always lands on the terminator.
XMP_TRAILER: Final = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
#: Application extensions that change how the GIF plays or looks (loop count, ICC).
GIF_RENDERING: Final = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def _gif(view: memoryview, policy: MetadataPolicy) -> bytes:
    if not (_starts(view, b"GIF87a") or _starts(view, b"GIF89a")):
        raise ValueError("not a GIF")
    pos = 13 + _colour_table(view[10])
    parts: Parts = [view[:pos]]
    while view[pos] != 0x3B:
        start = pos
        if view[pos] == 0x2C:
            pos = _sub_blocks(view, pos + 11 + _colour_table(view[pos + 9]))
            parts.append(view[start:pos])
        elif view[pos] == 0x21:
            pos = _sub_blocks(view, pos + 2)
            parts += _gif_extension(view[start:pos], policy)
        else:
            raise ValueError("unknown GIF block")
    return b"".join([*parts, b"\x3b", *_tail(view, pos + 1, policy)])


def _colour_table(flags: int) -> int:
    return 3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0


def _sub_blocks(view: memoryview, pos: int) -> int:
    """The position just after the sub-blocks starting at `pos` and their terminator."""
    while (size := view[pos]) != 0:
        pos += size + 1
    return pos + 1


def _gif_extension(block: memoryview, policy: MetadataPolicy) -> Parts:
    label = block[1]
    app = bytes(block[3:14]) if label == 0xFF and block[2] == 11 else None
    if app == XMP_APP:
        raw = bytes(block[14:])
        packet = raw[: -len(XMP_TRAILER)] if raw.endswith(XMP_TRAILER) else None
        edited = None if packet is None else policy.xmp(packet)
        if edited is packet and packet is not None:
            return [block]
        return [] if edited is None else [b"\x21\xff\x0b" + XMP_APP + edited + XMP_TRAILER]
    if policy.remove_all and (label == 0xFE or (app is not None and app not in GIF_RENDERING)):
        return []
    return [block]


REWRITERS: Final[dict[str, Callable[[memoryview, MetadataPolicy], bytes]]] = {
    "jpeg": _jpeg,
    "png": _png,
    "webp": _webp,
    "gif": _gif,
    "jxl": jxl.rewrite,  # ISO BMFF-style boxes: jxl.py
}
