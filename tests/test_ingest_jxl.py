"""JPEG XL in and out through a real server: uploads (kept, converted, metadata edited box
by box), `fm=jxl` variants, `fm=auto` negotiation, and the header checked before the
plugin decodes."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pichub.imaging import jxl
from tests import samples
from tests.conftest import Api, ApiFactory, make_settings
from tests.imaging_samples import textured
from tests.test_api_upload import assert_envelope, assert_nothing_left

GPS_IFD = 0x8825
#: 64×32 stored pixels with a red block at their top left, codestream orientation 6 (made
#: by libjxl's cjxl from a PNG with EXIF orientation 6): shown upright, 32×64, red top right.
ORIENTED = base64.b64decode(
    "AAAADEpYTCANCocKAAAAFGZ0eXBqeGwgAAAAAGp4bCAAAAC7anhsY/8Kxy2QUFwSABKIAgCQAl3lEgAAFSqjjBu8nOv58kOHxbSN"
    "6wxttW1hSaLIODZJJ3AIKbDCdRQjWUWKkZGRkTEyBpUxRjKPBLkdmgfKpeFb3fSNaeHNp6qweq6G7TDLf9kQwPWMtVsAAHQT7tAv"
    "ELzA5O1absDoFVIgpdfr8XR3Ol4Z49m8MSpITIQGg8X///QYUUNtpiAJDTv+T5YDHANozk9MAbE65dhEpKw8646LZyAW")
#: A 40×30 animation of three frames (cjxl from an animated GIF).
ANIMATED = base64.b64decode(
    "/wroMEEAFhSXBAgIoAIAAGgASxiLFQDUGWMwJi8gAYAgQRKUvwBBP5p12x8ICKACAABoAEsYixUAHDLG4Mi5gAQApjIoAIIE/v1U"
    "0OYACAigQgAARABLGIsVgF34/wISAPD2RNn7Aw==")


def jxl_photo(size: tuple[int, int] = (640, 480), **options: Any) -> bytes:
    out = io.BytesIO()
    textured(size).save(out, "JXL", quality=90, lossless_jpeg=False, **options)
    return out.getvalue()


def huge_header(side: int) -> bytes:
    """A bare codestream whose SizeHeader declares side × side pixels, then zeros."""
    bits = [0]  # not small
    bits += [1, 1] + [(side - 1) >> i & 1 for i in range(30)]  # ysize: 1 + u(30)
    bits += [1, 0, 0]  # ratio 1: xsize = ysize
    bits += [1]  # ImageMetadata all_default
    data = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        data[index // 8] |= bit << (index % 8)
    return b"\xff\x0a" + bytes(data) + bytes(200)


async def fetch(api: Api, path: str, headers: dict[str, str] | None = None,
                ) -> tuple[int, Any, bytes]:
    async with api.client.get(path, headers=headers or {}) as resp:
        return resp.status, resp.headers, await resp.read()


def decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


async def test_jxl_converted_to_webp_by_default(api: Api) -> None:
    status, body = await api.upload(("photo.jxl", jxl_photo()))
    assert status == 201, body
    image = body["data"][0]
    assert (image["format"], image["width"], image["height"]) == ("webp", 640, 480)
    assert image["original_format"] is None
    _, _, data = await fetch(api, f"/img/{image['id']}.webp")
    assert data[8:12] == b"WEBP" and decoded(data).size == (640, 480)


async def test_jxl_kept_byte_for_byte_and_served(api: Api) -> None:
    source = jxl_photo()
    status, body = await api.upload(("photo.jxl", source), convertToWebP="false")
    image = body["data"][0]
    assert (image["format"], image["mime"], image["filename"]) == (
        "jxl", "image/jxl", "photo.jxl")
    assert image["url"].endswith(f"/img/{image['id']}.jxl")
    assert image["sha256"] == hashlib.sha256(source).hexdigest()
    status, headers, data = await fetch(api, f"/img/{image['id']}.jxl")
    assert status == 200 and data == source and headers["Content-Type"] == "image/jxl"


async def test_fm_jxl_variants(api: Api) -> None:
    status, body = await api.upload(("photo.jxl", jxl_photo()), convertToWebP="false")
    iid = body["data"][0]["id"]
    status, headers, data = await fetch(api, f"/img/{iid}.jxl?w=100")
    assert status == 200 and headers["Content-Type"] == "image/jxl"
    assert data[:2] == b"\xff\x0a" and decoded(data).size == (100, 75)
    status, headers, data = await fetch(api, f"/img/{iid}.png?w=64&h=64&fit=cover")
    assert status == 200 and decoded(data).size == (64, 64)
    status, body = await api.upload(("a.jpg", samples.jpeg((400, 300))))
    iid = body["data"][0]["id"]
    status, headers, data = await fetch(api, f"/img/{iid}.webp?fm=jxl&w=200&h=200&fit=contain")
    assert status == 200 and headers["Content-Type"] == "image/jxl"
    assert data[:2] == b"\xff\x0a" and decoded(data).size == (200, 200)


@pytest.mark.parametrize(("accept", "expected"), [
    ("image/jxl,image/avif,image/webp,*/*", "image/jxl"),
    ("image/avif,image/webp,image/jxl", "image/jxl"),
    ("image/avif,image/webp,*/*", "image/avif"),
    ("image/webp,*/*", "image/webp"),
    ("*/*", "image/jpeg"),
])
async def test_fm_auto_prefers_jxl_then_avif_then_webp(api: Api, accept: str,
                                                       expected: str) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg((320, 240))))
    iid = body["data"][0]["id"]
    status, headers, data = await fetch(api, f"/img/{iid}?w=160&fm=auto", {"Accept": accept})
    assert status == 200 and headers["Content-Type"] == expected
    assert headers["Vary"] == "Accept"
    assert decoded(data).size == (160, 120)


@pytest.mark.parametrize(("fmt", "magic"), [("jxl", b"\xff\x0a"), ("avif", b"ftypavif")])
async def test_upload_format_jxl_and_avif(api: Api, fmt: str, magic: bytes) -> None:
    status, body = await api.upload(("a.png", samples.png_alpha()), format=fmt)
    assert status == 201, body
    image = body["data"][0]
    assert image["format"] == fmt and image["url"].endswith(f".{fmt if fmt != 'jpeg' else 'jpg'}")
    _, _, data = await fetch(api, f"/img/{image['id']}")
    assert magic in data[:12]
    im = decoded(data)
    assert im.size == (40, 30) and im.mode == "RGBA"


async def test_codestream_orientation_comes_out_upright(api: Api) -> None:
    status, body = await api.upload(("turned.jxl", ORIENTED), format="png")
    assert status == 201, body
    image = body["data"][0]
    assert (image["width"], image["height"]) == (32, 64)
    _, _, data = await fetch(api, f"/img/{image['id']}")
    im = decoded(data)
    assert im.size == (32, 64)
    red, grey = im.getpixel((31, 0)), im.getpixel((0, 0))
    assert red[0] > 230 and red[1] < 40 and grey[0] < 230  # red at the top right only
    status, body = await api.upload(("turned.jxl", ORIENTED), convertToWebP="false")
    assert body["data"][0]["sha256"] == hashlib.sha256(ORIENTED).hexdigest()


async def test_location_removed_box_by_box(api: Api) -> None:
    exif = samples.location_exif().tobytes()
    source = jxl_photo((64, 48), exif=exif, use_container=True)
    status, body = await api.upload(("gps.jxl", source), convertToWebP="false")
    image = body["data"][0]
    _, _, data = await fetch(api, f"/img/{image['id']}")
    assert data != source and image["sha256"] == hashlib.sha256(data).hexdigest()
    stored = decoded(data).getexif()
    assert GPS_IFD not in stored and stored.get(0x010F) == "PicHubCam"
    codestream = [b for b in jxl._boxes(memoryview(source)) if b[0] in (b"jxlc", b"jxlp")]
    assert all(bytes(payload) in data for _, payload, _ in codestream)  # pixels untouched
    status, body = await api.upload(("gps.jxl", source), convertToWebP="false",
                                    keep_location="true")
    assert body["data"][0]["sha256"] == hashlib.sha256(source).hexdigest()


async def test_animated_jxl_is_415(api: Api) -> None:
    status, body = await api.upload(("anim.jxl", ANIMATED))
    assert status == 415
    assert_envelope(body, "UNSUPPORTED_MEDIA_TYPE")
    assert "Animated JPEG XL" in body["error"]["details"]
    assert_nothing_left(api)


async def test_huge_header_is_422_before_decoding(api: Api) -> None:
    status, body = await api.upload(("bomb.jxl", huge_header(30_000)))
    assert status == 422
    assert body["error"]["details"] == [{"field": "file", "message": (
        "image has 900000000 pixels, more than the limit of 100000000")}]
    assert_nothing_left(api)


async def test_decode_budget_from_the_header(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"max_decode_mb": 1}))
    status, body = await api.upload(("photo.jxl", jxl_photo()))
    assert status == 422
    assert body["error"]["details"][0]["message"] == (
        "decoding needs 3 MB (640×480 pixels × 8 bytes), more than the limit of 1 MB")
    assert_nothing_left(api)


@pytest.mark.parametrize("mangle", [
    lambda data: data[: len(data) // 2],
    lambda data: data[:6],
    lambda data: data[:20] + bytes(len(data) - 20),
])
async def test_corrupt_jxl_is_422_with_nothing_left(api: Api, mangle: Any) -> None:
    status, body = await api.upload(("bad.jxl", mangle(jxl_photo())))
    assert status == 422, body
    assert_envelope(body, "VALIDATION_ERROR")
    assert_nothing_left(api)


def test_header_reader() -> None:
    for size in [(1, 1), (7, 13), (640, 480), (4032, 3024), (1234, 5678), (65536, 3)]:
        out = io.BytesIO()
        Image.new("RGB", size).save(out, "JXL", lossless_jpeg=False, effort=1)
        path = Path("/dev/null")
        header = jxl._parse(jxl._Bits(out.getvalue()[2:]))
        assert (header.width, header.height, header.animated) == (*size, False), path
    assert jxl._parse(jxl._Bits(ANIMATED[2:])).animated
    oriented = jxl._parse(jxl._Bits(ORIENTED[42:]))  # the jxlc box's codestream
    assert (oriented.width, oriented.height, oriented.orientation) == (32, 64, 6)
