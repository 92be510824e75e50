"""Deleting one's own account from the account page, over real HTTP with real files: after
the password again, every row and file goes and `image.deleted` events are written; the last
admin cannot; the form needs its CSRF token."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

from browser import PASSWORD, FormClient, form_client

from pichub.keys import BLOBS, DB
from pichub.services import accounts
from tests import samples
from tests.conftest import form


def files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]


def flashed(resp: Any) -> str:
    return urllib.parse.unquote(resp.cookies["pichub_flash"].value)


async def upload(ui: FormClient, token: str, size: tuple[int, int]) -> str:
    async with ui.client.post("/api/v1/upload", data=form(("a.jpg", samples.jpeg(size))),
                              headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 201
        return str((await resp.json())["data"][0]["id"])


async def rows_of(ui: FormClient, user_id: int) -> dict[str, int]:
    db = ui.app[DB]
    counts = {"users": int(await db.fetchval("SELECT COUNT(*) FROM users WHERE id = ?",
                                             (user_id,)))}
    for table in ("images", "albums", "tokens", "sessions"):
        counts[table] = int(await db.fetchval(
            f"SELECT COUNT(*) FROM {table} WHERE user_id = ?", (user_id,)))
    return counts


async def test_deleting_my_account_removes_rows_and_files_and_emits_events(
        aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    db = ui.app[DB]
    alice = int(await db.fetchval("SELECT id FROM users WHERE username = 'alice'"))
    token = await accounts.create_token(db, "alice")
    ids = {await upload(ui, token, (64, 48)), await upload(ui, token, (40, 30))}
    await ui.login("alice")
    assert (await ui.post("/dashboard/albums", {"name": "holidays"}))[0] == 303
    blobs = ui.app[BLOBS]
    mine = [p for p in files_under(blobs.root) if p.name.split(".", 1)[0] in ids]
    assert len(mine) >= 2 and all((await rows_of(ui, alice)).values())

    status, _, resp = await ui.post("/account/delete", {"password": "not my password"})
    assert status == 303 and "not right" in flashed(resp)
    assert all(p.exists() for p in mine) and (await rows_of(ui, alice))["users"] == 1

    status, _, resp = await ui.post("/account/delete", {"password": PASSWORD})
    assert status == 303 and resp.headers["Location"] == "/"
    assert "deleted" in flashed(resp)
    assert set((await rows_of(ui, alice)).values()) == {0}
    assert [p for p in mine if p.exists()] == []
    events = await db.fetchall("SELECT payload FROM events WHERE type = 'image.deleted'")
    assert {json.loads(row["payload"])["data"]["id"] for row in events} == ids
    assert (await ui.text("/dashboard"))[0] == 303  # signed out: the session went too
    async with ui.client.get("/api/v1/images",
                             headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.status == 401


async def test_the_last_admin_cannot_delete_their_account(aiohttp_client: Any,
                                                          tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path, user="root")
    db = ui.app[DB]
    await db_admin(ui, "root")
    await accounts.create_user(db, "bob", PASSWORD)
    await ui.login("root")
    status, _, resp = await ui.post("/account/delete", {"password": PASSWORD})
    assert status == 303 and "last admin" in flashed(resp)
    assert await accounts.get_user(db, "root") is not None
    await db_admin(ui, "bob")  # with another admin, the first may go
    status, _, resp = await ui.post("/account/delete", {"password": PASSWORD})
    assert status == 303 and resp.headers["Location"] == "/"
    assert await accounts.get_user(db, "root") is None


async def test_the_delete_form_needs_its_csrf_token(aiohttp_client: Any,
                                                    tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    assert "delete-account-form" in (await ui.text("/account"))[1]
    for token in (None, "forged"):
        data = {"password": PASSWORD} | ({"csrf_token": token} if token else {})
        status, _, _ = await ui.post("/account/delete", data, csrf=False)
        assert status == 403
    assert await accounts.get_user(ui.app[DB], "alice") is not None


async def db_admin(ui: FormClient, name: str) -> None:
    async with ui.app[DB].transaction() as conn:
        await conn.execute("UPDATE users SET is_admin = 1 WHERE username = ?", (name,))
