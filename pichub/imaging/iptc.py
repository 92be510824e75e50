"""IPTC-IIM place names in Photoshop image resources (JPEG APP13), removed.

Photo managers write the city and country of a picture into IPTC-IIM as well
as into XMP (photoshop:City …), so stripping the location from XMP alone
would leave it here. Only the place datasets of record 2 go; captions,
keywords and credits stay. The IPTC digest resource (an MD5 of the old IIM
block, used to notice edits by other programs) goes with any change.
"""

from __future__ import annotations

from typing import Final

RESOURCE_SIGNATURE: Final = b"8BIM"
IPTC_RESOURCE: Final = 0x0404
IPTC_DIGEST: Final = 0x0425
#: Record 2 datasets naming a place: city, sublocation, province/state, country code, country.
LOCATION_DATASETS: Final = frozenset({90, 92, 95, 100, 101})

Resource = tuple[int, bytes, bytes]  # id, Pascal-string name (padded), data


def strip_location(resources: bytes) -> bytes:
    """`resources` without IIM place datasets; `resources` itself if it has none.
    Raises ValueError on a structure it cannot walk."""
    parsed = _resources(resources)
    changed = False
    out: list[Resource] = []
    for rid, name, data in parsed:
        if rid == IPTC_RESOURCE:
            kept = _without_location(data)
            changed = changed or kept is not data
            data = kept
        out.append((rid, name, data))
    if not changed:
        return resources
    return b"".join(_resource_bytes(*r) for r in out if r[0] != IPTC_DIGEST)


def _resources(data: bytes) -> list[Resource]:
    found: list[Resource] = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != RESOURCE_SIGNATURE:
            raise ValueError("not a Photoshop image resource")
        name_size = 1 + data[pos + 6]
        name_end = pos + 6 + name_size + name_size % 2
        size = int.from_bytes(data[name_end : name_end + 4], "big")
        start = name_end + 4
        if start + size > len(data):
            raise ValueError("truncated image resource")
        rid = int.from_bytes(data[pos + 4 : pos + 6], "big")
        found.append((rid, data[pos + 6 : name_end], data[start : start + size]))
        pos = start + size + size % 2
    return found


def _resource_bytes(rid: int, name: bytes, data: bytes) -> bytes:
    size = len(data).to_bytes(4, "big")
    pad = b"\x00" * (len(data) % 2)
    return RESOURCE_SIGNATURE + rid.to_bytes(2, "big") + name + size + data + pad


def _without_location(iim: bytes) -> bytes:
    """The IIM datasets minus record 2's place names; `iim` itself if none."""
    kept: list[bytes] = []
    pos = 0
    dropped = False
    while pos + 5 <= len(iim) and iim[pos] == 0x1C:
        record, dataset = iim[pos + 1], iim[pos + 2]
        size = int.from_bytes(iim[pos + 3 : pos + 5], "big")
        header = 5
        if size & 0x8000:  # extended dataset: the next (size & 0x7FFF) bytes hold the size
            header += size & 0x7FFF
            size = int.from_bytes(iim[pos + 5 : pos + header], "big")
        end = pos + header + size
        if record == 2 and dataset in LOCATION_DATASETS:
            dropped = True
        else:
            kept.append(iim[pos:end])
        pos = end
    if not dropped:
        return iim
    return b"".join([*kept, iim[pos:]])  # what follows the datasets is padding
