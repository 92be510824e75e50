"""The dashboard's sharing controls over real HTTP: album visibility and password, image
expiry and visibility, expiring uploads, signed links (same services as the API)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import samples
from aiohttp import FormData
from browser import FormClient, form_client
from conftest import form

from pichub.keys import DB
from pichub.services import accounts


async def _signed_in(aiohttp_client: Any, tmp_path: Path) -> FormClient:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    return ui


async def _album_events(ui: FormClient) -> list[dict[str, Any]]:
    rows = await ui.app[DB].fetchall(
        "SELECT payload FROM events WHERE type = 'album.updated' ORDER BY seq")
    return [json.loads(row[0])["data"] for row in rows]


async def test_album_visibility_and_password_from_the_edit_form(aiohttp_client: Any,
                                                                tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    db = ui.app[DB]
    status, _, _ = await ui.post("/dashboard/albums", {"name": "Beach", "visibility": "unlisted"})
    assert status == 303
    album = await db.fetchone("SELECT * FROM albums")
    assert album["visibility"] == "unlisted" and album["password_hash"] is None
    edit = f"/dashboard/albums/{album['id']}"

    status, _, resp = await ui.post(edit, {"name": "Beach", "description": "",
                                           "visibility": "private", "password": "sesame"})
    assert status == 303 and resp.headers["Location"] == "/dashboard/albums"
    row = await db.fetchone("SELECT * FROM albums")
    assert row["visibility"] == "private" and row["password_hash"] is not None
    assert "sesame" not in row["password_hash"]
    html = (await ui.text("/dashboard/albums"))[1]
    assert "password set" in html and "Album saved; password set." in html
    assert f'href="/a/{album["id"]}"' in html
    assert "sesame" not in html and row["password_hash"] not in html
    assert '<option value="private" selected>' in html

    hashed = row["password_hash"]  # a blank password box keeps the password
    await ui.post(edit, {"name": "Beach 2", "description": "", "visibility": "public",
                         "password": ""})
    row = await db.fetchone("SELECT * FROM albums")
    assert (row["name"], row["visibility"], row["password_hash"]) == ("Beach 2", "public", hashed)

    await ui.post(edit, {"name": "Beach 2", "description": "", "password": "ignored",
                         "remove_password": "1"})
    row = await db.fetchone("SELECT * FROM albums")
    assert row["password_hash"] is None and row["visibility"] == "public"
    assert "password removed" in (await ui.text("/dashboard/albums"))[1]

    events = await _album_events(ui)
    assert [e["has_password"] for e in events] == [True, True, False]
    assert [e["visibility"] for e in events] == ["private", "public", "public"]
    assert all("sesame" not in json.dumps(e) and "password" not in e for e in events)


async def test_album_edit_refuses_bad_input_and_forged_forms(aiohttp_client: Any,
                                                             tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    db = ui.app[DB]
    await ui.post("/dashboard/albums", {"name": "Beach"})
    album_id = await db.fetchval("SELECT id FROM albums")
    edit = f"/dashboard/albums/{album_id}"
    for forged in ({}, {"csrf_token": "forged"}):
        status, _, _ = await ui.post(edit, {"name": "Beach", "password": "x", **forged},
                                     csrf=False)
        assert status == 403
    status, _, _ = await ui.post(edit, {"name": "Beach", "password": "p" * 201})
    assert status == 303
    assert "password: must be 1-200 characters" in (await ui.text("/dashboard/albums"))[1]
    await ui.post(edit, {"name": "Beach", "visibility": "secret"})
    row = await db.fetchone("SELECT * FROM albums")
    assert row["password_hash"] is None and row["visibility"] == "public"
    assert await _album_events(ui) == []
    status, _, _ = await ui.post("/dashboard/albums/999", {"name": "x", "password": "y"})
    assert status == 303 and "Album not found" in (await ui.text("/dashboard/albums"))[1]


async def _upload(ui: FormClient, **fields: str) -> dict[str, Any]:
    data = FormData()
    for key, value in fields.items():
        data.add_field(key, value)
    data.add_field("files[]", io.BytesIO(samples.jpeg()), filename="a.jpg",
                   content_type="image/jpeg")
    headers = {"X-CSRF-Token": await ui.token()}
    async with ui.client.post("/dashboard/upload", data=data, headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        return dict(body["data"][0])


def _seconds_left(expires_at: str) -> float:
    return (datetime.fromisoformat(expires_at) - datetime.now(UTC)).total_seconds()


async def test_image_edit_sets_keeps_and_removes_the_expiry(aiohttp_client: Any,
                                                            tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    db = ui.app[DB]
    image_id = (await _upload(ui))["id"]
    edit = f"/dashboard/images/{image_id}"
    html = (await ui.text("/dashboard"))[1]
    assert "Keep current (never)" in html
    for seconds in ("3600", "86400", "604800", "2592000"):
        assert f'<option value="{seconds}">' in html

    status, _, _ = await ui.post(edit, {"is_public": "private", "expires": "86400"})
    assert status == 303
    row = await db.fetchone("SELECT * FROM images WHERE id = ?", (image_id,))
    assert row["visibility"] == "private"
    assert 86400 - 60 < _seconds_left(row["expires_at"]) <= 86400
    html = (await ui.text("/dashboard"))[1]
    assert "Image saved." in html and 'class="badge badge-private card-expiry"' in html
    assert "Keep current (never)" not in html

    expires = row["expires_at"]  # "keep" (the default) leaves it as it is
    await ui.post(edit, {"is_public": "0", "expires": "keep", "description": "x"})
    row = await db.fetchone("SELECT * FROM images WHERE id = ?", (image_id,))
    assert (row["visibility"], row["expires_at"]) == ("unlisted", expires)
    await ui.post(edit, {"is_public": "0"})  # an old form without the picker: kept too
    assert await db.fetchval("SELECT expires_at FROM images") == expires

    await ui.post(edit, {"is_public": "1", "expires": "never"})
    row = await db.fetchone("SELECT * FROM images WHERE id = ?", (image_id,))
    assert (row["visibility"], row["expires_at"]) == ("public", None)


async def test_image_edit_refuses_other_expiries_and_forged_forms(aiohttp_client: Any,
                                                                  tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    db = ui.app[DB]
    image_id = (await _upload(ui))["id"]
    edit = f"/dashboard/images/{image_id}"
    for choice in ("5", "-3600", "tomorrow"):
        status, _, _ = await ui.post(edit, {"is_public": "private", "expires": choice})
        assert status == 303
        assert "expires: must be one of the offered choices" in (await ui.text("/dashboard"))[1]
    status, _, _ = await ui.post(edit, {"is_public": "private", "expires": "3600"}, csrf=False)
    assert status == 403
    row = await db.fetchone("SELECT * FROM images WHERE id = ?", (image_id,))
    assert (row["visibility"], row["expires_at"]) == ("public", None)


async def test_upload_options_offer_the_expiry(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    html = (await ui.text("/dashboard"))[1]
    assert '<select name="expires_in" id="upload-expiry">' in html
    assert '<option value="">Never</option>' in html and '<option value="3600">' in html
    kept = await _upload(ui, expires_in="")  # "Never": the API's default
    assert kept["expires_at"] is None
    expiring = await _upload(ui, expires_in="3600")
    assert 3600 - 60 < _seconds_left(expiring["expires_at"]) <= 3600
    stored = await ui.app[DB].fetchval("SELECT expires_at FROM images WHERE id = ?",
                                       (expiring["id"],))
    assert stored == expiring["expires_at"]
    assert "card-expiry" in (await ui.text("/dashboard"))[1]


async def _link(ui: FormClient, image_id: str, expires_in: str,
                token: str | None = "page") -> tuple[int, Any]:
    headers = {} if token is None else {
        "X-CSRF-Token": await ui.token() if token == "page" else token}
    async with ui.client.post(f"/dashboard/images/{image_id}/link",
                              data={"expires_in": expires_in}, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_private_cards_hand_out_signed_links(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    private = (await _upload(ui, is_public="false"))["id"]
    await ui.post(f"/dashboard/images/{private}", {"is_public": "private"})
    public = (await _upload(ui))["id"]
    html = (await ui.text("/dashboard"))[1]
    assert f'data-signed-link="/dashboard/images/{private}/link"' in html
    assert f'data-signed-link="/dashboard/images/{public}/link"' not in html
    assert html.count('name="link_expires_in"') == 1 and '<option value="604800">' in html

    status, body = await _link(ui, private, "86400")
    assert status == 201 and body["success"] is True
    url = body["data"]["url"]
    assert f"/img/{private}." in url and "exp=" in url and "sig=" in url
    assert 86400 - 60 < _seconds_left(body["data"]["expires_at"]) <= 86400
    async with aiohttp.ClientSession() as anonymous:  # no session cookie: the link alone
        async with anonymous.get(url) as resp:
            assert resp.status == 200 and (await resp.read())[:4] == b"RIFF"
        async with anonymous.get(url.split("?")[0]) as resp:
            assert resp.status == 404
        async with anonymous.get(url.replace("sig=", "sig=x")) as resp:
            assert resp.status == 404


async def test_signed_link_route_refuses_what_the_card_would_not_send(aiohttp_client: Any,
                                                                      tmp_path: Path) -> None:
    ui = await _signed_in(aiohttp_client, tmp_path)
    image_id = (await _upload(ui, is_public="false"))["id"]
    for token in (None, "forged"):
        status, body = await _link(ui, image_id, "3600", token=token)
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    for lifetime in ("5", "2592000", "", "hour"):
        status, body = await _link(ui, image_id, lifetime)
        assert status == 422 and body["error"]["details"][0]["field"] == "expires_in"
    db = ui.app[DB]
    await accounts.create_user(db, "bob", "password-bob")
    bob = await accounts.create_token(db, "bob")
    async with ui.client.post("/api/v1/upload", data=form(("b.jpg", samples.jpeg()),
                                                          visibility="private"),
                              headers={"Authorization": f"Bearer {bob}"}) as resp:
        theirs = (await resp.json())["data"][0]["id"]
    status, body = await _link(ui, theirs, "3600")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, _ = await _link(ui, "noimage1", "3600")
    assert status == 404
    anonymous = await form_client(aiohttp_client, tmp_path / "other")
    async with anonymous.client.post(f"/dashboard/images/{image_id}/link",
                                     data={"expires_in": "3600"}) as resp:
        assert resp.status == 401
