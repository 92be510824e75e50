"""HEIC/HEIF uploads through a real server: stored upright in a web format, the original
kept byte for byte for its owner, counted in the quota, limits and bad files refused
with nothing left behind."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pichub.app import create_app
from pichub.imaging.formats import sniff
from pichub.services import backup
from tests import samples
from tests.conftest import Api, ApiFactory, make_settings
from tests.imaging_samples import srgb_icc
from tests.support import backends, heic
from tests.test_api_upload import assert_envelope, assert_nothing_left, rows, stored_files

GPS_IFD = 0x8825


@pytest.fixture(scope="module")
def iphone() -> bytes:
    return heic.iphone_photo()


async def get_bytes(api: Api, path: str, token: str | None = None) -> tuple[int, Any, bytes]:
    async with api.client.get(path, headers=api.headers(token)) as resp:
        return resp.status, resp.headers, await resp.read()


def near(pixel: Any, colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


async def test_iphone_photo_is_stored_upright_as_webp(api: Api, iphone: bytes) -> None:
    status, body = await api.upload(("IMG_0001.HEIC", iphone))
    assert status == 201, body
    image = body["data"][0]
    assert (image["format"], image["mime"], image["filename"]) == (
        "webp", "image/webp", "IMG_0001.webp")
    assert (image["width"], image["height"]) == (3024, 4032)
    assert image["original_format"] == "heic" and image["original_size"] == len(iphone)
    status, _, data = await get_bytes(api, f"/img/{image['id']}.webp")
    assert status == 200 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert image["size"] == len(data) and image["sha256"] == hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (3024, 4032)
        # Turned 90° clockwise: the stored top-left (red) is at the top right, the stored
        # bottom-left (blue) at the top left; a mirror or a wrong turn moves them elsewhere.
        assert near(im.getpixel((im.width - 100, 100)), heic.RED)
        assert near(im.getpixel((100, 100)), heic.BLUE)
        assert near(im.getpixel((100, im.height - 100)), heic.GREY)
        exif = im.getexif()
        assert exif.get(0x0112, 1) == 1 and exif.get(0x010F) == "Apple"
        assert GPS_IFD not in exif  # location stripped by default
        assert im.info.get("icc_profile") == srgb_icc()


async def test_original_downloads_byte_for_byte_for_its_owner_only(api: Api,
                                                                  iphone: bytes) -> None:
    status, body = await api.upload(("IMG_0001.HEIC", iphone))
    assert status == 201
    iid = body["data"][0]["id"]
    reader = await api.new_user("reader-alice-2", scope="read")
    status, headers, data = await get_bytes(api, f"/api/v1/images/{iid}/original")
    assert status == 200 and data == iphone
    assert headers["Content-Type"] == "image/heic"
    assert headers["X-PicHub-Original"] == "upload"
    assert headers["Content-Disposition"] == 'attachment; filename="IMG_0001.heic"'
    other = await api.new_user("bob")
    status, _, raw = await get_bytes(api, f"/api/v1/images/{iid}/original", token=other)
    assert status == 404
    assert b'"NOT_FOUND"' in raw
    status, _, _ = await get_bytes(api, f"/v1/images/{iid}/original", token=reader)
    assert status == 404  # a read token of another user: still not theirs
    status, _, _ = await get_bytes(api, "/api/v1/images/AAAAAAAAAAAA/original")
    assert status == 404


async def test_original_of_other_images_is_the_stored_file(api: Api) -> None:
    jpeg = samples.jpeg()
    status, body = await api.upload(("a.jpg", jpeg), convertToWebP="false")
    assert status == 201 and body["data"][0]["original_format"] is None
    iid = body["data"][0]["id"]
    status, headers, data = await get_bytes(api, f"/api/v1/images/{iid}/original")
    assert status == 200 and data == jpeg
    assert headers["X-PicHub-Original"] == "stored"
    assert headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize(("fields", "fmt", "magic"), [
    ({"convertToWebP": "false"}, "jpeg", b"\xff\xd8\xff"),
    ({"format": "png"}, "png", b"\x89PNG"),
    ({"format": "avif"}, "avif", b"ftypavif"),
    ({"format": "jxl"}, "jxl", b"\xff\x0a"),
])
async def test_output_format_options(api: Api, fields: dict[str, str], fmt: str,
                                     magic: bytes) -> None:
    status, body = await api.upload(("p.heic", heic.small()), **fields)
    assert status == 201, body
    image = body["data"][0]
    assert image["format"] == fmt and image["original_format"] == "heic"
    _, _, data = await get_bytes(api, f"/img/{image['id']}")
    assert magic in data[:12]
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (64, 48) and near(im.convert("RGB").getpixel((5, 5)), (10, 200, 30))


async def test_alpha_is_kept(api: Api) -> None:
    status, body = await api.upload(("a.heic", heic.with_alpha()))
    assert status == 201
    webp = body["data"][0]
    status, body = await api.upload(("a.heic", heic.with_alpha()), convertToWebP="false")
    png = body["data"][0]
    assert (webp["format"], png["format"]) == ("webp", "png")  # JPEG would lose the alpha
    for image in (webp, png):
        _, _, data = await get_bytes(api, f"/img/{image['id']}")
        with Image.open(io.BytesIO(data)) as im:
            rgba = im.convert("RGBA")
            assert rgba.getpixel((5, 5))[3] == 0
            assert near(rgba.getpixel((58, 5)), heic.RED) and rgba.getpixel((58, 5))[3] == 255


async def test_ten_bit_photo(api: Api) -> None:
    status, body = await api.upload(("hdr.heic", heic.ten_bit()), format="png")
    assert status == 201
    _, _, data = await get_bytes(api, f"/img/{body['data'][0]['id']}")
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB" and near(im.getpixel((10, 10)), (255, 128, 0), 6)


async def test_several_images_store_the_primary(api: Api) -> None:
    status, body = await api.upload(("burst.heic", heic.several_images(3)), format="png")
    assert status == 201
    image = body["data"][0]
    assert (image["width"], image["height"]) == (64, 48)
    _, _, data = await get_bytes(api, f"/img/{image['id']}")
    with Image.open(io.BytesIO(data)) as im:
        assert near(im.getpixel((5, 5)), (0, 255, 0))


async def test_quota_counts_the_original(api: Api) -> None:
    padded = heic.small(pad=1_300_000)  # 1.3 MB kept, a tiny JPEG stored
    token = await api.new_user("carol", quota_mb=1)
    status, body = await api.upload(("big.heic", padded), token=token, format="jpeg")
    assert status == 507, body
    assert_envelope(body, "INSUFFICIENT_STORAGE")
    assert_nothing_left(api)
    token = await api.new_user("dave", quota_mb=2)
    status, body = await api.upload(("big.heic", padded), token=token, format="jpeg")
    assert status == 201
    image = body["data"][0]
    assert image["size"] < 10_000 and image["original_size"] == len(padded)
    used = "SELECT used_bytes FROM users WHERE username = 'dave'"
    assert rows(api, used) == [(image["size"] + len(padded),)]
    status, _ = await api.call("DELETE", f"/api/v1/images/{image['id']}", token=token)
    assert status == 200
    assert rows(api, used) == [(0,)]
    assert stored_files(api) == []  # the original went with the image


async def test_delete_removes_the_original(api: Api) -> None:
    status, body = await api.upload(("p.heic", heic.small()))
    iid = body["data"][0]["id"]
    originals = [p for p in stored_files(api) if ".orig." in p.name]
    assert [p.name for p in originals] == [f"{iid}.orig.heic"]
    assert originals[0].read_bytes() == heic.small()
    status, _ = await api.call("DELETE", f"/api/v1/images/{iid}")
    assert status == 200 and stored_files(api) == []


@pytest.mark.parametrize(("storage", "message"), [
    ({"max_pixels": 12_000_000}, "image has 12192768 pixels, more than the limit of 12000000"),
    ({"max_decode_mb": 64}, "decoding needs 94 MB (3024×4032 pixels × 8 bytes), more than "
                            "the limit of 64 MB"),
])
async def test_grid_over_the_limits_is_422_before_decoding(
        make_api: ApiFactory, tmp_path: Path, iphone: bytes, storage: dict[str, int],
        message: str) -> None:
    api = await make_api(make_settings(tmp_path, storage=storage))
    status, body = await api.upload(("IMG_0001.HEIC", iphone))
    assert status == 422
    assert body["error"]["details"] == [{"field": "file", "message": message}]
    assert_nothing_left(api)


async def test_too_many_images_is_422(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"max_frames": 2}))
    status, body = await api.upload(("burst.heic", heic.several_images(3)))
    assert status == 422
    assert body["error"]["details"][0]["message"] == (
        "image has 3 images, more than the limit of 2")
    assert_nothing_left(api)


@pytest.mark.parametrize("mangle", [
    lambda data: data[: len(data) // 2],  # truncated in the picture data
    lambda data: data[:40],  # cut inside the header
    lambda data: data[:32] + bytes(len(data) - 32),  # a valid ftyp, then zeros
    lambda data: data[:-200] + bytes(200),  # the end of the picture data zeroed
])
async def test_corrupt_heic_is_422_with_nothing_left(api: Api, mangle: Any) -> None:
    status, body = await api.upload(("bad.heic", mangle(heic.small((256, 256)))))
    assert status == 422, body
    assert_envelope(body, "VALIDATION_ERROR")
    assert_nothing_left(api)


async def test_bad_file_beside_a_good_one(api: Api) -> None:
    status, body = await api.upload(("bad.heic", heic.small()[:60]), ("ok.heic", heic.small()))
    assert status == 201
    assert [e["index"] for e in body["errors"]] == [0]
    assert rows(api, "SELECT COUNT(*) FROM images") == [(1,)]
    assert len(stored_files(api)) == 2  # the stored WebP and the kept original


@pytest.mark.parametrize(("head", "expected"), [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heic"),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1MiHEmiafheic", "heic"),
    (b"\x00\x00\x00\x18ftypheix\x00\x00\x00\x00mif1heix", "heic"),
    (b"\x00\x00\x00\x18ftypmsf1\x00\x00\x00\x00msf1hevc", "heic"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "avif"),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "avif"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isommp41", None),  # an MP4 video
    (b"\x00\x00\x00\x10ftypheic\x00\x00\x00\x00", "heic"),
])
def test_sniff_by_ftyp_brands(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


@pytest.mark.skipif(backends.SCALE,
                    reason="backup and restore copy the SQLite file (PostgreSQL: not yet)")
async def test_backup_and_restore_keep_the_original(make_api: ApiFactory, tmp_path: Path,
                                                    aiohttp_client: Any) -> None:
    api = await make_api(make_settings(tmp_path))
    source = heic.small()
    status, body = await api.upload(("p.heic", source))
    image = body["data"][0]
    data = tmp_path / "data"
    manifest = await asyncio.to_thread(backup.backup, data, tmp_path / "bk")
    assert manifest.images == 1 and manifest.bytes == image["size"] + len(source)
    await asyncio.to_thread(backup.restore, tmp_path / "bk", tmp_path / "restored")
    restored = make_settings(tmp_path, storage={"data_dir": tmp_path / "restored"})
    client = await aiohttp_client(create_app(restored))
    async with client.get(f"/api/v1/images/{image['id']}/original",
                          headers=api.headers()) as resp:
        assert resp.status == 200 and await resp.read() == source
