"""The admin API: every action, and a 404 for everyone else on every route (no existence
leak). Real server, real SQLite, real files: deleting a user is checked row by row in the
database and file by file on disk."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pyotp
import pytest

from pichub.config import Settings
from pichub.db import admin as admin_db
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.keys import BLOBS, DB, SERVICES, SETTINGS, TWO_FACTOR
from pichub.pacing import Pacing, Progress
from pichub.services import accounts, oidc, sessions
from pichub.services.admin import delete_user
from pichub.services.images import Images
from pichub.services.oidc import Identity
from pichub.services.sweep import SETTLE_S, OrphanSweep
from pichub.timeutil import now
from pichub.web.api import admin as admin_api
from tests import samples
from tests.conftest import Api, ApiFactory, make_settings
from tests.support import backends, heic
from tests.test_working_copies import _jpeg

A = "/api/v1/admin"


def files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]


def cache_root(api: Api) -> Path:
    return Path(api.app[SETTINGS].storage.data_dir) / "cache"


async def user_id(api: Api, name: str) -> int:
    return int(await api.app[DB].fetchval("SELECT id FROM users WHERE username = ?", (name,)))


async def upload(api: Api, data: bytes, token: str, name: str = "photo.jpg",
                 **fields: Any) -> dict[str, Any]:
    status, body = await api.upload((name, data), token=token, **fields)
    assert status == 201, body
    return dict(body["data"][0])


async def test_everyone_but_an_admin_gets_the_unknown_route_404(api: Api) -> None:
    bob = await api.new_user("bob")
    read_admin = await api.new_user("carol", scope="read")
    status, unknown = await api.call("GET", "/api/v1/no-such-route")
    assert status == 404
    for route in admin_api.ROUTES:
        path = A + route.path.removeprefix("/admin").replace("{id}", "1")
        for token in (bob, None):
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            async with api.client.request(route.method, path, headers=headers,
                                          json={"is_active": False}) as resp:
                assert resp.status == 404, (route.method, path, token)
                assert await resp.json() == unknown  # word for word an unknown route
        # The same under /v1, and a read token that is not an admin's is no different.
        status, body = await api.call(route.method, path.replace("/api/v1", "/v1"),
                                      token=read_admin)
        assert status == 404 and body == unknown
    assert (await api.call("GET", f"{A}/users"))[0] == 200  # alice is an admin


async def test_create_list_search_and_page_users(api: Api) -> None:
    for name in ("bob", "bobby", "carol"):
        status, body = await api.call("POST", f"{A}/users", json={
            "username": name, "password": "long enough", "quota_mb": 10})
        assert status == 201, body
        assert body["data"]["username"] == name and body["data"]["quota_mb"] == 10
        assert body["data"]["is_active"] is True and body["data"]["is_admin"] is False
    status, body = await api.call("GET", f"{A}/users")
    assert [u["username"] for u in body["data"]] == ["carol", "bobby", "bob", "alice"]
    assert body["meta"]["total"] == 4
    status, body = await api.call("GET", f"{A}/users", params={"q": "BOB", "per_page": "1"})
    assert [u["username"] for u in body["data"]] == ["bobby"]
    assert body["meta"]["total"] == 2 and body["meta"]["next_cursor"]
    status, body = await api.call("GET", f"{A}/users", params={
        "q": "bob", "per_page": "1", "cursor": body["meta"]["next_cursor"]})
    assert [u["username"] for u in body["data"]] == ["bob"]
    assert body["meta"]["next_cursor"] is None
    status, body = await api.call("GET", f"{A}/users", params={"q": "%"})
    assert body["data"] == []  # LIKE's wildcards are plain characters here
    assert (await api.call("GET", f"{A}/users", params={"per_page": "0"}))[0] == 422
    assert (await api.call("GET", f"{A}/users", params={"cursor": "junk"}))[0] == 422


@pytest.mark.parametrize(("body", "field"), [
    ({"username": "bob", "password": "short"}, "password"),
    ({"username": "no spaces", "password": "long enough"}, "username"),
    ({"username": "alice", "password": "long enough"}, "username"),
    ({"username": "bob", "password": "long enough", "quota_mb": -1}, "quota_mb"),
    ({"username": "bob", "password": "long enough", "is_admin": "yes"}, "is_admin"),
])
async def test_create_user_refuses_bad_fields(api: Api, body: dict[str, Any],
                                              field: str) -> None:
    status, answer = await api.call("POST", f"{A}/users", json=body)
    assert status == 422 and answer["error"]["details"][0]["field"] == field


async def test_get_and_change_a_user(api: Api) -> None:
    await api.new_user("bob")
    bob = await user_id(api, "bob")
    status, body = await api.call("GET", f"{A}/users/{bob}")
    assert status == 200 and body["data"]["username"] == "bob"
    assert (await api.call("GET", f"{A}/users/999"))[0] == 404
    assert (await api.call("GET", f"{A}/users/x"))[0] == 404
    status, body = await api.call("PATCH", f"{A}/users/{bob}",
                                  json={"quota_mb": 5, "is_admin": True})
    assert status == 200 and body["data"]["quota_mb"] == 5 and body["data"]["is_admin"] is True
    status, body = await api.call("PATCH", f"{A}/users/{bob}", json={"quota_mb": None})
    assert body["data"]["quota_mb"] is None and body["data"]["is_admin"] is True
    cookie, _ = await sessions.start(api.app[DB], bob, timedelta(days=1))
    status, body = await api.call("PATCH", f"{A}/users/{bob}",
                                  json={"password": "a brand new one"})
    assert status == 200
    assert await sessions.authenticate(api.app[DB], "bob", "a brand new one") is not None
    assert await sessions.authenticate(api.app[DB], "bob", "password-bob") is None
    assert await sessions.lookup(api.app[DB], cookie) is None  # signed out
    for bad in ({}, {"password": "short"}, {"is_active": None}, {"quota_mb": "5"},
                {"is_admin": 2}):
        assert (await api.call("PATCH", f"{A}/users/{bob}", json=bad))[0] == 422, bad
    assert (await api.call("PATCH", f"{A}/users/999", json={"quota_mb": 1}))[0] == 404


async def turn_on_totp(api: Api, user: int, name: str) -> None:
    """Two-factor sign-in on for `user`, as the account page does it (a computed code)."""
    two_factor = api.app[TWO_FACTOR]
    enrolment = await two_factor.begin(user, name)
    await two_factor.confirm(user, pyotp.TOTP(enrolment.secret).now())


async def test_reset_a_users_two_factor_sign_in(api: Api) -> None:
    await api.new_user("bob")
    bob = await user_id(api, "bob")
    db = api.app[DB]
    status, body = await api.call("GET", f"{A}/users/{bob}")
    assert body["data"]["two_factor"] is False
    await turn_on_totp(api, bob, "bob")
    status, body = await api.call("GET", f"{A}/users", params={"q": "bob"})
    assert [u["two_factor"] for u in body["data"]] == [True]
    assert await db.fetchval("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?",
                             (bob,)) == 10
    status, body = await api.call("DELETE", f"{A}/users/{bob}/totp")
    assert status == 200 and body["data"]["two_factor"] is False, body
    assert await db.fetchval("SELECT COUNT(*) FROM totp WHERE user_id = ?", (bob,)) == 0
    assert await db.fetchval("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?",
                             (bob,)) == 0
    assert not await api.app[TWO_FACTOR].enabled(bob)
    assert (await api.call("DELETE", f"{A}/users/{bob}/totp"))[0] == 200  # already off
    assert (await api.call("DELETE", f"{A}/users/999/totp"))[0] == 404
    alice = await user_id(api, "alice")
    await turn_on_totp(api, alice, "alice")
    assert (await api.call("DELETE", f"{A}/users/{alice}/totp"))[0] == 422  # not your own
    assert await api.app[TWO_FACTOR].enabled(alice)
    await turn_on_totp(api, bob, "bob")
    await accounts.create_user(db, "carol", "password-carol", is_admin=True)
    read = await accounts.create_token(db, "carol", scope="read")
    assert (await api.call("DELETE", f"{A}/users/{bob}/totp", token=read))[0] == 403
    assert await api.app[TWO_FACTOR].enabled(bob)


async def test_set_a_users_email(api: Api) -> None:
    await api.new_user("bob")
    await api.new_user("carol")
    bob, carol = await user_id(api, "bob"), await user_id(api, "carol")
    status, body = await api.call("GET", f"{A}/users/{bob}")
    assert body["data"]["email"] is None
    status, body = await api.call("PATCH", f"{A}/users/{bob}",
                                  json={"email": "  Bob@Example.org "})
    assert status == 200 and body["data"]["email"] == "Bob@Example.org", body
    status, body = await api.call("GET", f"{A}/users", params={"q": "bob"})
    assert [u["email"] for u in body["data"]] == ["Bob@Example.org"]
    # The address is what single sign-on links by: one account per address, any case.
    status, body = await api.call("PATCH", f"{A}/users/{carol}",
                                  json={"email": "bob@example.ORG"})
    assert status == 422 and body["error"]["details"][0]["field"] == "email"
    for bad in ("not an address", "a@b c", "x" * 250 + "@example.org", 5, "a@b\u0007"):
        status, body = await api.call("PATCH", f"{A}/users/{carol}", json={"email": bad})
        assert status == 422 and body["error"]["details"][0]["field"] == "email", bad
    assert await api.app[DB].fetchval("SELECT email FROM users WHERE id = ?", (carol,)) is None
    # Its own address again (another case) is fine; with other fields in one PATCH.
    status, body = await api.call("PATCH", f"{A}/users/{bob}",
                                  json={"email": "bob@example.org", "quota_mb": 3})
    assert status == 200 and body["data"]["email"] == "bob@example.org"
    assert body["data"]["quota_mb"] == 3
    for clear in (None, ""):
        status, body = await api.call("PATCH", f"{A}/users/{bob}", json={"email": clear})
        assert status == 200 and body["data"]["email"] is None
    status, body = await api.call("PATCH", f"{A}/users/{carol}",
                                  json={"email": "bob@example.org"})
    assert status == 200 and body["data"]["email"] == "bob@example.org"
    assert (await api.call("PATCH", f"{A}/users/999", json={"email": "z@example.org"}))[0] \
        == 404
    user = await oidc.sign_in(api.app[DB], Identity("https://id.example", "s-1",
                                                    "BOB@example.org", True),
                              oidc.Policy(auto_create=False, link_by_email=True))
    assert user.user_id == carol and user.linked  # single sign-on links by it


async def test_an_admin_cannot_lock_themself_out(api: Api) -> None:
    alice = await user_id(api, "alice")
    for change in ({"is_active": False}, {"is_admin": False}):
        status, body = await api.call("PATCH", f"{A}/users/{alice}", json=change)
        assert status == 422, body
    assert (await api.call("DELETE", f"{A}/users/{alice}"))[0] == 422
    assert (await api.call("PATCH", f"{A}/users/{alice}", json={"quota_mb": 3}))[0] == 200


async def test_a_disabled_users_token_and_session_stop_at_once(api: Api) -> None:
    token = await api.new_user("bob")
    bob = await user_id(api, "bob")
    cookie, _ = await sessions.start(api.app[DB], bob, timedelta(days=1))
    assert (await api.call("GET", "/api/v1/images", token=token))[0] == 200
    status, body = await api.call("PATCH", f"{A}/users/{bob}", json={"is_active": False})
    assert status == 200 and body["data"]["is_active"] is False
    status, body = await api.call("GET", "/api/v1/images", token=token)
    assert status == 401 and body["message"] == "Invalid or expired API token"
    assert await sessions.lookup(api.app[DB], cookie) is None
    assert await api.app[DB].fetchval("SELECT COUNT(*) FROM sessions WHERE user_id = ?",
                                      (bob,)) == 0
    await api.call("PATCH", f"{A}/users/{bob}", json={"is_active": True})
    assert (await api.call("GET", "/api/v1/images", token=token))[0] == 200


async def _tables_of(api: Api, bob: int) -> dict[str, int]:
    db = api.app[DB]
    counts = {}
    for table in ("users", "images", "albums", "tokens", "webhooks", "sessions"):
        column = "id" if table == "users" else "user_id"
        counts[table] = int(await db.fetchval(
            f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (bob,)))
    counts["deliveries"] = int(await db.fetchval(
        "SELECT COUNT(*) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE w.user_id = ?", (bob,)))
    counts["delete_links"] = int(await db.fetchval(
        "SELECT COUNT(*) FROM delete_links l JOIN images i ON i.id = l.image_id"
        " WHERE i.user_id = ?", (bob,)))
    return counts


async def test_deleting_a_user_removes_every_row_and_file_and_sends_events(
        make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, webhooks={"allow_private_networks": True}))
    token = await api.new_user("bob")
    bob = await user_id(api, "bob")
    shared = samples.jpeg((80, 60))
    mine = await upload(api, shared, api.token)  # alice's: bob's copy shares its file
    images = [await upload(api, _jpeg(), token),  # working copies .w512/.w1600
              await upload(api, heic.iphone_photo(), token, "IMG_1.HEIC"),  # .orig.heic
              await upload(api, shared, token)]
    assert images[0]["id"] != mine["id"]
    blobs = api.app[BLOBS]
    assert blobs.working_copies(images[0]["id"]) and blobs.originals(images[1]["id"])
    for image in [*images, mine]:  # a cached variant of each
        async with api.client.get(f"/img/{image['id']}.png?w=20") as resp:
            assert resp.status == 200
    status, album = await api.call("POST", "/api/v1/albums", json={"name": "a"}, token=token)
    assert status == 201
    status, hook = await api.call("POST", "/api/v1/webhooks",
                                  json={"url": "http://127.0.0.1:9/h"}, token=token)
    assert status == 201, hook
    assert (await api.call("POST", f"/api/v1/webhooks/{hook['data']['id']}/test",
                           token=token))[0] == 202
    await sessions.start(api.app[DB], bob, timedelta(days=1))
    bob_files = [p for p in files_under(blobs.root)
                 if p.name.split(".", 1)[0] in {i["id"] for i in images}]
    assert len(bob_files) >= 6
    cached = files_under(cache_root(api))
    assert len(cached) == 4
    before = await _tables_of(api, bob)
    assert all(before.values()), before

    status, body = await api.call("DELETE", f"{A}/users/{bob}")
    assert status == 200 and body["data"] == {"id": bob, "deleted": True}
    assert set((await _tables_of(api, bob)).values()) == {0}
    assert [p for p in bob_files if p.exists()] == []
    assert len(files_under(cache_root(api))) == 1  # alice's variant only
    assert blobs.path(mine["id"], "webp").read_bytes()  # the shared bytes stay hers
    rows = await api.app[DB].fetchall(
        "SELECT user_id, payload FROM events WHERE type = 'image.deleted'")
    assert sorted(json.loads(r["payload"])["data"]["id"] for r in rows) == sorted(
        i["id"] for i in images)
    assert {r["user_id"] for r in rows} == {None}  # their endpoints are gone with them
    assert (await api.call("GET", "/api/v1/images", token=token))[0] == 401
    assert (await api.call("GET", "/api/v1/images"))[0] == 200  # alice's still work
    assert (await api.call("DELETE", f"{A}/users/{bob}"))[0] == 404


async def test_list_and_moderate_every_image(api: Api) -> None:
    token = await api.new_user("bob")
    bob = await user_id(api, "bob")
    first = await upload(api, samples.jpeg((30, 20)), token)
    second = await upload(api, samples.png_alpha(), api.token)
    third = await upload(api, samples.jpeg((20, 30)), token)
    status, body = await api.call("GET", f"{A}/images")
    assert [i["id"] for i in body["data"]] == [third["id"], second["id"], first["id"]]
    assert [i["username"] for i in body["data"]] == ["bob", "alice", "bob"]
    assert body["meta"]["total"] == 3
    status, body = await api.call("GET", f"{A}/images", params={"user_id": str(bob),
                                                                 "per_page": "1"})
    assert [i["id"] for i in body["data"]] == [third["id"]] and body["meta"]["total"] == 2
    status, body = await api.call("GET", f"{A}/images", params={
        "user_id": str(bob), "per_page": "1", "cursor": body["meta"]["next_cursor"]})
    assert [i["id"] for i in body["data"]] == [first["id"]]
    assert (await api.call("GET", f"{A}/images", params={"user_id": "999"}))[0] == 404
    assert (await api.call("GET", f"{A}/images", params={"user_id": "x"}))[0] == 422
    path = api.app[BLOBS].path(first["id"], "webp")
    assert path.exists()
    status, body = await api.call("DELETE", f"{A}/images/{first['id']}")
    assert status == 200 and body["data"] == {"id": first["id"], "deleted": True}
    assert not path.exists()
    assert (await api.call("GET", f"/api/v1/images/{first['id']}", token=token))[0] == 404
    event = await api.app[DB].fetchone(
        "SELECT user_id, payload FROM events WHERE type = 'image.deleted'")
    assert event["user_id"] == bob  # the owner's endpoints hear of it
    assert json.loads(event["payload"])["data"]["id"] == first["id"]
    assert (await api.call("DELETE", f"{A}/images/{first['id']}"))[0] == 404


async def test_list_and_revoke_any_token(api: Api) -> None:
    token = await api.new_user("bob")
    bob = await user_id(api, "bob")
    status, body = await api.call("GET", f"{A}/tokens")
    assert [(t["username"], t["user_id"]) for t in body["data"]][0] == ("bob", bob)
    assert body["meta"]["total"] == 2 and "token_hash" not in body["data"][0]
    status, body = await api.call("GET", f"{A}/tokens", params={"user_id": str(bob)})
    assert len(body["data"]) == 1
    token_id = body["data"][0]["id"]
    assert (await api.call("DELETE", f"{A}/tokens/{token_id}"))[0] == 200
    assert (await api.call("GET", "/api/v1/images", token=token))[0] == 401
    assert (await api.call("DELETE", f"{A}/tokens/{token_id}"))[0] == 404


async def test_failing_webhooks(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, webhooks={"allow_private_networks": True}))
    token = await api.new_user("bob")
    status, hook = await api.call("POST", "/api/v1/webhooks",
                                  json={"url": "http://127.0.0.1:9/h"}, token=token)
    hook_id = hook["data"]["id"]
    assert (await api.call("GET", f"{A}/webhooks/failing"))[1]["data"] == []
    await api.call("POST", f"/api/v1/webhooks/{hook_id}/test", token=token)
    async with api.app[DB].transaction() as conn:  # as the worker leaves it after its last try
        await conn.execute("UPDATE deliveries SET status = 'failed', error = 'refused'"
                           " WHERE webhook_id = ?", (hook_id,))
    status, body = await api.call("GET", f"{A}/webhooks/failing")
    assert status == 200
    [row] = body["data"]
    assert (row["id"], row["username"], row["failed"], row["last_error"]) == (
        hook_id, "bob", 1, "refused")


async def test_stats_come_from_the_counters(api: Api, settings: Settings) -> None:
    token = await api.new_user("bob")
    one = await upload(api, samples.jpeg((30, 20)), token)
    two = await upload(api, samples.jpeg((20, 30)), api.token)
    for _ in range(3):
        async with api.client.get(f"/img/{one['id']}.png?w=10") as resp:
            assert resp.status == 200
    status, body = await api.call("GET", f"{A}/stats")
    assert status == 200
    stats = body["data"]
    assert (stats["users"], stats["active_users"], stats["images"]) == (2, 2, 2)
    assert stats["bytes_stored"] == one["size"] + two["size"]
    assert stats["cache"]["files"] == 1 and stats["cache"]["bytes"] > 0
    assert stats["cache"]["misses"] >= 1 and stats["cache"]["hits"] >= 1
    assert 0 < stats["cache"]["hit_rate"] < 1
    assert 0 < stats["disk"]["free_bytes"] <= stats["disk"]["total_bytes"]
    days = stats["uploads_per_day"]
    assert len(days) == 30 and days[-1] == {"day": now().date().isoformat(), "uploads": 2}
    assert sum(d["uploads"] for d in days) == 2
    await api.call("DELETE", f"/api/v1/images/{one['id']}", token=token)
    stats = (await api.call("GET", f"{A}/stats"))[1]["data"]
    assert stats["images"] == 1 and stats["uploads_per_day"][-1]["uploads"] == 2


async def test_admin_routes_are_in_the_openapi_document(api: Api) -> None:
    async with api.client.get("/api/v1/openapi.json") as resp:
        document = await resp.json()
    paths = document["paths"]
    assert set(paths["/admin/users/{id}"]) >= {"get", "patch", "delete", "parameters"}
    assert "post" in paths["/admin/users"] and "delete" in paths["/admin/images/{id}"]
    stats = paths["/admin/stats"]["get"]
    assert stats["tags"] == ["Admin"] and "404" in stats["responses"]
    assert "AdminUserUpdate" in document["components"]["schemas"]


class Crash(Exception):
    """The process dies right after the commit."""


def _crash() -> None:
    raise Crash


async def test_a_crash_after_the_commit_leaves_only_orphans_the_sweep_removes(
        api: Api) -> None:
    token = await api.new_user("bob")
    bob = await user_id(api, "bob")
    image = await upload(api, _jpeg(), token)
    blobs = api.app[BLOBS]
    files = [p for p in files_under(blobs.root) if p.name.startswith(image["id"])]
    assert len(files) == 3  # the stored file and two working copies
    services = api.app[SERVICES]
    crashing = Images(api.app[DB], blobs, purge_variants=services.images.purge_variants,
                      on_change=_crash)
    with pytest.raises(Crash):
        await delete_user(api.app[DB], crashing, bob, "http://x")
    assert set((await _tables_of(api, bob)).values()) == {0}  # committed
    assert all(p.exists() for p in files)  # but no file removed yet
    await asyncio.sleep(SETTLE_S + 0.1)
    sweep = OrphanSweep(api.app[DB], blobs, asyncio.to_thread, Pacing(files=2, sleep_s=0),
                        Progress("blob sweep", logging.getLogger("test")))
    await sweep.run()
    assert [p for p in files if p.exists()] == [] and sweep.orphans == 3


@pytest.mark.skipif(backends.SCALE, reason="reads SQLite's EXPLAIN QUERY PLAN")
async def test_admin_lists_read_in_index_order(api: Api) -> None:
    """No admin list sorts at request time (a TEMP B-TREE): each walks an index or the
    primary key, as the other lists do (test_scale_lists)."""
    db = api.app[DB]
    listings = [images_db.listing(), admin_db.users_listing(), admin_db.users_listing("b"),
                admin_db.tokens_listing(), admin_db.tokens_listing(1)]
    for listing in listings:
        marks = ", ".join("?" * len(listing.key))
        for bound in ("", f" AND ({', '.join(listing.key)}) < ({marks})"):
            where = " AND ".join(listing.filters) or "1"
            sql = (f"EXPLAIN QUERY PLAN SELECT * FROM {listing.table} WHERE {where}{bound}"
                   f" ORDER BY {', '.join(k + ' DESC' for k in listing.key)} LIMIT 10")
            params = [*listing.params, *([1] * len(listing.key) if bound else [])]
            plan = " / ".join(row[3] for row in await db.fetchall(sql, params))
            assert "TEMP B-TREE" not in plan, (sql, plan)
    plan = " / ".join(row[3] for row in await db.fetchall(
        "EXPLAIN QUERY PLAN SELECT * FROM images ORDER BY created_at DESC, seq DESC LIMIT 5"))
    assert "images_created" in plan


def test_migration_counts_uploads_per_day_of_an_existing_library(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = (resources.files("pichub.db") / "migrations" / "0001_initial.sql").read_text()
    with sqlite3.connect(path) as conn:
        conn.executescript(first + "\nPRAGMA user_version=1;")
        conn.execute("INSERT INTO users (id, username, password_hash, created_at)"
                     " VALUES (1, 'u', 'x', '2026-01-01T00:00:00Z')")
        for n, day in enumerate(["01", "01", "03"]):
            conn.execute(
                "INSERT INTO images (id, user_id, filename, original_name, format, width,"
                " height, size, sha256, created_at) VALUES (?, 1, 'f', 'f', 'png', 1, 1, 1,"
                " 'h', ?)", (f"img{n:05d}", f"2026-01-{day}T10:00:0{n}Z"))

    async def migrate() -> None:
        db = await Database.open(path)
        await db.close()

    asyncio.run(migrate())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT day, uploads FROM upload_days ORDER BY day").fetchall() == [
            ("2026-01-01", 2), ("2026-01-03", 1)]
        assert conn.execute("SELECT DISTINCT is_active FROM users").fetchall() == [(1,)]
