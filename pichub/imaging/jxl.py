"""JPEG XL without decoding: the header's size and flags, and its metadata boxes edited.

The Pillow plugin (pillow_jxl) decodes the whole image as soon as a file is
opened, so the limits (`max_pixels`, the decode budget) are checked on what
`read_header` reads first: the codestream's SizeHeader and the start of its
ImageMetadata (ISO/IEC 18181-1, read bit by bit, least significant bit first),
found in a bare codestream (`FF 0A`) or in the `jxlc`/`jxlp` boxes of the
container. Animated JPEG XL is refused: the plugin cannot seek its frames and
the header does not say how many there are.

`rewrite` edits the container's `Exif` and `xml ` boxes per the MetadataPolicy
(the same rules as JPEG's segments, containers.py) and copies the codestream
untouched. Brotli-compressed metadata (`brob`) cannot be checked for a location,
so it is kept only when nothing may be removed. A file that can be rebuilt as
the original JPEG (`jbrd`) is not edited (its reconstruction data describes the
metadata byte for byte): the caller re-encodes it instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from pichub.imaging.formats import JXL_CODESTREAM, JXL_CONTAINER
from pichub.imaging.metadata import MetadataPolicy

#: Codestream bytes `read_header` needs: the SizeHeader and the ImageMetadata fields up to
#: `have_animation` take at most about 30 bytes.
HEADER_BYTES: Final = 64
#: Boxes walked before the codestream is found (metadata boxes may come first).
MAX_BOXES: Final = 64
#: SizeHeader `ratio` → xsize = ysize × num / den.
RATIOS: Final = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}
_SIZE: Final = ((1, 9), (1, 13), (1, 18), (1, 30))  # U32 distributions: (offset, bits)
_PREVIEW_DIV8: Final = ((16, 0), (32, 0), (1, 5), (33, 9))
_PREVIEW: Final = ((1, 6), (65, 8), (321, 10), (1345, 12))
TIFF_HEADERS: Final = (b"II*\x00", b"MM\x00*")
#: Boxes that make the picture: kept by `remove_exif` (the others are metadata or unknown).
RENDERING: Final = frozenset({b"JXL ", b"ftyp", b"jxll", b"jxlc", b"jxlp", b"jxli", b"jbrd"})


@dataclass(frozen=True)
class Header:
    """What a JPEG XL file declares: the size as displayed (orientation applied, as the
    decoder outputs it) and whether it is an animation."""

    width: int
    height: int
    orientation: int
    animated: bool


class _Bits:
    """A JPEG XL bit reader: fields are read least significant bit first."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, bits: int) -> int:
        value = 0
        for shift in range(bits):
            byte = self._data[self._pos >> 3]  # IndexError: the header is cut short
            value |= ((byte >> (self._pos & 7)) & 1) << shift
            self._pos += 1
        return value

    def flag(self) -> bool:
        return self.u(1) == 1

    def u32(self, dists: tuple[tuple[int, int], ...]) -> int:
        offset, bits = dists[self.u(2)]
        return offset + self.u(bits)


def read_header(path: Path) -> Header:
    """The header of the JPEG XL file at `path`; ValueError when there is none to read."""
    with open(path, "rb") as fh:
        head = _codestream_head(fh)
    if not head.startswith(JXL_CODESTREAM):
        raise ValueError("no JPEG XL codestream")
    try:
        return _parse(_Bits(head[2:]))
    except IndexError:
        raise ValueError("JPEG XL header is cut short") from None


def _parse(bits: _Bits) -> Header:
    width, height = _size(bits)
    orientation, animated = 1, False
    if not bits.flag():  # all_default: no orientation, preview or animation
        if bits.flag():  # extra_fields
            orientation = 1 + bits.u(3)
            if bits.flag():  # have_intrinsic_size
                _size(bits)
            if bits.flag():  # have_preview
                _preview(bits)
            animated = bits.flag()
    if orientation > 4:  # the decoder turns the image: it comes out transposed
        width, height = height, width
    return Header(width, height, orientation, animated)


def _size(bits: _Bits) -> tuple[int, int]:
    small = bits.flag()
    height = (bits.u(5) + 1) * 8 if small else bits.u32(_SIZE)
    ratio = bits.u(3)
    if ratio:
        num, den = RATIOS[ratio]
        return height * num // den, height
    width = (bits.u(5) + 1) * 8 if small else bits.u32(_SIZE)
    return width, height


def _preview(bits: _Bits) -> None:
    dists = _PREVIEW_DIV8 if bits.flag() else _PREVIEW
    bits.u32(dists)
    if bits.u(3) == 0:
        bits.u32(dists)


def _codestream_head(fh: BinaryIO) -> bytes:
    """The first HEADER_BYTES of the codestream, from a bare one or from the container."""
    start = fh.read(len(JXL_CONTAINER))
    if not start.startswith(JXL_CONTAINER):
        return start + fh.read(HEADER_BYTES - len(start))
    head = b""
    for _ in range(MAX_BOXES):
        found = _box_header(fh)
        if found is None:
            break
        kind, payload_size = found
        if kind in (b"jxlc", b"jxlp"):
            if kind == b"jxlp":
                fh.read(4)  # the part's index
                payload_size = None if payload_size is None else payload_size - 4
            want = HEADER_BYTES - len(head)
            head += fh.read(want if payload_size is None else min(want, payload_size))
            if len(head) >= HEADER_BYTES or kind == b"jxlc":
                return head
            continue
        if payload_size is None:
            break
        fh.seek(payload_size, 1)
    return head


def _box_header(fh: BinaryIO) -> tuple[bytes, int | None] | None:
    """The next box's type and payload size (None: up to the end of the file)."""
    raw = fh.read(8)
    if len(raw) < 8:
        return None
    size, kind = struct.unpack(">I4s", raw)
    if size == 1:
        large = fh.read(8)
        if len(large) < 8:
            return None
        return kind, struct.unpack(">Q", large)[0] - 16
    if size == 0:
        return kind, None
    if size < 8:
        raise ValueError("bad JPEG XL box size")
    return kind, size - 8


# --- metadata rewriting (containers.rewrite) ------------------------------------------------

def rewrite(view: memoryview, policy: MetadataPolicy) -> bytes:
    """The file with its `Exif`/`xml ` boxes edited per `policy` (see the module doc)."""
    if bytes(view[:2]) == JXL_CODESTREAM:
        return bytes(view)  # a bare codestream carries no metadata
    if bytes(view[: len(JXL_CONTAINER)]) != JXL_CONTAINER:
        raise ValueError("not a JPEG XL file")
    boxes = list(_boxes(view))
    reconstructable = any(kind == b"jbrd" for kind, _, _ in boxes)
    parts: list[bytes | memoryview] = []
    changed = False
    for kind, payload, whole in boxes:
        out = _box(kind, payload, whole, policy)
        changed |= out is not whole
        if out is not None:
            parts.append(out)
    if changed and reconstructable:
        raise ValueError("JPEG reconstruction data would no longer match")
    return b"".join(parts)


def _boxes(view: memoryview) -> list[tuple[bytes, memoryview, memoryview]]:
    """(type, payload, whole box) of every box; IndexError/struct.error when cut short."""
    found = []
    pos = 0
    while pos < len(view):
        size, kind = struct.unpack(">I4s", view[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", view[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = len(view) - pos
        if size < header or pos + size > len(view):
            raise ValueError("bad JPEG XL box size")
        found.append((kind, view[pos + header : pos + size], view[pos : pos + size]))
        pos += size
    return found


def _box(kind: bytes, payload: memoryview, whole: memoryview,
         policy: MetadataPolicy) -> bytes | memoryview | None:
    """The box as it should be written: `whole` unchanged, edited bytes, or None (dropped)."""
    if kind == b"Exif":
        tiff = _exif_tiff(bytes(payload))
        edited = None if tiff is None else policy.exif(tiff)
        if edited is tiff:
            return whole
        return None if edited is None else _box_bytes(kind, b"\x00\x00\x00\x00" + edited)
    if kind == b"xml ":
        packet = bytes(payload)
        edited = policy.xmp(packet)
        if edited is packet:
            return whole
        return None if edited is None else _box_bytes(kind, edited)
    if kind == b"brob":  # compressed: unreadable without Brotli, so unchecked
        return whole if policy.keeps_everything else None
    if policy.remove_all and kind not in RENDERING:
        return None
    return whole


def _exif_tiff(payload: bytes) -> bytes | None:
    """The TIFF bytes of an `Exif` box: after its 4-byte offset to the TIFF header, or the
    whole payload when that offset is missing (some writers leave it out); None when
    neither finds a TIFF header."""
    if payload[:4] in TIFF_HEADERS:
        return payload
    offset = int.from_bytes(payload[:4], "big")
    tiff = payload[4 + offset :]
    return tiff if tiff[:4] in TIFF_HEADERS else None


def _box_bytes(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", len(payload) + 8, kind) + payload
