"""The change feed (services/changefeed.py): deletes and album changes committed by another
process reach this one's cache and memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pichub.db import events as events_db
from pichub.db.database import Database
from pichub.keys import DB, PIPELINE
from pichub.services.changefeed import TYPES, ChangeFeed
from tests import samples
from tests.conftest import Api


class Spy:
    def __init__(self) -> None:
        self.purged: list[str] = []
        self.forgot = 0

    async def purge(self, image_id: str) -> None:
        self.purged.append(image_id)

    def forget_all(self) -> None:
        self.forgot += 1


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "pichub.db")
    yield database
    await database.close()


async def _record(db: Database, type_: str, image_id: str = "", seq: int | None = None) -> None:
    async with db.transaction() as conn:
        await events_db.record(conn, None, type_, {"id": image_id})
        if seq is not None:  # a commit that lands below numbers already seen (PostgreSQL)
            await conn.execute("UPDATE events SET seq = ? WHERE seq = "
                               "(SELECT MAX(seq) FROM events)", (seq,))


async def test_feed_applies_what_was_committed_since_start(db: Database) -> None:
    await _record(db, "image.deleted", "before")  # before start-up: not replayed
    spy = Spy()
    feed = ChangeFeed(db, spy.purge, spy.forget_all)
    await feed.start()
    assert await feed.step() == 0
    await _record(db, "image.uploaded", "new")
    await _record(db, "image.deleted", "gone")
    await _record(db, "album.updated")
    assert await feed.step() == 2
    assert spy.purged == ["gone"] and spy.forgot == 1
    assert await feed.step() == 0 and spy.purged == ["gone"]  # each event once
    assert "image.deleted" in TYPES


async def test_feed_with_lookback_finds_late_commits_once(db: Database) -> None:
    spy = Spy()
    feed = ChangeFeed(db, spy.purge, spy.forget_all, lookback=100)
    for _ in range(5):
        await _record(db, "image.uploaded", "x")
    async with db.transaction() as conn:  # seq 4: drawn by a transaction still under way
        await conn.execute("DELETE FROM events WHERE seq = 4")
    await feed.start()
    await _record(db, "image.deleted", "first")
    assert await feed.step() == 1
    await _record(db, "image.deleted", "late", seq=4)  # committed after seq 6 was read
    assert await feed.step() == 1
    assert await feed.step() == 0
    assert spy.purged == ["first", "late"]


async def test_a_delete_by_another_process_purges_this_ones_variants(api: Api) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()))
    image_id = body["data"][0]["id"]
    async with api.client.get(f"/img/{image_id}.webp?w=20") as resp:
        assert resp.status == 200
    pipeline = api.app[PIPELINE]
    assert len(pipeline.cache) == 1
    db = api.app[DB]
    async with db.transaction() as conn:  # what another process's delete commits
        await conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        await events_db.record(conn, None, "image.deleted", {"id": image_id})
    feed = ChangeFeed(db, pipeline.purge, pipeline.forget_all)
    feed.cursor = 0
    assert await feed.step() >= 1
    assert len(pipeline.cache) == 0 and pipeline.source(image_id) is None
    async with api.client.get(f"/img/{image_id}.webp?w=20") as resp:
        assert resp.status == 404
