"""The web UI over real HTTP: uploads, albums, tokens, webhooks, assets, escaping."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from pathlib import Path
from typing import Any

import samples
from aiohttp import FormData
from browser import FormClient, form_client

from pichub.keys import DB
from pichub.models.webhooks import EVENT_TYPES
from pichub.web.ui.assets import hashed_name

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


async def _signed_in(aiohttp_client: Any, tmp_path: Path, **sections: Any) -> FormClient:
    ui = await form_client(aiohttp_client, tmp_path, **sections)
    await ui.login("alice")
    return ui


async def _upload(ui: FormClient, *files: tuple[str, bytes], csrf: str | None = "page",
                  **fields: str) -> tuple[int, Any, Any]:
    data = FormData()
    for key, value in fields.items():
        data.add_field(key, value)
    for name, content in files:
        data.add_field("files[]", io.BytesIO(content), filename=name,
                       content_type="application/octet-stream")
    headers = {} if csrf is None else {"X-CSRF-Token": await ui.token() if csrf == "page"
                                       else csrf}
    async with ui.client.post("/dashboard/upload", data=data, headers=headers) as resp:
        return resp.status, await resp.json(), resp


async def test_upload_xhr_returns_the_api_json_and_rendered_cards(aiohttp_client: Any,
                                                                  tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    status, body, _ = await _upload(ui, ("cat.jpg", samples.jpeg()), is_public="false",
                                    convertToWebP="false", quality="70")
    assert status == 201 and body["success"] is True
    image = body["data"][0]
    assert image["format"] == "jpeg" and image["is_public"] is False
    assert f'src="/img/{image["id"]}.webp?w=400"' in body["html"]
    assert 'data-copy="' + image["links"]["markdown"] + '"' in body["html"]
    status, html = await ui.text("/dashboard")
    assert f'data-image-id="{image["id"]}"' in html


async def test_upload_xhr_refuses_without_session_or_token(aiohttp_client: Any,
                                                           tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    status, body, _ = await _upload(ui, ("a.jpg", samples.jpeg()), csrf=None)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    await ui.login("alice")
    for token in (None, "forged"):
        status, body, _ = await _upload(ui, ("a.jpg", samples.jpeg()), csrf=token)
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    status, body, _ = await _upload(ui, ("evil.svg", samples.SVG))
    assert status == 415  # the API's own validation runs
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM images") == 0


async def test_upload_xhr_counts_against_the_upload_limit(aiohttp_client: Any,
                                                          tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path,
                          rate_limits={"enabled": True, "upload": "2/minute"})
    for _ in range(2):
        assert (await _upload(ui, ("a.jpg", samples.jpeg())))[0] == 201
    status, body, resp = await _upload(ui, ("a.jpg", samples.jpeg()))
    assert status == 429 and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(resp.headers["Retry-After"]) >= 1


async def test_edit_and_delete_an_image(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    image_id = (await _upload(ui, ("a.jpg", samples.jpeg())))[1]["data"][0]["id"]
    await ui.post("/dashboard/albums", {"name": "Trips"})
    album = await ui.app[DB].fetchval("SELECT id FROM albums")
    status, _, resp = await ui.post(f"/dashboard/images/{image_id}", {
        "album_id": str(album), "is_public": "0", "description": "by the sea",
        "next": f"/dashboard?album_id={album}"})
    assert status == 303 and resp.headers["Location"] == f"/dashboard?album_id={album}"
    row = await ui.app[DB].fetchone("SELECT * FROM images WHERE id = ?", (image_id,))
    assert (row["album_id"], row["is_public"], row["description"]) == (album, 0, "by the sea")
    html = (await ui.text(f"/dashboard?album_id={album}"))[1]
    assert image_id in html and "by the sea" in html and "Image saved." in html
    status, _, _ = await ui.post(f"/dashboard/images/{image_id}", {"album_id": "999"})
    assert status == 303  # someone else's / unknown album: flashed, nothing changed
    assert "Album not found" in (await ui.text("/dashboard"))[1]
    await ui.post(f"/dashboard/images/{image_id}/delete")
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM images") == 0


async def test_albums_create_rename_toggle_delete(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    await ui.post("/dashboard/albums", {"name": "  ", "description": ""})
    assert "name: must be 1-100 characters" in (await ui.text("/dashboard/albums"))[1]
    await ui.post("/dashboard/albums", {"name": "Holidays", "is_public": "0"})
    db = ui.app[DB]
    album = await db.fetchone("SELECT * FROM albums")
    assert (album["name"], album["is_public"]) == ("Holidays", 0)
    await ui.post(f"/dashboard/albums/{album['id']}", {"name": "Holidays 2026",
                                                      "description": "sun"})
    await ui.post(f"/dashboard/albums/{album['id']}/visibility", {"is_public": "1"})
    album = await db.fetchone("SELECT * FROM albums")
    assert (album["name"], album["description"], album["is_public"]) == (
        "Holidays 2026", "sun", 1)
    events = [r[0] for r in await db.fetchall("SELECT type FROM events ORDER BY seq")]
    assert events == ["album.created", "album.updated", "album.updated"]
    await ui.post(f"/dashboard/albums/{album['id']}/delete")
    assert await db.fetchval("SELECT COUNT(*) FROM albums") == 0


async def test_names_and_descriptions_are_escaped(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    await ui.post("/dashboard/albums", {"name": XSS[:100], "description": XSS})
    image = (await _upload(ui, ("<b>x</b>.jpg", samples.jpeg()),
                           description=XSS))[1]["data"][0]
    for path in ("/dashboard", "/dashboard/albums", f"/i/{image['id']}", "/"):
        html = (await ui.text(path))[1]
        assert "<script>window.__xss" not in html and "onerror=\"window" not in html, path
        assert "onerror=&#34;window" in html, path
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in (await ui.text("/dashboard"))[1]


async def test_tokens_are_shown_once_and_revocable(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    status, html, resp = await ui.post("/dashboard/tokens", {"name": "laptop", "scope": "read"})
    assert status == 200 and resp.headers["Cache-Control"] == "no-store"
    token = re.search(r'value="(ph_[^"]+)" id="new-token-value"', html)
    assert token is not None, "token not shown"
    value = token.group(1)
    auth = {"Authorization": f"Bearer {value}"}
    async with ui.client.get("/api/v1/images", headers=auth) as api:
        assert api.status == 200
    async with ui.client.post("/api/v1/albums", headers=auth, json={"name": "x"}) as api:
        assert api.status == 403  # read scope
    listing = (await ui.text("/dashboard/tokens"))[1]
    assert "laptop" in listing and value not in listing
    token_id = await ui.app[DB].fetchval("SELECT id FROM tokens WHERE name = 'laptop'")
    status, _, _ = await ui.post(f"/dashboard/tokens/{token_id}/revoke")
    assert status == 303
    async with ui.client.get("/api/v1/images", headers=auth) as api:
        assert api.status == 401


async def _new_webhook(ui: FormClient, url: str, events: list[str]) -> tuple[int, str]:
    form = FormData({"csrf_token": await ui.token(), "url": url, "description": "local"})
    for event in events:
        form.add_field("events", event)
    async with ui.client.post("/dashboard/webhooks", data=form, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_webhooks_secret_once_test_event_and_log(aiohttp_client: Any,
                                                       tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path, webhooks={"allow_private_networks": True})
    status, html = await _new_webhook(ui, "http://127.0.0.1:9/hook", list(EVENT_TYPES))
    assert status == 200
    secret = re.search(r'value="(whsec_[^"]+)" id="new-webhook-secret"', html)
    assert secret is not None
    db = ui.app[DB]
    hook = await db.fetchone("SELECT * FROM webhooks")
    assert hook["events"] is None  # every type ticked = all, including future ones
    assert hook["secret"] == secret.group(1)
    listing = (await ui.text("/dashboard/webhooks"))[1]
    assert "http://127.0.0.1:9/hook" in listing and secret.group(1) not in listing
    await ui.post(f"/dashboard/webhooks/{hook['id']}/test")
    page = (await ui.text(f"/dashboard/webhooks/{hook['id']}"))[1]
    assert "<code>ping</code>" in page and "Test event evt_" in page
    await ui.post(f"/dashboard/webhooks/{hook['id']}/active", {"is_active": "0"})
    assert await db.fetchval("SELECT is_active FROM webhooks") == 0
    await ui.post(f"/dashboard/webhooks/{hook['id']}/delete")
    assert await db.fetchval("SELECT COUNT(*) FROM webhooks") == 0


async def test_webhook_event_subset_is_kept(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path, webhooks={"allow_private_networks": True})
    status, _ = await _new_webhook(ui, "http://127.0.0.1:9/a", ["image.uploaded",
                                                                 "album.deleted"])
    assert status == 200
    stored = await ui.app[DB].fetchval("SELECT events FROM webhooks")
    assert stored == '["image.uploaded", "album.deleted"]'
    await _new_webhook(ui, "http://127.0.0.1:9/b", [])
    assert "events: must be a non-empty list" in (await ui.text("/dashboard/webhooks"))[1]


async def test_private_webhook_targets_are_refused(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    await _new_webhook(ui, "http://127.0.0.1:9/hook", list(EVENT_TYPES))
    assert "private or reserved address" in (await ui.text("/dashboard/webhooks"))[1]
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM webhooks") == 0


async def test_unknown_image_page_is_an_html_404(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    async with ui.client.get("/i/doesnotexist") as resp:
        assert resp.status == 404 and resp.content_type == "text/html"
        assert "Image not found" in await resp.text()


async def test_pages_send_a_strict_content_security_policy(aiohttp_client: Any,
                                                           tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    async with ui.client.get("/") as resp:
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        html = await resp.text()
    assert "<script>" not in html and " onclick=" not in html  # no inline script at all


async def test_static_assets_have_hashed_names_and_long_caching(aiohttp_client: Any,
                                                                tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    html = (await ui.text("/docs"))[1]
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert any("swagger-ui-bundle." in url for url in urls) and len(urls) >= 4
    for url in urls:
        async with ui.client.get(url, headers={"Accept-Encoding": "identity"}) as resp:
            assert resp.status == 200, url
            assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            body = await resp.read()
            etag = resp.headers["ETag"]
        logical = re.sub(r"\.[0-9a-f]{10}(\.\w+)?$", r"\1", url.removeprefix("/static/"))
        assert url == "/static/" + hashed_name(logical, body)
        async with ui.client.get(url, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
    bundle = next(url for url in urls if url.endswith(".js") and "swagger" in url)
    async with ui.client.get(bundle, headers={"Accept-Encoding": "gzip"},
                             auto_decompress=False) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        raw = gzip.decompress(await resp.read())
    assert hashlib.sha256(raw).hexdigest()[:10] in bundle
    async with ui.client.get("/static/css/app.css") as resp:
        assert resp.status == 404  # unhashed names are not served


async def test_thumbnails_are_signed_when_a_signing_key_is_set(aiohttp_client: Any,
                                                               tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path, images={"signing_key": "k" * 32})
    await _upload(ui, ("a.jpg", samples.jpeg()))
    html = (await ui.text("/dashboard"))[1]
    src = re.search(r'<img src="(/img/[^"]+)"', html)
    assert src is not None and "&amp;s=" in src.group(1)
    async with ui.client.get(src.group(1).replace("&amp;", "&")) as resp:
        assert resp.status == 200 and resp.content_type == "image/webp"
    async with ui.client.get(src.group(1).split("&amp;")[0]) as resp:
        assert resp.status == 403  # the same URL unsigned is refused


async def test_lists_page_by_cursor_and_old_page_links_still_work(aiohttp_client: Any,
                                                                   tmp_path: Path) -> None:
    """The dashboard (24 a page) and the square (30) link to older/newer pages by cursor."""
    ui = await _signed_in(aiohttp_client, tmp_path)
    for batch in range(7):
        status, _, _ = await _upload(ui, *[(f"{batch}-{n}.jpg", samples.jpeg((9 + n, 9)))
                                           for n in range(5)])
        assert status == 201
    ids = [row["id"] for row in await ui.app[DB].fetchall(
        "SELECT id FROM images ORDER BY created_at DESC, seq DESC")]

    def shown(html: str) -> list[str]:
        return re.findall(r'data-image-id="([^"]+)"', html)

    status, first = await ui.text("/dashboard")
    assert status == 200 and shown(first) == ids[:24] and "Page 1 of 2" in first
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older and "cursor=" in older.group(1) and 'rel="prev"' not in first
    status, second = await ui.text(older.group(1).replace("&amp;", "&"))
    assert status == 200 and shown(second) == ids[24:] and 'rel="next"' not in second
    newer = re.search(r'href="([^"]+)" rel="prev"', second)
    assert newer
    _, back = await ui.text(newer.group(1).replace("&amp;", "&"))
    assert shown(back) == ids[:24]
    _, old_link = await ui.text("/dashboard?page=2")
    assert shown(old_link) == ids[24:]
    _, mangled = await ui.text("/dashboard?cursor=not-a-cursor")
    assert shown(mangled) == ids[:24]
    status, square = await ui.text("/")
    assert status == 200 and "35 images" in square
    older = re.search(r'href="([^"]+)" rel="next"', square)
    assert older and "cursor=" in older.group(1)
    _, square2 = await ui.text(older.group(1).replace("&amp;", "&"))
    assert len(re.findall(r'class="tile"', square2)) == 5
