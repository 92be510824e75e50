"""POST /upload and metadata: location stripped by default, `keep_location`, `remove_exif`,
and the original bytes (or at least the original pixels) kept when only metadata changes."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from tests import samples
from tests.conftest import Api


async def stored(api: Api, source: bytes, **fields: Any) -> bytes:
    status, body = await api.upload(("photo", source), **fields)
    assert status == 201, body
    path = body["data"][0]["url"].split("://", 1)[1].split("/", 1)[1]
    async with api.client.get("/" + path) as resp:
        assert resp.status == 200
        return await resp.read()


def metadata(data: bytes) -> tuple[Image.Exif, bytes, dict[str, Any]]:
    """EXIF, XMP (as bytes, b"" if none) and the rest of `info` of an encoded image."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b""
        return im.getexif(), xmp.encode() if isinstance(xmp, str) else xmp, dict(im.info)


def decoded(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB").tobytes()


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
async def test_location_is_stripped_by_default_and_the_rest_kept(api: Api, fmt: str) -> None:
    data = await stored(api, samples.photo_with_location("JPEG"), format=fmt)
    exif, xmp, info = metadata(data)
    assert samples.GPS_IFD not in exif
    assert (exif[samples.MAKE], exif[samples.MODEL]) == ("PicHubCam", "Model X")
    assert exif.get_ifd(samples.EXIF_IFD)[samples.DATE_TIME_ORIGINAL] == "2024:05:01 10:00:00"
    assert info["icc_profile"] == samples.srgb_icc()
    assert b"PicHubCam Studio" in xmp and b"DateTimeOriginal" in xmp
    for word in samples.LOCATION_WORDS:
        assert word not in data, word


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
async def test_keep_location_keeps_gps_in_exif_and_xmp(api: Api, fmt: str) -> None:
    data = await stored(api, samples.photo_with_location("JPEG"), format=fmt,
                        keep_location="true")
    exif, xmp, _ = metadata(data)
    assert exif.get_ifd(samples.GPS_IFD)[1] == "N"
    assert b"GPSLatitude" in xmp and b"Paris" in xmp and b"Champ de Mars" in xmp


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
@pytest.mark.parametrize("source", ["JPEG", "PNG"])
async def test_remove_exif_strips_comments_exif_xmp_and_gps(api: Api, fmt: str,
                                                            source: str) -> None:
    data = await stored(api, samples.photo_with_location(source), format=fmt,
                        remove_exif="1", keep_location="1")
    exif, xmp, info = metadata(data)
    assert len(exif) == 0 and xmp == b""
    assert not {"comment", "Comment", "exif"} & set(info)
    for needle in (b"PicHubCam", b"secret", b"xmpmeta", *samples.LOCATION_WORDS):
        assert needle not in data, needle
    assert info["icc_profile"] == samples.srgb_icc()


async def test_a_jpeg_without_location_is_stored_byte_for_byte(api: Api) -> None:
    original = samples.photo_with_location("JPEG", gps=False)
    assert await stored(api, original, convertToWebP="false") == original


@pytest.mark.parametrize("source", ["JPEG", "PNG", "WEBP"])
async def test_only_the_location_changes_when_the_format_stays(api: Api, source: str) -> None:
    original = samples.photo_with_location(source)
    data = await stored(api, original, convertToWebP="false")
    assert data != original
    assert decoded(data) == decoded(original)  # the very same pixels: not re-encoded
    exif, xmp, info = metadata(data)
    assert samples.GPS_IFD not in exif and b"GPSLatitude" not in xmp
    assert exif[samples.MAKE] == "PicHubCam" and info["icc_profile"] == samples.srgb_icc()
    if source == "JPEG":  # outside the metadata blocks, not one byte changed
        assert data[data.index(b"\xff\xdb"):] == original[original.index(b"\xff\xdb"):]


async def test_keep_location_must_be_a_boolean(api: Api) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()), keep_location="maybe")
    assert status == 422
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"] == [
        {"field": "keep_location", "message": "must be true, false, 1 or 0"}]
