"""Database: migrations, WAL, and transactions that survive cancellation."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from pichub.db.database import Database


async def test_migrations_wal_foreign_keys(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "p.db")
    try:
        assert await db.fetchval("PRAGMA journal_mode") == "wal"
        assert await db.fetchval("PRAGMA foreign_keys") == 1
        version = await db.fetchval("PRAGMA user_version")
        assert version >= 1
        tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master")}
        assert {"users", "tokens", "albums", "images", "events", "webhooks",
                "deliveries", "sessions"} <= tables
    finally:
        await db.close()
    again = await Database.open(tmp_path / "p.db")  # applying migrations twice is a no-op
    assert await again.fetchval("PRAGMA user_version") == version
    await again.close()


async def test_rollback_on_error(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "p.db")
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO users (username, password_hash, created_at)"
                               " VALUES ('x', 'h', 'now')")
            raise RuntimeError("boom")
    assert await db.fetchval("SELECT COUNT(*) FROM users") == 0
    await db.close()


async def test_cancelled_while_waiting_for_begin_leaves_db_usable(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = await Database.open(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    async def write() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO users (username, password_hash, created_at)"
                               " VALUES ('late', 'h', 'now')")

    task = asyncio.create_task(write())
    await asyncio.sleep(0.3)  # BEGIN IMMEDIATE is now waiting on the busy timeout
    task.cancel()
    await asyncio.sleep(0.1)
    other.execute("ROLLBACK")
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.transaction() as conn:  # no "transaction within a transaction"
        await conn.execute("INSERT INTO users (username, password_hash, created_at)"
                           " VALUES ('next', 'h', 'now')")
    names = [r[0] for r in await db.fetchall("SELECT username FROM users")]
    assert names == ["next"]
    await db.close()
