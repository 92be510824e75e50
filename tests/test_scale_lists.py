"""Large libraries: stored counters stay exact, cursors walk a changing list exactly once,
every list reads an index, and the seed's `page`/`per_page` answers are unchanged."""

from __future__ import annotations

import asyncio
import io
import random
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from pichub.db import albums as albums_db
from pichub.db import deliveries as deliveries_db
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.db.keyset import Position
from pichub.keys import DB
from pichub.services.common import encode_cursor
from tests import samples
from tests.conftest import Api, ApiFactory, make_settings
from tests.support import backends, dbrows
from tests.support.server import Server

#: Each stored counter next to the query that counts it from scratch.
RECOUNT = {
    "users.image_count": (
        "SELECT id, image_count FROM users ORDER BY id",
        "SELECT u.id, (SELECT COUNT(*) FROM images i WHERE i.user_id = u.id)"
        " FROM users u ORDER BY u.id"),
    "users.used_bytes": (
        "SELECT id, used_bytes FROM users ORDER BY id",
        "SELECT u.id, (SELECT COALESCE(SUM(size + original_size), 0) FROM images i"
        " WHERE i.user_id = u.id) FROM users u ORDER BY u.id"),
    "users.album_count": (
        "SELECT id, album_count FROM users ORDER BY id",
        "SELECT u.id, (SELECT COUNT(*) FROM albums a WHERE a.user_id = u.id)"
        " FROM users u ORDER BY u.id"),
    "albums.image_count": (
        "SELECT id, image_count FROM albums ORDER BY id",
        "SELECT a.id, (SELECT COUNT(*) FROM images i WHERE i.album_id = a.id)"
        " FROM albums a ORDER BY a.id"),
    "albums.cover": (
        "SELECT id, cover FROM albums ORDER BY id",
        "SELECT a.id, (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = a.id"
        " ORDER BY i.created_at DESC, i.seq DESC LIMIT 1) FROM albums a ORDER BY a.id"),
    "webhooks.delivery_count": (
        "SELECT id, delivery_count FROM webhooks ORDER BY id",
        "SELECT w.id, (SELECT COUNT(*) FROM deliveries d WHERE d.webhook_id = w.id)"
        " FROM webhooks w ORDER BY w.id"),
    "public_images": (
        "SELECT value FROM counters WHERE name = 'public_images'",
        "SELECT COUNT(*) FROM images WHERE is_public = 1"),
}


def drift(where: Any) -> dict[str, Any]:
    """Every stored counter that differs from a recount: {name: (stored, counted)}."""
    found = {}
    for name, (stored_sql, count_sql) in RECOUNT.items():
        stored, counted = dbrows.rows(where, stored_sql), dbrows.rows(where, count_sql)
        if stored != counted:
            found[name] = (stored, counted)
    return found


async def upload(api: Api, n: int, **fields: Any) -> list[dict[str, Any]]:
    status, body = await api.upload(*[(f"{i}.png", samples.jpeg((8 + i, 8))) for i in range(n)],
                                    **fields)
    assert status == 201, body
    return list(body["data"])


# --- counters ----------------------------------------------------------------------------------


async def test_counters_stay_exact_through_every_change(api: Api) -> None:
    _, a = await api.call("POST", "/api/v1/albums", json={"name": "A"})
    _, b = await api.call("POST", "/api/v1/albums", json={"name": "B"})
    a_id, b_id = a["data"]["id"], b["data"]["id"]
    first = await upload(api, 4, album_id=a_id)
    loose = await upload(api, 3, is_public="false")
    assert drift(api) == {}
    status, album = await api.call("GET", f"/api/v1/albums/{a_id}")
    assert album["data"]["image_count"] == 4 and album["data"]["cover_url"] == first[3]["url"]

    # move the cover to B, publish a private one, delete one of A's
    await api.call("PATCH", f"/api/v1/images/{first[3]['id']}", json={"album_id": b_id})
    await api.call("PATCH", f"/api/v1/images/{loose[0]['id']}", json={"is_public": True})
    await api.call("DELETE", f"/api/v1/images/{first[0]['id']}")
    assert drift(api) == {}
    _, album = await api.call("GET", f"/api/v1/albums/{a_id}")
    assert album["data"]["image_count"] == 2 and album["data"]["cover_url"] == first[2]["url"]
    _, listed = await api.call("GET", f"/api/v1/images?album_id={b_id}")
    assert listed["meta"]["total"] == 1
    _, square = await api.call("GET", "/api/v1/square")
    assert square["meta"]["total"] == 4  # 3 of A/B left public + the published one

    # deleting an album keeps its images (moved out); the counters follow the cascade
    await api.call("DELETE", f"/api/v1/albums/{a_id}")
    assert drift(api) == {}
    _, mine = await api.call("GET", "/api/v1/images")
    assert mine["meta"]["total"] == 6

    # another user, then deleting that user (cascade through images and albums)
    bob = await api.new_user("bob")
    status, body = await api.upload(("b.png", samples.jpeg((9, 9))), token=bob)
    assert status == 201
    _, square = await api.call("GET", "/api/v1/square")
    assert square["meta"]["total"] == 5
    db: Database = api.app[DB]
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM users WHERE username = 'bob'")
    assert drift(api) == {}
    _, square = await api.call("GET", "/api/v1/square")
    assert square["meta"]["total"] == 4


async def test_quota_uses_the_stored_byte_count(api: Api) -> None:
    token = await api.new_user("carol", quota_mb=1)
    noise = Image.frombytes("RGB", (500, 500), random.Random(1).randbytes(500 * 500 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    big = buffer.getvalue()  # incompressible: 0.75 MB stored, two exceed 1 MB
    status, body = await api.upload(("a.png", big), token=token, convertToWebP="false")
    assert status == 201, body
    [used] = dbrows.rows(api, "SELECT used_bytes FROM users WHERE username = 'carol'")
    assert used[0] == body["data"][0]["size"]
    status, body = await api.upload(("b.png", big), token=token, convertToWebP="false")
    assert status == 507 and body["error"]["code"] == "INSUFFICIENT_STORAGE"
    assert drift(api) == {}


async def test_delivery_counts_follow_inserts_and_pruning(make_api: ApiFactory,
                                                           tmp_path: Path) -> None:
    # a paused endpoint on a closed local port: deliveries are queued, never sent
    api = await make_api(make_settings(tmp_path, webhooks={"allow_private_networks": True}))
    status, hook = await api.call("POST", "/api/v1/webhooks",
                                  json={"url": "http://127.0.0.1:9/x", "is_active": False})
    assert status == 201
    hook_id = hook["data"]["id"]
    for _ in range(3):
        status, _ = await api.call("POST", f"/api/v1/webhooks/{hook_id}/test")
        assert status in (200, 201, 202)
    _, listed = await api.call("GET", f"/api/v1/webhooks/{hook_id}/deliveries?per_page=2")
    assert listed["meta"]["total"] == 3 and len(listed["data"]) == 2
    db: Database = api.app[DB]
    async with db.transaction() as conn:
        await conn.execute("UPDATE deliveries SET status = 'failed',"
                           " created_at = '2000-01-01T00:00:00Z'"
                           " WHERE id = (SELECT MIN(id) FROM deliveries)")
        assert await deliveries_db.prune(conn, datetime(2001, 1, 1, tzinfo=UTC)) == (1, 0)
    assert drift(api) == {}
    _, listed = await api.call("GET", f"/api/v1/webhooks/{hook_id}/deliveries")
    assert listed["meta"]["total"] == 2


def test_migration_counts_an_existing_library(tmp_path: Path) -> None:
    """A database of the first schema gets its counters from what it holds."""
    path = tmp_path / "old.db"
    first = (resources.files("pichub.db") / "migrations" / "0001_initial.sql").read_text()
    with sqlite3.connect(path) as conn:
        conn.executescript(first + "\nPRAGMA user_version=1;")
        conn.execute("INSERT INTO users (id, username, password_hash, created_at)"
                     " VALUES (1, 'u', 'x', '2026-01-01T00:00:00Z')")
        conn.execute("INSERT INTO albums (id, user_id, name, created_at, updated_at)"
                     " VALUES (1, 1, 'a', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
        for n in range(5):
            conn.execute(
                "INSERT INTO images (id, user_id, album_id, filename, original_name, format,"
                " width, height, size, sha256, is_public, created_at)"
                " VALUES (?, 1, ?, 'f', 'f', 'png', 1, 1, ?, 'h', ?, ?)",
                (f"img{n:05d}", 1 if n < 3 else None, 100 + n, n % 2,
                 f"2026-01-0{n + 1}T00:00:00Z"))
    async def migrate() -> None:
        db = await Database.open(path)
        await db.close()

    asyncio.run(migrate())
    assert drift(path) == {}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT image_count, used_bytes FROM users").fetchone() == (5, 510)
        assert conn.execute("SELECT image_count, cover FROM albums").fetchone() == (
            3, "img00002.png")


def test_counters_survive_kill_9_at_any_moment(tmp_path: Path) -> None:
    """Uploads, moves and deletes run while the server is killed (SIGKILL) three times at
    random moments; after each restart every counter equals a recount."""
    data = tmp_path / "data"
    rng = random.Random(15)
    token = ""
    for round_no in range(3):
        server = Server(data)
        token = token or server.token
        headers = {"Authorization": f"Bearer {token}"}
        album = requests.post(f"{server.base}/api/v1/albums", headers=headers,
                              json={"name": f"r{round_no}"}, timeout=10).json()["data"]["id"]
        stop = threading.Event()

        def churn(seed: float, server: Server = server, headers: dict[str, str] = headers,
                  album: int = album, stop: threading.Event = stop) -> None:
            local = random.Random(seed)
            while not stop.is_set():
                try:
                    resp = requests.post(
                        f"{server.base}/api/v1/upload", headers=headers, timeout=10,
                        files=[("files[]", (f"{i}.png", samples.jpeg((8 + i, 9))))
                               for i in range(local.randint(1, 3))],
                        data={"album_id": str(album),
                              "is_public": local.choice(["true", "false"])})
                    for image in resp.json().get("data", []):
                        action = local.random()
                        if action < 0.3:
                            requests.delete(f"{server.base}/api/v1/images/{image['id']}",
                                            headers=headers, timeout=10)
                        elif action < 0.6:
                            requests.patch(f"{server.base}/api/v1/images/{image['id']}",
                                           headers=headers, timeout=10,
                                           json={"album_id": None, "is_public": True})
                except (requests.RequestException, ValueError):
                    return  # the server died under us: that is the point

        threads = [threading.Thread(target=churn, args=(rng.random(),)) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.5 + rng.random() * 1.5)
        server.proc.send_signal(signal.SIGKILL)
        server.wait(10)
        stop.set()
        for thread in threads:
            thread.join(20)
        # the server reopens the file (WAL replay) before we recount
        Server(data).stop()
        assert drift(data / "pichub.db") == {}, f"round {round_no}"
    with sqlite3.connect(data / "pichub.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] > 0


# --- cursors -----------------------------------------------------------------------------------


async def walk(api: Api, path: str, per_page: int, between: Any = None) -> list[str]:
    """Every id of a list by `next_cursor`, calling `between(page_no)` between pages."""
    seen: list[str] = []
    status, body = await api.call("GET", f"{path}{'&' if '?' in path else '?'}per_page={per_page}")
    page_no = 0
    while True:
        assert status == 200, body
        seen += [str(item["id"]) for item in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return seen
        if between is not None:
            await between(page_no)
        page_no += 1
        status, body = await api.call(
            "GET", f"{path}{'&' if '?' in path else '?'}per_page={per_page}&cursor={cursor}")
        assert body["meta"]["page"] is None


async def test_cursor_walk_returns_every_image_once_while_the_list_changes(api: Api) -> None:
    # batches land in the same second: the walk must rely on the sequence as the tie-break
    before = [i["id"] for i in await upload(api, 7)] + [i["id"] for i in await upload(api, 7)]
    deleted: set[str] = set()
    added: set[str] = set()
    rng = random.Random(3)

    async def change(page_no: int) -> None:
        added.update(i["id"] for i in await upload(api, 2))
        victims = [i for i in before if i not in deleted]
        victim = rng.choice(victims)
        status, _ = await api.call("DELETE", f"/api/v1/images/{victim}")
        assert status == 200
        deleted.add(victim)

    seen = await walk(api, "/api/v1/images", 3, change)
    assert len(seen) == len(set(seen)), "an image came twice"
    kept = set(before) - deleted
    assert kept <= set(seen), f"missed {kept - set(seen)}"
    assert not set(seen) & (added - set(seen)) and set(seen) <= set(before) | added


async def test_prev_cursor_walks_back_to_the_first_page(api: Api) -> None:
    ids = [i["id"] for i in await upload(api, 8)][::-1]  # newest first
    def at(cursor: str) -> str:
        return f"/api/v1/images?per_page=3&cursor={cursor}"

    _, page1 = await api.call("GET", "/api/v1/images?per_page=3")
    _, page2 = await api.call("GET", at(page1["meta"]["next_cursor"]))
    _, page3 = await api.call("GET", at(page2["meta"]["next_cursor"]))
    assert [i["id"] for i in page3["data"]] == ids[6:] and page3["meta"]["next_cursor"] is None
    _, back = await api.call("GET", at(page3["meta"]["prev_cursor"]))
    assert [i["id"] for i in back["data"]] == ids[3:6]
    _, back = await api.call("GET", at(back["meta"]["prev_cursor"]))
    assert [i["id"] for i in back["data"]] == ids[:3] and back["meta"]["prev_cursor"] is None
    assert back["meta"]["total"] == 8 and back["meta"]["total_pages"] == 3


async def test_page_numbers_answer_as_before(api: Api) -> None:
    """`page`/`per_page` return the rows of `ORDER BY created_at DESC, seq DESC LIMIT/OFFSET`,
    with the seed's meta."""
    await upload(api, 5)
    await upload(api, 6, is_public="false")
    expected = [r[0] for r in dbrows.rows(
        api, "SELECT id FROM images ORDER BY created_at DESC, seq DESC")]
    for per_page in (1, 4, 11, 100):
        pages = -(-len(expected) // per_page)
        for number in range(1, pages + 2):
            _, body = await api.call("GET", f"/api/v1/images?page={number}&per_page={per_page}")
            start = (number - 1) * per_page
            assert [i["id"] for i in body["data"]] == expected[start:start + per_page]
            meta = body["meta"]
            assert (meta["page"], meta["per_page"], meta["total"], meta["total_pages"]) == (
                number, per_page, 11, pages)


@pytest.mark.parametrize("cursor", ["x", "%%%", "WzEsMV0", encode_cursor(Position(True, (1, 2))),
                                    encode_cursor(Position(True, ("a", True))), "A" * 500,
                                    "WzIsIjIwMjYtMDEtMDFUMDA6MDA6MDBaIiwxXQ"])
async def test_bad_cursors_are_422(api: Api, cursor: str) -> None:
    status, body = await api.call("GET", f"/api/v1/images?cursor={cursor}")
    assert status == 422, body
    assert body["error"]["details"] == [{"field": "cursor",
                                         "message": "is not a cursor of this list"}]


async def test_every_list_has_cursors(api: Api) -> None:
    for n in range(3):
        await api.call("POST", "/api/v1/albums", json={"name": f"a{n}"})
    await upload(api, 3)
    for path in ("/api/v1/albums", "/api/v1/square", "/api/v1/images"):
        seen = await walk(api, path, 2)
        assert len(seen) == 3 and len(set(seen)) == 3, path


# --- indexes -----------------------------------------------------------------------------------


@pytest.mark.skipif(backends.SCALE, reason="reads SQLite's EXPLAIN QUERY PLAN")
async def test_every_list_reads_an_index(api: Api) -> None:
    db: Database = api.app[DB]
    listings = [images_db.listing(user_id=1), images_db.listing(user_id=1, album_id=1),
                images_db.listing(public_only=True), albums_db.listing(1),
                deliveries_db.listing(1)]
    for listing in listings:
        marks = ", ".join("?" * len(listing.key))
        for bound in ("", f" AND ({', '.join(listing.key)}) < ({marks})"):
            where = " AND ".join(listing.filters) or "1"
            sql = (f"EXPLAIN QUERY PLAN SELECT * FROM {listing.table} WHERE {where}{bound}"
                   f" ORDER BY {', '.join(k + ' DESC' for k in listing.key)} LIMIT 10")
            params = [*listing.params, *([1] * len(listing.key) if bound else [])]
            plan = " / ".join(row[3] for row in await db.fetchall(sql, params))
            assert plan.startswith("SEARCH") and "TEMP B-TREE" not in plan, (sql, plan)
    for sql in ("DELETE FROM deliveries WHERE status IN ('delivered', 'failed')"
                " AND created_at < ?",
                "DELETE FROM events WHERE dispatched = 1 AND created_at < ?"):
        plan = " / ".join(row[3] for row in await db.fetchall("EXPLAIN QUERY PLAN " + sql, ["x"]))
        assert "SEARCH" in plan and "SCAN" not in plan, (sql, plan)
