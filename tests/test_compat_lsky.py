"""The Lsky Pro V2 compatible API (`/compat/lsky/api/v1/…`) as its clients see it: answers and
every error in Lsky Pro's shape, the `Authorization` header with or without `Bearer `, limits."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import samples
from client_site import ClientSite, start

from pichub.keys import DB
from pichub.services import accounts

BASE = "/compat/lsky/api/v1"


async def _upload(site: ClientSite, data: bytes, *, auth: str | None,
                  **fields: str) -> tuple[int, Any, Any]:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="pic.png", content_type="image/png")
    for key, value in fields.items():
        form.add_field(key, value)
    headers = {"Accept": "application/json"} | ({"Authorization": auth} if auth else {})
    async with aiohttp.ClientSession() as session, session.post(
            site.base + BASE + "/upload", data=form, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def _call(site: ClientSite, method: str, path: str,
                auth: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": auth or f"Bearer {site.token}"}
    async with aiohttp.ClientSession() as session, session.request(
            method, site.base + BASE + path, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_upload_answer_and_lists(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path, images={"signing_key": "s" * 32})
    status, body, _ = await _upload(site, samples.png_alpha(), auth=site.token,
                                    permission="0", strategy_id="3")
    assert status == 200 and body["status"] is True
    data = body["data"]
    assert set(data) == {"key", "name", "pathname", "origin_name", "size", "mimetype",
                         "extension", "md5", "sha1", "links", "delete_url"}
    assert set(data["links"]) == {"url", "html", "bbcode", "markdown", "markdown_with_link",
                                  "thumbnail_url"}
    assert len(data["md5"]) == 32 and len(data["sha1"]) == 40
    assert (await site.image(data["key"]))["is_public"] == 0
    status, _ = await site.get(data["links"]["thumbnail_url"].removeprefix(site.base))
    assert status == 200  # signed
    status, listed = await _call(site, "GET", "/images")
    assert status == 200 and listed["status"] is True
    page = listed["data"]
    assert page["total"] == 1 and page["per_page"] == 40 and page["current_page"] == 1
    assert page["data"][0]["key"] == data["key"] and page["data"][0]["width"] == 40
    status, albums = await _call(site, "GET", "/albums")
    assert status == 200 and albums["data"]["data"] == []


async def test_delete(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    _, body, _ = await _upload(site, samples.png_alpha(), auth=f"Bearer {site.token}")
    key = body["data"]["key"]
    status, answer = await _call(site, "DELETE", f"/images/{key}", auth=site.token)
    assert status == 200 and answer == {"status": True, "message": "Deleted", "data": {}}
    assert await site.image(key) is None
    status, answer = await _call(site, "DELETE", f"/images/{key}")  # gone: Lsky says success
    assert status == 200 and answer["status"] is True


async def test_errors_in_lsky_shape(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path, storage={"max_upload_mb": 1},
                       rate_limits={"enabled": True, "upload": "3/minute"})
    cases = [
        (None, samples.png_alpha(), 401, "UNAUTHORIZED"),
        ("Bearer ph_wrong", samples.png_alpha(), 401, "UNAUTHORIZED"),
        (site.token, b"\x89PNG" + b"\0" * (2**20 + 10), 200, "PAYLOAD_TOO_LARGE"),
        (site.token, samples.SVG, 200, "UNSUPPORTED_MEDIA_TYPE"),  # Lsky: 200, status false
    ]
    for auth, data, status, code in cases:
        got, body, headers = await _upload(site, data, auth=auth)
        assert (got, headers["X-PicHub-Error"]) == (status, code), body
        assert body["status"] is False and body["message"] and body["data"] == {}
    _, body, _ = await _upload(site, samples.png_alpha(), auth=site.token)
    assert body["status"] is True  # the third upload of the minute
    got, body, headers = await _upload(site, samples.png_alpha(), auth=site.token)
    assert got == 429 and body["status"] is False and "Retry-After" in headers
    status, body = await _call(site, "GET", "/nothing")
    assert status == 404 and body["status"] is False
    status, body = await _call(site, "GET", "/images", auth="Bearer ph_wrong")
    assert status == 401 and body == {"status": False, "message": body["message"], "data": {}}


async def test_read_token_cannot_upload(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    reader = await accounts.create_token(site.app[DB], "bob", scope="read")
    status, body, _ = await _upload(site, samples.png_alpha(), auth=reader)
    assert status == 403 and body["status"] is False
    status, body = await _call(site, "GET", "/images", auth=reader)
    assert status == 200 and json.dumps(body["data"]["data"]) == "[]"
