"""MetadataPolicy: EXIF GPS and XMP location removed, the rest kept, nothing unchanged touched."""

from __future__ import annotations

from xml.dom import minidom

from PIL import Image

from pichub.imaging.metadata import MetadataPolicy
from tests import samples

DEFAULT = MetadataPolicy()
KEEP = MetadataPolicy(keep_location=True)
REMOVE = MetadataPolicy(remove_all=True)


def tiff(exif: Image.Exif) -> bytes:
    return exif.tobytes()[6:]


def parsed(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(b"Exif\x00\x00" + data)
    return exif


def test_gps_ifd_is_removed_and_the_camera_kept() -> None:
    edited = DEFAULT.exif(tiff(samples.location_exif()))
    assert edited is not None
    exif = parsed(edited)
    assert samples.GPS_IFD not in exif
    assert (exif[samples.MAKE], exif[samples.MODEL]) == ("PicHubCam", "Model X")
    assert exif.get_ifd(samples.EXIF_IFD)[samples.DATE_TIME_ORIGINAL] == "2024:05:01 10:00:00"


def test_exif_without_gps_is_returned_as_is() -> None:
    exif = samples.location_exif()
    del exif[samples.GPS_IFD]
    data = tiff(exif)
    assert DEFAULT.exif(data) is data


def test_keep_location_returns_exif_as_is_and_remove_exif_drops_it() -> None:
    data = tiff(samples.location_exif())
    assert KEEP.exif(data) is data
    assert REMOVE.exif(data) is None
    assert MetadataPolicy(remove_all=True, keep_location=True).exif(data) is None


def test_upright_resets_the_orientation_to_one() -> None:
    edited = MetadataPolicy(keep_location=True, upright=True).exif(tiff(samples.location_exif(6)))
    assert edited is not None
    exif = parsed(edited)
    assert exif[samples.ORIENTATION] == 1
    assert exif.get_ifd(samples.GPS_IFD)[1] == "N"


def test_exif_that_does_not_parse_is_dropped() -> None:
    assert DEFAULT.exif(b"not a tiff header at all") is None


def test_exif_holding_only_gps_goes_entirely() -> None:
    exif = Image.Exif()
    exif[samples.GPS_IFD] = {1: "N", 2: (1.0, 2.0, 3.0)}
    assert DEFAULT.exif(tiff(exif)) is None


def properties(packet: bytes) -> set[tuple[str | None, str | None]]:
    """Every (namespace, name) of an element or attribute in an XMP packet."""
    found: set[tuple[str | None, str | None]] = set()
    for element in minidom.parseString(packet).getElementsByTagNameNS("*", "*"):
        found.add((element.namespaceURI, element.localName))
        found |= {(a.namespaceURI, a.localName) for a in element.attributes.values()}
    return found


def test_xmp_location_is_removed_by_namespace_and_the_rest_kept() -> None:
    edited = DEFAULT.xmp(samples.LOCATION_XMP)
    assert edited is not None
    for word in samples.LOCATION_WORDS:
        assert word not in edited, word
    kept = properties(edited)
    assert ("http://ns.adobe.com/xap/1.0/", "CreatorTool") in kept
    assert ("http://ns.adobe.com/exif/1.0/", "DateTimeOriginal") in kept
    # `exif:` here is another namespace: its GPSNote is not a location
    assert ("https://example.com/not-exif/", "GPSNote") in kept
    assert not any(name and name.startswith("GPS") for ns, name in kept
                   if ns == "http://ns.adobe.com/exif/1.0/")
    assert edited.startswith(b"<?xpacket begin=")
    assert edited.rstrip().endswith(b'<?xpacket end="w"?>')


def test_xmp_without_location_is_returned_as_is() -> None:
    packet = samples.LOCATION_XMP.replace(b"GPS", b"Lens").replace(b"City", b"Label")
    packet = packet.replace(b"Country", b"Rating").replace(b"State", b"Title")
    packet = packet.replace(b"Location", b"Keywords")
    assert DEFAULT.xmp(packet) is packet


def test_xmp_kept_with_keep_location_and_dropped_with_remove_exif() -> None:
    assert KEEP.xmp(samples.LOCATION_XMP) is samples.LOCATION_XMP
    assert REMOVE.xmp(samples.LOCATION_XMP) is None


def test_xmp_that_does_not_parse_or_declares_a_dtd_is_dropped() -> None:
    assert DEFAULT.xmp(b"<x:xmpmeta><exif:GPSLatitude>1</broken>") is None
    bomb = (b'<!DOCTYPE x [<!ENTITY a "GPS">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;'
            b"</x:xmpmeta>")
    assert DEFAULT.xmp(bomb) is None


def test_upright_sets_xmp_orientation_to_one() -> None:
    packet = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/">'
              b'<tiff:Orientation>6</tiff:Orientation><y tiff:Orientation="8"/></x:xmpmeta>')
    edited = MetadataPolicy(keep_location=True, upright=True).xmp(packet)
    assert edited is not None
    assert b"<tiff:Orientation>1</tiff:Orientation>" in edited
    assert b'tiff:Orientation="1"' in edited
