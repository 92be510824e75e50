"""Upload by URL: `url`/`urls[]` form fields and JSON bodies, fetched from a real local origin.

The origin (`tests/support/origin.py`) is a raw HTTP server on 127.0.0.1 (and
127.0.0.2 where a second, "internal" address is needed), so the tests see every
connection PicHub makes and control every byte it gets back. Reaching it needs
the private-network switch: `storage.fetch_allow_private_networks`, or
`storage.fetch_allowed_networks` for one address at a time — which is how a
redirect to another private address is shown to be refused without a connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData

from pichub.config import StorageSettings
from pichub.web.fetch import UrlFetcher, clean_name
from tests import samples
from tests.conftest import Api, ApiFactory, form, make_settings
from tests.support import origin as o
from tests.support.dns import FakeDNS
from tests.support.origin import Origin
from tests.test_api_upload import (
    assert_envelope,
    assert_nothing_left,
    data_dir,
    fetch,
    rows,
    stored_files,
)

OPEN = {"fetch_allow_private_networks": True}
PNG = samples.png_alpha((40, 30))
JPEG = samples.jpeg((64, 48))


@pytest.fixture
async def site() -> AsyncIterator[Origin]:
    server = await Origin().start()
    server.routes.update({"/photo.jpg": o.body(JPEG, "image/jpeg"),
                          "/alpha.png": o.body(PNG, "image/png")})
    yield server
    await server.close()


@pytest.fixture
async def inside() -> AsyncIterator[Origin]:
    """A second origin on another loopback address: the "internal service"."""
    server = await Origin(host="127.0.0.2").start()
    server.routes["/secret.png"] = o.body(PNG, "image/png")
    yield server
    await server.close()


async def open_api(make_api: ApiFactory, tmp_path: Path, **storage: Any) -> Api:
    return await make_api(make_settings(tmp_path, storage={**OPEN, **storage}))


async def by_json(api: Api, payload: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    return await api.call("POST", "/api/v1/upload", json=payload, token=token)


def url_form(**fields: Any) -> FormData:
    """Options as multipart fields, also without a file (as browsers and `curl -F` send
    them); add `url` fields to it."""
    data = FormData(default_to_multipart=True)
    for key, value in fields.items():
        data.add_field(key, str(value))
    return data


async def by_form(api: Api, *urls: str, field: str = "url", **fields: Any) -> tuple[int, Any]:
    data = url_form(**fields)
    for url in urls:
        data.add_field(field, url)
    return await api.call("POST", "/api/v1/upload", data=data)


def url_error(body: dict[str, Any], code: str, words: str) -> None:
    assert_envelope(body, code)
    assert words in body["message"], body


# --- what works -------------------------------------------------------------------------------

async def test_json_url_is_fetched_and_stored_like_a_file(make_api: ApiFactory, tmp_path: Path,
                                                          site: Origin) -> None:
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"url": site.url("/photo.jpg")})
    assert status == 201, body
    [image] = body["data"]
    assert "errors" not in body
    assert image["original_name"] == "photo.jpg" and image["filename"] == "photo.webp"
    assert (image["format"], image["width"], image["height"]) == ("webp", 64, 48)
    got, data, _ = await fetch(api, image["url"])
    assert got == 200 and hashlib.sha256(data).hexdigest() == image["sha256"]
    assert rows(api, "SELECT COUNT(*) FROM events WHERE type = 'image.uploaded'") == [(1,)]
    assert site.requests == ["/photo.jpg"]
    assert not any((data_dir(api) / "tmp").iterdir())


async def test_form_fields_repeat_and_keep_their_order(make_api: ApiFactory, tmp_path: Path,
                                                       site: Origin) -> None:
    api = await open_api(make_api, tmp_path)
    data = url_form(convertToWebP="false", is_public="0", description="from the web")
    data.add_field("url", site.url("/alpha.png"))
    data.add_field("urls[]", site.url("/photo.jpg"))
    data.add_field("url", "   ")  # a blank field (an empty URL box) is no URL
    status, body = await api.call("POST", "/api/v1/upload", data=data)
    assert status == 201, body
    assert [i["original_name"] for i in body["data"]] == ["alpha.png", "photo.jpg"]
    assert [i["format"] for i in body["data"]] == ["png", "jpeg"]
    assert all(i["is_public"] is False and i["description"] == "from the web"
               for i in body["data"])


async def test_json_options_apply(make_api: ApiFactory, tmp_path: Path, site: Origin) -> None:
    api = await open_api(make_api, tmp_path)
    status, album = await api.call("POST", "/api/v1/albums", json={"name": "Imports"})
    album_id = album["data"]["id"]
    status, body = await by_json(api, {
        "urls": [site.url("/alpha.png"), site.url("/photo.jpg")], "album_id": album_id,
        "convertToWebP": False, "is_public": 0, "auto_rename": "true", "quality": 70,
        "description": None})
    assert status == 201, body
    assert [i["format"] for i in body["data"]] == ["png", "jpeg"]
    assert all(i["album_id"] == album_id and not i["is_public"] for i in body["data"])
    assert body["data"][0]["filename"] != "alpha.png"  # auto_rename


@pytest.mark.parametrize(("payload", "field"), [
    ({"urls": "http://example.com/a.png"}, "urls"),
    ({"urls": ["http://example.com/a.png", 5]}, "urls"),
    ({"url": 5}, "url"),
    ({"url": "http://example.com/a.png", "quality": True}, "quality"),
    ({"url": "http://example.com/a.png", "is_public": "maybe"}, "is_public"),
    ({}, "files[]"),
    ({"url": "  "}, "files[]"),
])
async def test_bad_json_bodies_are_one_422_before_any_fetch(api: Api, payload: dict[str, Any],
                                                            field: str) -> None:
    status, body = await by_json(api, payload)
    assert status == 422, body
    assert body["error"]["details"][0]["field"] == field
    assert_nothing_left(api)


async def test_json_that_is_no_object_is_400(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/upload", data=b'["http://x/a.png"]',
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "BAD_REQUEST"


async def test_redirects_up_to_three_are_followed(make_api: ApiFactory, tmp_path: Path,
                                                  site: Origin) -> None:
    site.routes.update({"/r3": o.redirect("/r2", 301), "/r2": o.redirect(site.url("/r1"), 307),
                        "/r1": o.redirect("photo.jpg?size=big#frag", 303)})
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"url": site.url("/r3")})
    assert status == 201, body
    assert body["data"][0]["original_name"] == "photo.jpg"
    assert site.requests == ["/r3", "/r2", "/r1", "/photo.jpg?size=big"]


async def test_a_fourth_redirect_is_refused(make_api: ApiFactory, tmp_path: Path,
                                            site: Origin) -> None:
    site.routes.update({f"/r{n}": o.redirect(f"/r{n - 1}") for n in range(2, 5)})
    site.routes["/r1"] = o.redirect("/photo.jpg")
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"url": site.url("/r4")})
    assert status == 422
    url_error(body, "VALIDATION_ERROR", "more than 3 redirects")
    assert site.requests == ["/r4", "/r3", "/r2", "/r1"]  # the fourth target is not asked
    assert_nothing_left(api)


async def test_a_redirect_loop_is_refused_when_it_shows(make_api: ApiFactory, tmp_path: Path,
                                                        site: Origin) -> None:
    site.routes.update({"/a": o.redirect("/b"), "/b": o.redirect("/a")})
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"url": site.url("/a")})
    assert status == 422 and "loop" in body["message"]
    assert site.requests == ["/a", "/b"]


# --- the SSRF guard ----------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "words"), [
    ("127.0.0.1", "storage.fetch_allow_private_networks"),
    ("localhost", "storage.fetch_allow_private_networks"),
    ("0x7f.0.0.1", "(127.0.0.1)"),  # inet_aton spellings resolve, and are checked as resolved
    ("[::ffff:127.0.0.1]", "storage.fetch_allow_private_networks"),
    ("2130706433", "must be a valid URL"),  # yarl refuses these spellings outright
    ("127.1", "must be a valid URL")])
async def test_private_addresses_are_refused_without_a_connection(api: Api, site: Origin,
                                                                  host: str,
                                                                  words: str) -> None:
    status, body = await by_form(api, f"http://{host}:{site.port}/photo.jpg")
    assert status == 422
    url_error(body, "VALIDATION_ERROR", words)
    assert body["error"]["details"] == [{"field": "url", "message": body["message"][5:]}]
    assert site.connections == 0
    assert_nothing_left(api)


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd",
                                 "example.com/a.png", "http://", "http://[::1/"])
async def test_urls_that_are_not_http_are_422(api: Api, url: str) -> None:
    status, body = await by_json(api, {"url": url})
    assert status == 422 and body["error"]["details"][0]["field"] == "url", body


async def test_one_allowed_network_does_not_open_the_others(make_api: ApiFactory,
                                                            tmp_path: Path, site: Origin,
                                                            inside: Origin) -> None:
    """Private networks stay closed but 127.0.0.1/32 is allowed: the origin there answers,
    and its redirect to 127.0.0.2 is refused before any connection is made there."""
    site.routes["/to-inside"] = o.redirect(inside.url("/secret.png"))
    api = await make_api(make_settings(tmp_path, storage={
        "fetch_allowed_networks": ["127.0.0.1/32"]}))
    status, body = await by_json(api, {"url": site.url("/alpha.png")})
    assert status == 201, body
    status, body = await by_json(api, {"url": site.url("/to-inside")})
    assert status == 422
    assert "redirected to http://127.0.0.2" in body["message"]
    assert "127.0.0.2" in body["message"] and "storage.fetch_allow_private_networks" in (
        body["message"])
    assert inside.connections == 0
    status, body = await by_json(api, {"url": inside.url("/secret.png")})
    assert status == 422 and inside.connections == 0




async def _fetcher(tmp_path: Path, dns: FakeDNS, **storage: Any) -> UrlFetcher:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    fetcher = UrlFetcher(StorageSettings(data_dir=tmp_path, **storage), tmp, resolver=dns)
    fetcher.start()
    return fetcher


async def test_host_names_are_checked_on_every_hop_and_connected_as_checked(
        tmp_path: Path, site: Origin, inside: Origin) -> None:
    dns = FakeDNS({"images.example": ["127.0.0.1"], "intranet.example": ["127.0.0.2"],
                     "rebind.example": ["127.0.0.1", "127.0.0.2"]})
    site.routes["/away"] = o.redirect(f"http://intranet.example:{inside.port}/secret.png")
    fetcher = await _fetcher(tmp_path, dns, fetch_allowed_networks=["127.0.0.1/32"])
    try:
        item = await fetcher.fetch(0, f"http://images.example:{site.port}/away")
        assert item.error is not None and item.path is None
        assert "intranet.example resolves to a private or reserved address (127.0.0.2)" in (
            item.error.message)
        assert inside.connections == 0
        # One lookup per hop, and the socket goes to the address that lookup gave: a name
        # that would rebind to 127.0.0.2 on the next lookup still reaches 127.0.0.1 only.
        dns.lookups.clear()
        item = await fetcher.fetch(1, f"http://rebind.example:{site.port}/alpha.png")
        assert item.error is None and item.path is not None
        assert item.path.read_bytes() == PNG and item.original_name == "alpha.png"
        assert dns.lookups == ["rebind.example"] and inside.connections == 0
        item.path.unlink()
    finally:
        await fetcher.close()


# --- limits ------------------------------------------------------------------------------------

async def test_slow_servers_time_out_in_bounded_time(make_api: ApiFactory, tmp_path: Path,
                                                     site: Origin) -> None:
    site.routes.update({"/trickle.png": o.trickle(PNG * 10, 0.05),
                        "/stall.png": o.stall(), "/silent.png": o.stall(after_headers=False)})
    api = await open_api(make_api, tmp_path, fetch_timeout_s=1.0, fetch_read_timeout_s=0.4)
    for path, words in [("/trickle.png", "did not arrive within 1 s"),
                        ("/stall.png", "did not answer for 0.4 s"),
                        ("/silent.png", "did not answer for 0.4 s")]:
        started = time.monotonic()
        status, body = await by_json(api, {"url": site.url(path)})
        elapsed = time.monotonic() - started
        assert status == 422, body
        assert words in body["message"], body
        assert elapsed < 3, (path, elapsed)
    assert_nothing_left(api)


async def test_a_2gb_content_length_is_refused_before_the_body(make_api: ApiFactory,
                                                               tmp_path: Path,
                                                               site: Origin) -> None:
    site.routes["/huge.png"] = o.endless(PNG[:64], declared=2 * 2**30)
    api = await open_api(make_api, tmp_path)
    started = time.monotonic()
    status, body = await by_json(api, {"url": site.url("/huge.png")})
    assert status == 413
    assert_envelope(body, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"] == "Maximum file size is 50MB. Your file is 2048MB."
    assert time.monotonic() - started < 5
    await _until(lambda: site.closed_early == 1)
    # What the origin managed to send before noticing is socket buffers, not the body.
    assert site.sent < 16 * 2**20, site.sent
    assert_nothing_left(api)


async def test_a_body_over_the_limit_without_length_is_cut(make_api: ApiFactory,
                                                           tmp_path: Path,
                                                           site: Origin) -> None:
    site.routes["/endless.png"] = o.endless(PNG[:64])
    api = await open_api(make_api, tmp_path, max_upload_mb=1)
    status, body = await by_json(api, {"url": site.url("/endless.png")})
    assert status == 413
    assert body["error"]["details"] == ("Maximum file size is 1MB. The file at this URL is "
                                        "larger.")
    await _until(lambda: site.closed_early == 1)
    assert site.sent < 16 * 2**20, site.sent
    assert_nothing_left(api)


@pytest.mark.parametrize(("data", "content_type"), [
    (samples.HTML, "image/png"), (samples.SVG, "image/svg+xml"), (b"", "image/png"),
    (b"%PDF-1.7\n" + bytes(2000), "application/pdf")])
async def test_what_is_not_an_image_is_415(make_api: ApiFactory, tmp_path: Path,
                                          site: Origin, data: bytes, content_type: str) -> None:
    site.routes["/thing"] = o.body(data, content_type)
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"url": site.url("/thing")})
    assert status == 415, body
    assert_envelope(body, "UNSUPPORTED_MEDIA_TYPE")
    assert_nothing_left(api)


async def test_a_long_html_page_is_not_downloaded(make_api: ApiFactory, tmp_path: Path,
                                                  site: Origin) -> None:
    site.routes["/page"] = o.endless(samples.HTML + b" " * 600)
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"url": site.url("/page")})
    assert status == 415, body
    await _until(lambda: site.closed_early == 1)
    assert site.sent < 16 * 2**20


@pytest.mark.parametrize(("route", "words"), [
    (o.status(404), "answered HTTP 404 Not Found"),
    (o.redirect(""), "without a Location")])
async def test_bad_answers_are_422(make_api: ApiFactory, tmp_path: Path, site: Origin,
                                   route: o.Responder, words: str) -> None:
    site.routes["/x.png"] = route
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"url": site.url("/x.png")})
    assert status == 422 and words in body["message"], body


async def test_a_closed_port_is_422(make_api: ApiFactory, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        api = await open_api(make_api, tmp_path)
        status, body = await by_json(api, {"url": f"http://127.0.0.1:{port}/a.png"})
    assert status == 422 and f"cannot connect to 127.0.0.1:{port}" in body["message"], body


# --- batches and rules --------------------------------------------------------------------------

async def test_files_and_urls_in_one_batch_each_stand_alone(make_api: ApiFactory,
                                                            tmp_path: Path,
                                                            site: Origin) -> None:
    site.routes["/page.html"] = o.body(samples.HTML, "text/html")
    api = await open_api(make_api, tmp_path)
    data = form(("good.jpg", JPEG), ("evil.svg", samples.SVG))
    for url in [site.url("/alpha.png"), site.url("/missing.png"), site.url("/page.html"),
                site.url("/photo.jpg")]:
        data.add_field("urls[]", url)
    status, body = await api.call("POST", "/api/v1/upload", data=data)
    assert status == 201, body
    assert [i["original_name"] for i in body["data"]] == ["good.jpg", "alpha.png", "photo.jpg"]
    errors = [(e["index"], e["filename"], e["code"], e["url"]) for e in body["errors"]]
    assert errors == [(1, "evil.svg", "UNSUPPORTED_MEDIA_TYPE", None),
                      (3, "missing.png", "VALIDATION_ERROR", site.url("/missing.png")),
                      (4, "page.html", "UNSUPPORTED_MEDIA_TYPE", site.url("/page.html"))]
    assert "HTTP 404" in body["errors"][1]["message"]
    assert rows(api, "SELECT COUNT(*) FROM images") == [(3,)]
    assert rows(api, "SELECT COUNT(*) FROM events WHERE type = 'image.uploaded'") == [(3,)]
    assert not any((data_dir(api) / "tmp").iterdir())
    stored = {p.name.split(".")[0] for p in stored_files(api)}
    assert stored == {i["id"] for i in body["data"]}  # no blob of a failed item


async def test_files_and_urls_count_together(make_api: ApiFactory, tmp_path: Path,
                                             site: Origin) -> None:
    api = await open_api(make_api, tmp_path, max_files_per_request=2)
    data = form(("a.jpg", JPEG))
    data.add_field("url", site.url("/alpha.png"))
    data.add_field("url", site.url("/photo.jpg"))
    status, body = await api.call("POST", "/api/v1/upload", data=data)
    assert status == 422 and "at most 2 files and URLs" in body["message"]
    assert site.connections == 0
    assert_nothing_left(api)


async def test_another_users_album_costs_no_fetch(make_api: ApiFactory, tmp_path: Path,
                                                  site: Origin) -> None:
    api = await open_api(make_api, tmp_path)
    status, album = await api.call("POST", "/api/v1/albums", json={"name": "mine"})
    bob = await api.new_user("bob")
    status, body = await by_json(api, {"url": site.url("/photo.jpg"),
                                       "album_id": album["data"]["id"]}, token=bob)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    assert site.connections == 0


async def test_the_quota_applies(make_api: ApiFactory, tmp_path: Path, site: Origin) -> None:
    api = await open_api(make_api, tmp_path)
    tiny = await api.new_user("tiny", quota_mb=0)
    status, body = await by_json(api, {"url": site.url("/photo.jpg")}, token=tiny)
    assert status == 507 and body["error"]["code"] == "INSUFFICIENT_STORAGE"
    assert_nothing_left(api)


async def test_url_uploads_spend_the_upload_budget(make_api: ApiFactory, tmp_path: Path,
                                                   site: Origin) -> None:
    api = await make_api(make_settings(tmp_path, storage=OPEN, rate_limits={
        "enabled": True, "upload": "1/minute"}))
    status, _ = await by_json(api, {"urls": [site.url("/photo.jpg"), site.url("/alpha.png")]})
    assert status == 201
    status, body = await by_json(api, {"url": site.url("/photo.jpg")})
    assert status == 429 and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert site.requests == ["/photo.jpg", "/alpha.png"]  # refused before fetching


async def test_names_come_from_content_disposition_or_the_path(make_api: ApiFactory,
                                                               tmp_path: Path,
                                                               site: Origin) -> None:
    site.routes.update({
        "/download": o.body(PNG, "image/png", Content_Disposition=(
            "attachment; filename=\"fallback.png\"; filename*=UTF-8''%E5%A4%95%E6%97%A5.png")),
        "/u/42": o.redirect("/cdn/holiday%20snap.png"),
        "/cdn/holiday%20snap.png": o.body(PNG, "image/png"),
        "/avatar.png": o.redirect("/store/7f3a"), "/store/7f3a": o.body(PNG, "image/png"),
        "/sp%E2%80%AEgnp.exe": o.body(PNG, "image/png"),
        "/": o.body(PNG, "image/png")})
    api = await open_api(make_api, tmp_path)
    status, body = await by_json(api, {"urls": [
        site.url(path) for path in ("/download", "/u/42", "/avatar.png",
                                    "/sp%E2%80%AEgnp.exe", "/")]})
    assert status == 201, body
    assert [i["original_name"] for i in body["data"]] == [
        "夕日.png", "holiday snap.png", "avatar.png", "spgnp.exe", "image"]
    assert [i["filename"] for i in body["data"]] == [
        "image.webp", "holiday_snap.webp", "avatar.webp", "spgnp.webp", "image.webp"]


def test_clean_name() -> None:
    assert clean_name("a/b\\c.png") == "c.png"
    assert clean_name("\x00\x1b[31mred\u202e.png\t") == "[31mred.png"
    assert clean_name("") == clean_name("   ") == "image"
    assert len(clean_name("x" * 1000)) == 255


async def test_the_dashboard_uploads_from_a_url(aiohttp_client: Any, tmp_path: Path,
                                                site: Origin) -> None:
    from browser import form_client

    client = await form_client(aiohttp_client, tmp_path, storage=OPEN)
    await client.login("alice")
    token = await client.token()
    data = url_form(is_public="true")
    data.add_field("url", site.url("/photo.jpg"))
    async with client.client.post("/dashboard/upload", data=data,
                                  headers={"X-CSRF-Token": token}) as resp:
        body = await resp.json()
    assert resp.status == 201, body
    assert body["data"][0]["original_name"] == "photo.jpg"
    assert f'data-image-id="{body["data"][0]["id"]}"' in body["html"]
    data = url_form()
    data.add_field("url", site.url("/photo.jpg"))
    async with client.client.post("/dashboard/upload", data=data) as resp:
        assert resp.status == 403  # no CSRF token: nothing fetched
    assert site.requests == ["/photo.jpg"]


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
