"""Which metadata an upload keeps: EXIF and XMP edited, location removed by default.

`MetadataPolicy` decides from the upload options: `remove_exif` drops EXIF,
XMP, comments and every other non-rendering block (the ICC profile is always
kept); otherwise EXIF and XMP stay, minus the location unless `keep_location`:
the EXIF GPS IFD, the XMP location properties (LOCATION_PROPERTIES) and the
IPTC-IIM place names of JPEG's Photoshop block (iptc.py). Whatever cannot be
parsed, and so cannot be checked for a location, is dropped.

`exif`, `xmp` and `iptc` return their input object itself when nothing has to
change, so the container rewriters (containers.py) can keep the original
bytes, and an upload with nothing to remove is stored byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from PIL import Image

from pichub.imaging import iptc
from pichub.imaging.codecs import EXIF_HEADER, ORIENTATION

GPS_IFD: Final = 0x8825
EXIF_NS: Final = "http://ns.adobe.com/exif/1.0/"
TIFF_NS: Final = "http://ns.adobe.com/tiff/1.0/"
IPTC_CORE_NS: Final = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
IPTC_EXT_NS: Final = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
PHOTOSHOP_NS: Final = "http://ns.adobe.com/photoshop/1.0/"
#: XMP properties that say where a picture was taken, besides `exif:GPS*`.
LOCATION_PROPERTIES: Final = frozenset({
    (IPTC_CORE_NS, "Location"),
    (IPTC_CORE_NS, "CountryCode"),
    (IPTC_EXT_NS, "LocationCreated"),
    (IPTC_EXT_NS, "LocationShown"),
    (PHOTOSHOP_NS, "City"),
    (PHOTOSHOP_NS, "State"),
    (PHOTOSHOP_NS, "Country"),
})
#: Words one of which every location property name contains: a packet with none
#: of them has nothing to remove and is not parsed at all.
_LOCATION_WORDS: Final = (b"GPS", b"Location", b"City", b"State", b"Country")
#: A DTD has no place in XMP, and entity declarations are how XML bombs work.
_DTD: Final = b"<!DOCTYPE"


@dataclass(frozen=True)
class MetadataPolicy:
    """What to keep of a source's EXIF and XMP.

    `upright`: the pixels were rotated to the EXIF orientation, so the
    orientation (EXIF and XMP `tiff:Orientation`) becomes 1.
    """

    remove_all: bool = False
    keep_location: bool = False
    upright: bool = False

    @property
    def keeps_everything(self) -> bool:
        """True when nothing may be removed: no location stripping, no `remove_exif`.

        Data a container carries beyond its image (after JPEG's EOI, PNG's IEND …:
        a second MPO picture, a motion-photo video with its own GPS) is kept only then.
        """
        return self.keep_location and not self.remove_all

    def exif(self, tiff: bytes) -> bytes | None:
        """The EXIF to keep (TIFF bytes, no `Exif\\0\\0` header), None to drop it.

        Returns `tiff` itself when it needs no change.
        """
        if self.remove_all:
            return None
        if self.keep_location and not self.upright:
            return tiff
        try:
            return _edit_exif(tiff, not self.keep_location, self.upright)
        except Exception:  # any failure to parse untrusted bytes: what cannot be checked goes
            return None

    def iptc(self, resources: bytes) -> bytes | None:
        """Photoshop image resources (JPEG APP13) to keep, None to drop them: the
        IPTC-IIM place names go unless `keep_location`. Returns `resources` itself
        when it needs no change; what does not parse is dropped."""
        if self.remove_all:
            return None
        if self.keep_location:
            return resources
        try:
            return iptc.strip_location(resources)
        except (ValueError, IndexError):
            return None

    def xmp(self, packet: bytes) -> bytes | None:
        """The XMP packet to keep, None to drop it. Returns `packet` itself when it
        needs no change; a packet that does not parse is dropped."""
        if self.remove_all:
            return None
        strip = not self.keep_location and any(word in packet for word in _LOCATION_WORDS)
        reorient = self.upright and b"Orientation" in packet
        if not (strip or reorient):
            return packet
        if _DTD in packet:
            return None
        try:
            document = minidom.parseString(packet)
        except (ExpatError, ValueError):
            return None
        root = document.documentElement
        if root is None:
            return None
        if not _edit(root, strip, reorient):
            return packet
        return "".join(node.toxml() for node in document.childNodes).encode()


def _edit_exif(tiff: bytes, strip: bool, reorient: bool) -> bytes | None:
    exif = Image.Exif()
    exif.load(EXIF_HEADER + tiff)
    changed = False
    if strip and GPS_IFD in exif:
        del exif[GPS_IFD]
        changed = True
    if reorient and exif.get(ORIENTATION, 1) != 1:
        exif[ORIENTATION] = 1
        changed = True
    if not changed:
        return tiff
    return exif.tobytes()[6:] if len(exif) else None


def _is_location(namespace: str | None, name: str | None) -> bool:
    if namespace == EXIF_NS and name is not None and name.startswith("GPS"):
        return True
    return (namespace, name) in LOCATION_PROPERTIES


def _is_orientation(namespace: str | None, name: str | None) -> bool:
    return namespace == TIFF_NS and name == "Orientation"


def _edit(element: minidom.Element, strip: bool, reorient: bool) -> bool:
    """Remove location properties (attributes and elements) under `element`, set
    tiff:Orientation to 1; True if anything changed."""
    changed = False
    for attr in list(element.attributes.values()):
        if strip and _is_location(attr.namespaceURI, attr.localName):
            element.removeAttributeNode(attr)
            changed = True
        elif reorient and _is_orientation(attr.namespaceURI, attr.localName) and attr.value != "1":
            attr.value = "1"
            changed = True
    for child in list(element.childNodes):
        if not isinstance(child, minidom.Element):
            continue
        if strip and _is_location(child.namespaceURI, child.localName):
            element.removeChild(child).unlink()
            changed = True
        elif reorient and _is_orientation(child.namespaceURI, child.localName):
            changed = _set_text(child, "1") or changed
        else:
            changed = _edit(child, strip, reorient) or changed
    return changed


def _set_text(element: minidom.Element, text: str) -> bool:
    """Make `text` the only content of `element`; True if it was something else."""
    if "".join(node.toxml() for node in element.childNodes).strip() == text:
        return False
    for node in list(element.childNodes):
        element.removeChild(node).unlink()
    node = minidom.Text()
    node.data = text
    element.appendChild(node)
    return True
