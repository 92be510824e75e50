"""containers.rewrite: metadata edited in JPEG, PNG, WebP and GIF files, image data untouched."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image, IptcImagePlugin, PngImagePlugin

from pichub.imaging.containers import XMP_APP, XMP_TRAILER, rewrite
from pichub.imaging.metadata import MetadataPolicy
from tests import samples

DEFAULT = MetadataPolicy()
REMOVE = MetadataPolicy(remove_all=True)


def frames(data: bytes) -> list[bytes]:
    """The decoded pixels of every frame."""
    with Image.open(io.BytesIO(data)) as im:
        out = []
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            out.append(im.convert("RGBA").tobytes())
        return out


def info(data: bytes) -> tuple[Image.Exif, dict[str, object]]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.getexif(), dict(im.info)


def assert_no_location(data: bytes) -> None:
    exif, found = info(data)
    assert samples.GPS_IFD not in exif
    for word in samples.LOCATION_WORDS:
        assert word not in data, word


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_location_goes_the_rest_stays_and_pixels_are_untouched(fmt: str) -> None:
    original = samples.photo_with_location(fmt)
    edited = rewrite(original, fmt.lower(), DEFAULT)
    assert edited is not None and edited is not original
    assert_no_location(edited)
    exif, found = info(edited)
    assert exif[samples.MAKE] == "PicHubCam"
    assert exif.get_ifd(samples.EXIF_IFD)[samples.DATE_TIME_ORIGINAL] == "2024:05:01 10:00:00"
    assert found["icc_profile"] == samples.srgb_icc()
    assert b"PicHubCam Studio" in edited  # XMP's other properties
    assert b"a secret comment" in edited or fmt == "WEBP"
    assert frames(edited) == frames(original)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_remove_exif_leaves_only_what_renders(fmt: str) -> None:
    original = samples.photo_with_location(fmt)
    edited = rewrite(original, fmt.lower(), REMOVE)
    assert edited is not None
    exif, found = info(edited)
    assert len(exif) == 0
    assert "xmp" not in found and "comment" not in found and "Comment" not in found
    for needle in (b"PicHubCam", b"secret", b"xmpmeta", *samples.LOCATION_WORDS):
        assert needle not in edited, needle
    assert found["icc_profile"] == samples.srgb_icc()
    assert frames(edited) == frames(original)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_nothing_to_remove_returns_the_same_bytes(fmt: str) -> None:
    original = samples.photo_with_location(fmt, gps=False)
    assert rewrite(original, fmt.lower(), DEFAULT) is original


def test_data_after_the_jpeg_goes_unless_location_is_kept() -> None:
    original = samples.photo_with_location("JPEG", gps=False) + b"motion-photo video with GPS"
    edited = rewrite(original, "jpeg", DEFAULT)
    assert edited is not None and edited.endswith(b"\xff\xd9")
    assert rewrite(original, "jpeg", MetadataPolicy(keep_location=True)) is original


def test_compressed_xmp_and_raw_exif_profiles_in_png() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", samples.LOCATION_XMP, zip=True)
    text.add_text("Raw profile type exif", "\nexif\n      10\n4578696600004d4d002a\n", zip=True)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG", pnginfo=text)
    edited = rewrite(out.getvalue(), "png", DEFAULT)
    assert edited is not None
    _, found = info(edited)
    assert b"PicHubCam Studio" in edited and b"Paris" not in edited
    assert "Raw profile type exif" not in found
    assert isinstance(found["XML:com.adobe.xmp"], str)


def animated(fmt: str, **options: object) -> bytes:
    images = [Image.new("RGB", (16, 12), colour) for colour in ("red", "green", "blue")]
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=[50, 60, 70],
                   loop=0, **options)
    return out.getvalue()


def test_animated_png_stays_animated() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "a secret comment")
    original = animated("PNG", pnginfo=text, exif=samples.location_exif().tobytes())
    edited = rewrite(original, "png", REMOVE)
    assert edited is not None and b"secret" not in edited and b"PicHubCam" not in edited
    assert frames(edited) == frames(original) and len(frames(edited)) == 3


def test_animated_webp_stays_animated() -> None:
    original = animated("WEBP", exif=samples.location_exif().tobytes(), xmp=samples.LOCATION_XMP,
                        lossless=True)
    edited = rewrite(original, "webp", DEFAULT)
    assert edited is not None
    assert_no_location(edited)
    assert frames(edited) == frames(original) and len(frames(edited)) == 3


def gif_with_xmp_and_comment() -> bytes:
    data = animated("GIF", comment=b"a secret comment")
    xmp_extension = b"\x21\xff\x0b" + XMP_APP + samples.LOCATION_XMP + XMP_TRAILER
    start = data.index(b"\x21\xff\x0bNETSCAPE2.0")
    return data[:start] + xmp_extension + data[start:]


def test_gif_xmp_location_and_comments() -> None:
    original = gif_with_xmp_and_comment()
    edited = rewrite(original, "gif", DEFAULT)
    assert edited is not None
    assert_no_location(edited)
    assert b"PicHubCam Studio" in edited and edited.count(XMP_TRAILER) == 1
    assert info(edited)[1]["comment"] == b"a secret comment"
    removed = rewrite(original, "gif", REMOVE)
    assert removed is not None and b"secret" not in removed and b"xmpmeta" not in removed
    assert frames(edited) == frames(removed) == frames(original)


def test_avif_has_no_rewriter_and_garbage_is_refused() -> None:
    assert rewrite(b"\x00\x00\x00\x1cftypavif", "avif", DEFAULT) is None
    garbage = b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00" + bytes(range(256)) * 4
    with pytest.raises(ValueError):
        rewrite(garbage, "jpeg", DEFAULT)
    with pytest.raises(ValueError):
        rewrite(b"\x89PNG\r\n\x1a\n" + zlib.compress(b"junk"), "png", DEFAULT)


def iim(record: int, dataset: int, value: bytes) -> bytes:
    return bytes((0x1C, record, dataset)) + len(value).to_bytes(2, "big") + value


def resource(rid: int, data: bytes) -> bytes:
    return b"8BIM" + rid.to_bytes(2, "big") + b"\x00\x00" + len(data).to_bytes(4, "big") + (
        data + b"\x00" * (len(data) % 2))


def jpeg_with_iptc() -> bytes:
    """A JPEG whose APP13 holds IPTC-IIM: keyword, caption, city, country, and a digest."""
    datasets = (iim(2, 0, b"\x00\x04") + iim(2, 25, b"holiday") + iim(2, 90, b"Paris")
                + iim(2, 120, b"at night") + iim(2, 101, b"France"))
    body = b"Photoshop 3.0\x00" + resource(0x0404, datasets) + resource(0x0425, b"\x01" * 16)
    segment = b"\xff\xed" + (len(body) + 2).to_bytes(2, "big") + body
    plain = samples.photo_with_location("JPEG", gps=False)
    return plain[:2] + segment + plain[2:]


def iptc_of(data: bytes) -> dict[tuple[int, int], object]:
    with Image.open(io.BytesIO(data)) as im:
        return IptcImagePlugin.getiptcinfo(im) or {}


def test_iptc_place_names_go_the_rest_stays() -> None:
    original = jpeg_with_iptc()
    assert iptc_of(original)[(2, 90)] == b"Paris"
    edited = rewrite(original, "jpeg", DEFAULT)
    assert edited is not None
    found = iptc_of(edited)
    assert found[(2, 25)] == b"holiday" and found[(2, 120)] == b"at night"
    assert (2, 90) not in found and (2, 101) not in found
    assert b"Paris" not in edited and b"France" not in edited
    assert b"8BIM\x04\x25" not in edited  # the digest of the old IPTC block goes with it
    assert frames(edited) == frames(original)
    assert rewrite(original, "jpeg", MetadataPolicy(keep_location=True)) is original
    removed = rewrite(original, "jpeg", REMOVE)
    assert removed is not None and b"Photoshop" not in removed and b"holiday" not in removed
