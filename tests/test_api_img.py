"""/img through the real server: variants, caching headers, limits, signing."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from PIL import Image

from pichub.imaging.spec import sign
from pichub.keys import PIPELINE, SETTINGS
from tests import samples
from tests.conftest import Api, ApiFactory, make_settings


async def stored(api: Api, data: bytes | None = None, **fields: Any) -> dict[str, Any]:
    status, body = await api.upload(("p.jpg", data or samples.jpeg((640, 480))), **fields)
    assert status == 201, body
    return dict(body["data"][0])


async def fetch(api: Api, path: str, headers: dict[str, str] | None = None,
                method: str = "GET") -> tuple[int, Any, bytes]:
    async with api.client.request(method, path, headers=headers or {}) as resp:
        return resp.status, resp.headers, await resp.read()


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


async def test_resize_and_convert_by_url(api: Api) -> None:
    image = await stored(api)
    iid = image["id"]
    status, headers, data = await fetch(api, f"/img/{iid}.webp?w=800&h=600&fit=cover&q=80")
    assert status == 200 and headers["Content-Type"] == "image/webp"
    assert size_of(data) == (800, 600) and data[8:12] == b"WEBP"
    status, headers, data = await fetch(api, f"/{iid}.webp?w=800&h=600&fit=crop&q=90")
    assert status == 200 and size_of(data) == (800, 600)
    status, headers, data = await fetch(api, f"/img/{iid}.jpg?w=320")
    assert headers["Content-Type"] == "image/jpeg" and size_of(data) == (320, 240)
    status, headers, data = await fetch(api, f"/img/{iid}?h=100&fm=png")
    assert data[:4] == b"\x89PNG" and size_of(data) == (133, 100)
    status, headers, data = await fetch(api, f"/img/{iid}.webp?w=100&h=100&fit=contain&fm=avif")
    assert data[4:12] in (b"ftypavif", b"ftypavis") and size_of(data) == (100, 100)


async def test_cache_hit_same_bytes_without_transform(api: Api) -> None:
    image = await stored(api)
    pipeline = api.app[PIPELINE]
    url = f"/img/{image['id']}.webp?w=200"
    _, _, first = await fetch(api, url)
    runs = pipeline.transforms_run
    _, _, again = await fetch(api, f"/img/{image['id']}.webp?fit=inside&w=200")
    assert again == first and pipeline.transforms_run == runs
    cache_files = list((Path(api.app[SETTINGS].storage.data_dir) / "cache").rglob("*.webp"))
    assert len(cache_files) == 1 and cache_files[0].read_bytes() == first


async def test_http_caching_headers_304_and_head(api: Api) -> None:
    image = await stored(api)
    for url in (f"/img/{image['id']}.webp", f"/img/{image['id']}.webp?w=64"):
        status, headers, data = await fetch(api, url)
        assert status == 200
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        etag = headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert int(headers["Content-Length"]) == len(data)
        status, headers304, body = await fetch(api, url, {"If-None-Match": etag})
        assert status == 304 and body == b"" and headers304["ETag"] == etag
        later = format_datetime(datetime.now(UTC) + timedelta(minutes=1), usegmt=True)
        status, _, _ = await fetch(api, url, {"If-Modified-Since": later})
        assert status == 304
        status, _, _ = await fetch(api, url, {"If-None-Match": '"other"'})
        assert status == 200
        status, head, body = await fetch(api, url, method="HEAD")
        assert status == 200 and body == b"" and head["Content-Length"] == str(len(data))
        assert head["ETag"] == etag


async def test_fm_auto_negotiates_and_varies(api: Api) -> None:
    image = await stored(api)
    base = f"/img/{image['id']}?w=50&fm=auto"
    _, headers, data = await fetch(api, base, {"Accept": "image/avif,image/webp,*/*"})
    assert headers["Vary"] == "Accept" and headers["Content-Type"] == "image/avif"
    _, headers, data = await fetch(api, base, {"Accept": "image/webp,*/*"})
    assert headers["Content-Type"] == "image/webp"
    _, headers, data = await fetch(api, base, {"Accept": "*/*"})
    assert headers["Content-Type"] == "image/jpeg" and data[:3] == b"\xff\xd8\xff"


async def test_bad_params_are_400(api: Api) -> None:
    image = await stored(api)
    for query in ("w=0", "w=abc", "h=-5", "q=101", "fit=stretch", "fm=bmp", "w=4097"):
        status, _, body = await fetch(api, f"/img/{image['id']}.webp?{query}")
        assert status == 400, query
        assert b'"BAD_REQUEST"' in body and b'"success": false' in body
    status, _, _ = await fetch(api, f"/img/{image['id']}.bmp")
    assert status in (400, 404)
    status, _, body = await fetch(api, "/img/doesnotexist12.webp?w=10")
    assert status == 404 and b"NOT_FOUND" in body


async def test_delete_removes_variants(api: Api) -> None:
    image = await stored(api)
    await fetch(api, f"/img/{image['id']}.webp?w=50")
    await fetch(api, f"/img/{image['id']}.png?w=60")
    cache = Path(api.app[SETTINGS].storage.data_dir) / "cache"
    assert len([p for p in cache.rglob("*") if p.is_file()]) == 2
    status, _ = await api.call("DELETE", f"/api/v1/images/{image['id']}")
    assert status == 200
    assert [p for p in cache.rglob("*") if p.is_file()] == []


async def test_saturation_503_with_retry_after(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, images={"workers": 1, "queue_size": 0}))
    image = await stored(api, samples.jpeg((3000, 2000)), convertToWebP="false")
    results = await asyncio.gather(*[
        fetch(api, f"/img/{image['id']}.png?w={1000 + i}") for i in range(6)])
    statuses = [status for status, _, _ in results]
    assert 200 in statuses and 503 in statuses
    for status, headers, body in results:
        if status == 503:
            assert headers["Retry-After"] == "1" and b"SERVICE_UNAVAILABLE" in body


async def test_img_miss_rate_limited_hits_never(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, rate_limits={"enabled": True,
                                                              "img_miss": "2/minute"}))
    image = await stored(api)
    iid = image["id"]
    assert (await fetch(api, f"/img/{iid}.webp?w=10"))[0] == 200
    assert (await fetch(api, f"/img/{iid}.webp?w=11"))[0] == 200
    status, headers, body = await fetch(api, f"/img/{iid}.webp?w=12")
    assert status == 429 and int(headers["Retry-After"]) >= 1 and b"RATE_LIMIT" in body
    for _ in range(5):  # cached variants and originals are not limited
        assert (await fetch(api, f"/img/{iid}.webp?w=10"))[0] == 200
        assert (await fetch(api, f"/img/{iid}.webp"))[0] == 200


def _animation(size: tuple[int, int], frames: int) -> bytes:
    """A GIF whose frames all differ a little (so none is dropped as a duplicate)."""
    images = [Image.new("RGB", size, (i * 5 % 256, 40, 90)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return out.getvalue()


async def test_animated_misses_are_charged_by_what_they_decode(make_api: ApiFactory,
                                                               tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, rate_limits={"enabled": True,
                                                              "img_miss": "7/minute"}))
    gif = await stored(api, _animation((1000, 1000), 40), convertToWebP="false")
    iid = gif["id"]  # 40 frames × 1 MP = 40 MP decoded per animated variant: 3 units
    assert (await fetch(api, f"/img/{iid}.gif?w=16"))[0] == 200  # 3 of 7 used
    assert (await fetch(api, f"/img/{iid}.png?w=16"))[0] == 200  # frame 1 only: 1 unit
    assert (await fetch(api, f"/img/{iid}.webp?w=17"))[0] == 200  # animated WebP: 7 of 7
    status, _, body = await fetch(api, f"/img/{iid}.png?w=18")  # counted per request: 4 of 7
    assert status == 429 and b"RATE_LIMIT_EXCEEDED" in body


async def test_signed_variant_urls(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, images={"signing_key": "k3y"}))
    image = await stored(api)
    path = f"/img/{image['id']}.webp"
    status, _, body = await fetch(api, f"{path}?w=100")
    assert status == 403 and b"FORBIDDEN" in body
    query = {"w": "100", "h": "50"}
    good = sign(path, query, "k3y")
    assert (await fetch(api, f"{path}?h=50&w=100&s={good}"))[0] == 200
    bad = sign(path, query, "other")
    assert (await fetch(api, f"{path}?w=100&h=50&s={bad}"))[0] == 403
    assert (await fetch(api, f"{path}?w=101&h=50&s={good}"))[0] == 403
    assert (await fetch(api, path))[0] == 200  # originals stay unsigned


async def test_concurrent_identical_misses_transform_once(api: Api) -> None:
    image = await stored(api, samples.jpeg((1600, 1200)))
    pipeline = api.app[PIPELINE]
    before = pipeline.transforms_run
    results = await asyncio.gather(*[
        fetch(api, f"/img/{image['id']}.webp?w=400&h=300") for _ in range(20)])
    assert {status for status, _, _ in results} == {200}
    assert len({body for _, _, body in results}) == 1
    assert pipeline.transforms_run == before + 1


async def test_deleted_image_is_gone_for_hits_and_misses(api: Api) -> None:
    image = await stored(api)
    url = f"/img/{image['id']}.webp?w=120"
    first = await fetch(api, url)
    second = await fetch(api, url)  # a hit: same bytes, ETag and Last-Modified
    assert first[2] == second[2] and first[1]["ETag"] == second[1]["ETag"]
    assert first[1]["Last-Modified"] == second[1]["Last-Modified"]
    status, headers, body = await fetch(api, url, {"Range": "bytes=0-9"})
    assert status == 206 and body == first[2][:10] and headers["ETag"] == first[1]["ETag"]
    await api.call("DELETE", f"/api/v1/images/{image['id']}")
    for path in (url, f"/img/{image['id']}.webp?w=121", f"/img/{image['id']}.webp"):
        status, _, body = await fetch(api, path)
        assert status == 404 and b"NOT_FOUND" in body


async def test_private_images_are_served_just_not_listed(api: Api) -> None:
    image = await stored(api, is_public="false")
    assert (await fetch(api, f"/img/{image['id']}.webp"))[0] == 200
    assert (await fetch(api, f"/img/{image['id']}.webp?w=40"))[0] == 200
    status, body = await api.call("GET", "/api/v1/square")
    assert image["id"] not in {i["id"] for i in body["data"]}
