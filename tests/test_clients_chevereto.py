"""Chevereto's API V1 (`/api/1/upload`): imgbb-uploader (npm, Chevereto mode) by file, base64
and URL; ShareX's built-in Chevereto uploader's request; `format=txt`; every error in
Chevereto's shape."""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import samples
from aiohttp import web
from client_site import ClientSite, start
from npm_clients import node_script, requires_clients

PRIVATE_OK = {"storage": {"fetch_allow_private_networks": True}}


async def _photo_server(aiohttp_server: Any, body: bytes) -> str:
    """A plain web server on 127.0.0.1 that serves `body` (and a redirect to it)."""
    async def photo(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/jpeg")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/photos/beach.jpg")

    app = web.Application()
    app.router.add_get("/photos/beach.jpg", photo)
    app.router.add_get("/short", moved)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("")).rstrip("/")


async def _post(site: ClientSite, data: Any, *, headers: dict[str, str] | None = None,
                query: str = "") -> tuple[int, str, Any]:
    headers = dict(headers or {})
    if isinstance(data, dict):  # urlencoded, as imgBB-style clients send it
        data = io.BytesIO(urllib.parse.urlencode(data).encode())
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with aiohttp.ClientSession() as session, session.post(
            f"{site.base}/api/1/upload{query}", data=data, headers=headers,
            allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers


async def _assert_stored(site: ClientSite, answer: dict[str, Any]) -> str:
    assert answer["status_code"] == 200 and answer["status_txt"] == "OK"
    image = answer["image"]
    image_id = image["id_encoded"]
    row = await site.image(image_id)
    assert row["user_id"] == site.user_id
    for url in (image["url"], image["thumb"]["url"], image["medium"]["url"],
                image["url_viewer"]):
        status, _ = await site.get(url.removeprefix(site.base))
        assert status == 200, url
    assert image["delete_url"].startswith(site.base + "/delete/")
    return str(image_id)


@requires_clients
@pytest.mark.parametrize("mode", ["file", "base64"])
async def test_imgbb_uploader_file_and_base64(aiohttp_server: Any, tmp_path: Path,
                                             mode: str) -> None:
    site = await start(aiohttp_server, tmp_path)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(samples.jpeg((300, 200)))
    done = await node_script("chevereto-upload.js", mode, site.base, site.token, str(photo))
    assert done.code == 0, done.err
    image_id = await _assert_stored(site, json.loads(done.out))
    assert (await site.image(image_id))["width"] == 300


@requires_clients
async def test_imgbb_uploader_by_url(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path, **PRIVATE_OK)
    origin = await _photo_server(aiohttp_server, samples.jpeg((120, 80)))
    done = await node_script("chevereto-upload.js", "url", site.base, site.token,
                             origin + "/short")  # a redirect to the photo
    assert done.code == 0, done.err
    image_id = await _assert_stored(site, json.loads(done.out))
    assert (await site.image(image_id))["original_name"] == "beach.jpg"


@requires_clients
async def test_imgbb_uploader_sees_the_error(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)  # private targets refused (the default)
    done = await node_script("chevereto-upload.js", "url", site.base, site.token,
                             "http://127.0.0.1:9/photo.jpg")
    assert done.code == 1
    assert "private or reserved address" in done.err and '"status_code": 422' in done.err


async def test_sharex_chevereto_request_and_txt(aiohttp_server: Any, tmp_path: Path) -> None:
    """ShareX's built-in uploader: multipart, `source` file part, `key` and `format` fields."""
    site = await start(aiohttp_server, tmp_path)
    form = aiohttp.FormData()
    form.add_field("key", site.token)
    form.add_field("format", "json")
    form.add_field("source", samples.jpeg(), filename="shot.jpg", content_type="image/jpeg")
    status, text, _ = await _post(site, form)
    assert status == 200
    await _assert_stored(site, json.loads(text))

    form = aiohttp.FormData()
    form.add_field("source", samples.jpeg(), filename="shot.jpg", content_type="image/jpeg")
    status, text, _ = await _post(site, form, query="?format=txt",
                                  headers={"X-API-Key": site.token})
    assert status == 200 and text.count("\n") == 1
    assert text.startswith(site.base + "/img/") and text.strip().endswith(".webp")


async def test_base64_in_a_form_field_and_data_url(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    encoded = "data:image/jpeg;base64," + base64.b64encode(samples.jpeg()).decode()
    status, text, _ = await _post(site, {"source": encoded, "key": site.token,
                                         "format": "txt"})
    assert status == 200 and text.startswith(site.base + "/img/")
    form = aiohttp.FormData()
    form.add_field("source", base64.b64encode(samples.jpeg()).decode())
    status, text, headers = await _post(site, form, query="?format=redirect&key=" + site.token)
    assert status == 303 and headers["Location"].startswith(site.base + "/i/")


async def test_errors_in_chevereto_shape(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path, storage={"max_upload_mb": 1},
                       rate_limits={"enabled": True, "upload": "4/minute"})
    cases = [
        ({"source": base64.b64encode(samples.jpeg()).decode(), "key": "ph_wrong"}, 401),
        ({"source": base64.b64encode(b"\xff" * (2**20 + 10)).decode()}, 413),
        ({"source": base64.b64encode(samples.SVG).decode()}, 415),
        ({"source": "not base64 at all!"}, 422),
        ({"format": "json"}, 422),
    ]
    for data, expected in cases:
        query = "" if "key" in data else "?key=" + site.token  # the key before the body
        status, text, headers = await _post(site, data, query=query)
        body = json.loads(text)
        assert status == expected == body["status_code"], (expected, text)
        assert set(body) == {"status_code", "error", "status_txt"}
        assert body["error"]["message"] and "X-RateLimit-Limit" in headers
    status, text, headers = await _post(site, {"source": "x"}, query="?key=" + site.token)
    assert status == 429 and json.loads(text)["status_txt"] == "Too Many Requests"
    assert "Retry-After" in headers
    status, text, _ = await _post(site, {"source": "x"}, query=f"?key={site.token}&format=txt")
    assert status == 429 and text.startswith("Rate limit exceeded")
