"""The dashboard's sharing controls over real HTTP: album visibility and password, image
expiry and visibility, expiring uploads, signed links (same services as the API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from browser import FormClient, form_client

from pichub.keys import DB


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
