"""POST /upload: every field and rule of the upload, through a real server."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from PIL import Image

from tests import samples
from tests.conftest import Api, ApiFactory, make_settings
from tests.support import dbrows

MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG", "gif": b"GIF8"}


def is_format(data: bytes, fmt: str) -> bool:
    if fmt == "webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return data.startswith(MAGIC[fmt])


def rows(api: Api, sql: str) -> list[tuple[Any, ...]]:
    return dbrows.rows(api, sql)


def data_dir(api: Api) -> Path:
    from pichub.keys import SETTINGS

    return Path(api.app[SETTINGS].storage.data_dir)


def stored_files(api: Api) -> list[Path]:
    """Every file in blobs/ and tmp/: what a failed upload must not leave behind."""
    root = data_dir(api)
    return [p for sub in ("blobs", "tmp") for p in (root / sub).rglob("*") if p.is_file()]


def assert_nothing_left(api: Api) -> None:
    assert rows(api, "SELECT COUNT(*) FROM images") == [(0,)]
    assert rows(api, "SELECT COUNT(*) FROM events WHERE type = 'image.uploaded'") == [(0,)]
    assert stored_files(api) == []


def assert_envelope(body: dict[str, Any], code: str) -> None:
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["message"] == body["error"]["message"]
    assert "details" in body["error"]


async def fetch(api: Api, url: str) -> tuple[int, bytes, Any]:
    path = url.split("://", 1)[1].split("/", 1)[1]
    async with api.client.get("/" + path) as resp:
        return resp.status, await resp.read(), resp.headers


async def test_upload_defaults_convert_to_webp_and_serve_url(api: Api) -> None:
    status, body = await api.upload(("holiday photo.jpg", samples.jpeg((64, 48))))
    assert status == 201, body
    assert body["success"] is True
    [image] = body["data"]
    assert image["format"] == "webp" and image["mime"] == "image/webp"
    assert (image["width"], image["height"]) == (64, 48)
    assert image["original_name"] == "holiday photo.jpg"
    assert image["filename"] == "holiday_photo.webp"
    assert image["is_public"] is True and image["album_id"] is None
    assert image["url"].endswith(f"/img/{image['id']}.webp")
    assert image["created_at"].endswith("Z")
    assert len(image["id"]) >= 11  # ≥ 64 bits of randomness, URL-safe
    links = image["links"]
    assert links["markdown"] == f"![holiday photo.jpg]({image['url']})"
    assert links["bbcode"] == f"[img]{image['url']}[/img]"
    assert links["html"].startswith(f'<img src="{image["url"]}"')
    status, data, headers = await fetch(api, image["url"])
    assert status == 200 and is_format(data, "webp")
    assert headers["Content-Type"] == "image/webp"
    assert len(data) == image["size"]
    assert hashlib.sha256(data).hexdigest() == image["sha256"]
    blob = data_dir(api) / "blobs" / image["id"][:2] / image["id"][2:4] / f"{image['id']}.webp"
    assert blob.read_bytes() == data
    [(etype, payload)] = rows(api, "SELECT type, payload FROM events")
    assert etype == "image.uploaded"
    event = json.loads(payload)
    assert event["id"].startswith("evt_") and event["data"]["id"] == image["id"]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"convertToWebP": "false"}, "jpeg"),
    ({"convertToWebP": "0", "format": "png"}, "png"),
    ({"format": "jpeg", "convertToWebP": "true"}, "jpeg"),
    ({"format": "jpg"}, "jpeg"),
    ({"format": "webp", "convertToWebP": "false"}, "webp"),
    ({"format": "auto", "convertToWebP": "1"}, "webp"),
])
async def test_format_precedence(api: Api, fields: dict[str, str], expected: str) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()), **fields)
    assert status == 201, body
    image = body["data"][0]
    assert image["format"] == expected
    _, data, _ = await fetch(api, image["url"])
    assert is_format(data, expected)


async def test_source_format_kept_byte_for_byte(api: Api) -> None:
    original = samples.png_alpha()
    status, body = await api.upload(("a.png", original), convertToWebP="false")
    assert status == 201
    _, data, _ = await fetch(api, body["data"][0]["url"])
    assert data == original


async def test_several_files_and_aliases(api: Api) -> None:
    status, body = await api.upload(("one.jpg", samples.jpeg()), ("two.png", samples.png_alpha()),
                                    ("three.gif", samples.animated_gif()))
    assert status == 201
    assert [i["original_name"] for i in body["data"]] == ["one.jpg", "two.png", "three.gif"]
    for alias in ("files", "file", "image"):
        status, body = await api.upload((f"{alias}.jpg", samples.jpeg()), field=alias)
        assert status == 201, (alias, body)
        assert body["data"][0]["original_name"] == f"{alias}.jpg"


async def test_animated_gif_becomes_animated_webp(api: Api) -> None:
    status, body = await api.upload(("anim.gif", samples.animated_gif(frames=4)))
    assert status == 201
    _, data, _ = await fetch(api, body["data"][0]["url"])
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "WEBP" and im.n_frames == 4
        durations = []
        for index in range(im.n_frames):
            im.seek(index)
            im.load()
            durations.append(im.info["duration"])
    assert durations == [100, 150, 200, 250]


async def test_exif_orientation_applied_and_metadata_kept(api: Api) -> None:
    status, body = await api.upload(("rot.jpg", samples.jpeg_exif((60, 40))), format="jpeg",
                                    quality="95", keep_location="true")
    assert status == 201
    image = body["data"][0]
    assert (image["width"], image["height"]) == (40, 60)
    _, data, _ = await fetch(api, image["url"])
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        assert exif[samples.ORIENTATION] == 1
        assert exif.get_ifd(samples.GPS_IFD)[1] == "N"
        assert im.info.get("icc_profile")
        # Orientation 6 rotates 90° clockwise: the top-left marker ends top-right.
        r, g, b = im.convert("RGB").getpixel((im.width - 3, 2))  # type: ignore[misc]
        assert r > 200 and g < 60 and b < 60


async def test_remove_exif_strips_exif_xmp_gps_keeps_icc(api: Api) -> None:
    for fmt in ("jpeg", "webp"):
        status, body = await api.upload(("rot.jpg", samples.jpeg_exif()), format=fmt,
                                        remove_exif="true")
        assert status == 201
        _, data, _ = await fetch(api, body["data"][0]["url"])
        with Image.open(io.BytesIO(data)) as im:
            assert len(im.getexif()) == 0
            assert "xmp" not in im.info and b"GPS" not in data
            assert im.info.get("icc_profile") == samples.srgb_icc()
            assert (im.width, im.height) == (40, 60)


async def test_options_description_private_autorename(api: Api) -> None:
    status, body = await api.upload(("Ünïcode name!.png", samples.png_alpha()),
                                    is_public="0", auto_rename="true", description="hello",
                                    convertToWebP="false")
    assert status == 201
    image = body["data"][0]
    assert image["is_public"] is False and image["description"] == "hello"
    assert image["original_name"] == "Ünïcode name!.png"
    assert image["filename"].endswith(".png") and "name" not in image["filename"]
    status, body = await api.upload(("Ünïcode name!.png", samples.png_alpha()),
                                    convertToWebP="false")
    assert body["data"][0]["filename"] == "Unicode_name.png"


async def test_quality_changes_size(api: Api) -> None:
    big = samples.jpeg((400, 300), quality=100)
    _, low = await api.upload(("a.jpg", big), quality="10")
    _, high = await api.upload(("a.jpg", big), quality="95")
    assert low["data"][0]["size"] < high["data"][0]["size"]


@pytest.mark.parametrize(("fields", "field"), [
    ({"quality": "0"}, "quality"), ({"quality": "101"}, "quality"), ({"quality": "x"}, "quality"),
    ({"format": "bmp"}, "format"), ({"remove_exif": "yes"}, "remove_exif"),
    ({"convertToWebP": "maybe"}, "convertToWebP"), ({"auto_rename": "2"}, "auto_rename"),
    ({"is_public": "public"}, "is_public"), ({"album_id": "abc"}, "album_id"),
    ({"description": "x" * 1001}, "description"),
])
async def test_bad_fields_are_422_and_leave_nothing(api: Api, fields: dict[str, str],
                                                    field: str) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()), **fields)
    assert status == 422
    assert_envelope(body, "VALIDATION_ERROR")
    assert [d["field"] for d in body["error"]["details"]] == [field]
    assert_nothing_left(api)


@pytest.mark.parametrize(("name", "data", "status", "code"), [
    ("evil.svg", samples.SVG, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("page.jpg", samples.HTML, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("notes.png", b"just some text\n" * 10, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("doc.jpg", b"%PDF-1.7\n" + b"0" * 100, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("cut.jpg", samples.truncated_jpeg(), 422, "VALIDATION_ERROR"),
    ("fake.png", samples.garbage_with_png_magic(), 422, "VALIDATION_ERROR"),
    ("empty.jpg", b"", 415, "UNSUPPORTED_MEDIA_TYPE"),
])
async def test_bad_files(api: Api, name: str, data: bytes, status: int, code: str) -> None:
    got, body = await api.upload((name, data))
    assert got == status, body
    assert_envelope(body, code)
    assert_nothing_left(api)


async def test_decode_errors_name_no_server_path(api: Api) -> None:
    garbage = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    for fields in ({}, {"convertToWebP": "false"}):
        status, body = await api.upload(("photo.jpg", garbage), **fields)
        assert status == 422
        assert_envelope(body, "VALIDATION_ERROR")
        assert body["message"] == "file: cannot decode image: not a valid JPEG file"
        assert str(data_dir(api)) not in json.dumps(body) and "upload-" not in json.dumps(body)


async def test_no_file_is_422_and_not_multipart_is_400(api: Api) -> None:
    with aiohttp.MultipartWriter("form-data") as writer:
        writer.append("80").set_content_disposition("form-data", name="quality")
    status, body = await api.call("POST", "/api/v1/upload", data=writer)
    assert status == 422
    assert_envelope(body, "VALIDATION_ERROR")
    assert body["error"]["details"][0]["field"] == "files[]"
    status, body = await api.call("POST", "/api/v1/upload", data={"quality": "80"})
    assert status == 400
    assert_envelope(body, "BAD_REQUEST")


async def test_pixel_and_frame_limits(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"max_pixels": 1000, "max_frames": 3}))
    status, body = await api.upload(("big.jpg", samples.jpeg((50, 30))))
    assert status == 422 and "pixels" in body["message"]
    status, body = await api.upload(("anim.gif", samples.animated_gif(frames=4, size=(10, 10))))
    assert status == 422 and "frames" in body["message"]
    assert_nothing_left(api)


async def test_partial_batch(api: Api) -> None:
    status, body = await api.upload(("good.jpg", samples.jpeg()), ("evil.svg", samples.SVG),
                                     ("good2.png", samples.png_alpha()))
    assert status == 201
    assert [i["original_name"] for i in body["data"]] == ["good.jpg", "good2.png"]
    [error] = body["errors"]
    assert error["index"] == 1 and error["filename"] == "evil.svg"
    assert error["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert rows(api, "SELECT COUNT(*) FROM images") == [(2,)]


async def test_all_fail_gives_first_error(api: Api) -> None:
    status, body = await api.upload(("cut.jpg", samples.truncated_jpeg()), ("e.svg", samples.SVG))
    assert status == 422
    assert_envelope(body, "VALIDATION_ERROR")


async def test_too_many_files(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"max_files_per_request": 2}))
    status, body = await api.upload(*[(f"{i}.jpg", samples.jpeg()) for i in range(3)])
    assert status == 422 and body["error"]["details"][0]["field"] == "files"
    assert_nothing_left(api)


async def test_file_over_size_limit_is_413_with_seed_wording(make_api: ApiFactory,
                                                            tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"max_upload_mb": 1}))
    payload = samples.jpeg() + b"\0" * (3 * 2**20)
    status, body = await api.upload(("huge.jpg", payload))
    assert status == 413
    assert_envelope(body, "PAYLOAD_TOO_LARGE")
    assert body["error"]["message"] == "File size exceeds maximum limit"
    assert body["error"]["details"] == "Maximum file size is 1MB. Your file is 3MB."
    assert_nothing_left(api)


async def test_album_rules(api: Api) -> None:
    status, album = await api.call("POST", "/api/v1/albums", json={"name": "Trips"})
    assert status == 201
    album_id = album["data"]["id"]
    status, body = await api.upload(("a.jpg", samples.jpeg()), album_id=album_id)
    assert status == 201 and body["data"][0]["album_id"] == album_id
    other = await api.new_user("bob")
    status, body = await api.upload(("a.jpg", samples.jpeg()), album_id=album_id, token=other)
    assert status == 404
    assert_envelope(body, "NOT_FOUND")
    status, body = await api.upload(("a.jpg", samples.jpeg()), album_id=999)
    assert status == 404


async def test_quota_exceeded_is_507_and_nothing_half_written(api: Api) -> None:
    token = await api.new_user("carol", quota_mb=1)
    status, _ = await api.upload(("a.jpg", samples.jpeg()), token=token)
    assert status == 201
    big = samples.jpeg((1500, 1200), quality=100)
    assert len(big) > 2**20
    status, body = await api.upload(("big.jpg", big), token=token, convertToWebP="false")
    assert status == 507
    assert_envelope(body, "INSUFFICIENT_STORAGE")
    assert rows(api, "SELECT COUNT(*) FROM images") == [(1,)]
    assert len([p for p in stored_files(api)]) == 1


async def test_free_disk_reserve_is_507(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"min_free_mb": 10**9}))
    status, body = await api.upload(("a.jpg", samples.jpeg()))
    assert status == 507
    assert_envelope(body, "INSUFFICIENT_STORAGE")
    assert_nothing_left(api)


async def test_auth_and_scope(api: Api) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()), token="ph_not-a-token")
    assert status == 401
    assert body == {
        "success": False,
        "message": "Invalid or expired API token",
        "error": {"code": "UNAUTHORIZED", "message": "Invalid or expired API token",
                  "details": "Please check your API token and ensure it has not expired"},
    }
    reader = await api.new_user("reader", scope="read")
    status, body = await api.upload(("a.jpg", samples.jpeg()), token=reader)
    assert status == 403
    assert_envelope(body, "FORBIDDEN")
    assert_nothing_left(api)


def _seed_python_client(base: str, token: str, path: Path) -> dict[str, Any]:
    """The seed's Python example, verbatim but for the URL."""
    url = f"{base}/api/v1/upload"
    headers = {"Authorization": f"Bearer {token}"}
    data = {"album_id": None, "description": "from the seed's Python client"}
    with open(path, "rb") as f:
        files = {"image": f}
        response = requests.post(url, headers=headers, files=files, data=data, timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
    return result


async def test_seed_python_client_shape(api: Api, tmp_path: Path) -> None:
    import asyncio

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(samples.jpeg())
    base = str(api.client.make_url("")).rstrip("/")
    result = await asyncio.to_thread(_seed_python_client, base, api.token, photo)
    assert result["success"] is True
    assert result["data"][0]["description"] == "from the seed's Python client"


async def test_seed_js_client_shape(api: Api) -> None:
    """files[] appended first, then quality and is_public, as the seed's JS example does."""
    status, body = await api.upload(("a.jpg", samples.jpeg()), ("b.jpg", samples.jpeg()),
                                    quality=85, is_public="0")
    assert status == 201 and len(body["data"]) == 2
    assert all(i["is_public"] is False for i in body["data"])


async def test_a_file_name_cannot_rewrite_the_markdown_link(api: Api) -> None:
    name = "x](https://attacker.invalid/t.png).png"
    status, body = await api.upload((name, samples.jpeg()))
    assert status == 201
    image = body["data"][0]
    markdown = image["links"]["markdown"]
    assert markdown == f"![x\\](https://attacker.invalid/t.png).png]({image['url']})"
    # The only unescaped "](" is the one before PicHub's own URL.
    unescaped = [i for i in range(len(markdown)) if markdown.startswith("](", i)
                 and markdown[i - 1] != "\\"]
    assert unescaped == [markdown.rindex("](")]
    assert image["original_name"] == name
