"""Database: migrations, WAL, and transactions that survive cancellation."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from contextlib import closing
from importlib import resources
from pathlib import Path

import pytest

from pichub.db.database import Database
from pichub.errors import is_disk_full


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


def test_pichub_starts_without_asyncpg(tmp_path: Path) -> None:
    """asyncpg (the `scale` extra) is imported only for a PostgreSQL URL: without it the
    app, the commands and a SQLite database work."""
    script = (
        "import asyncio, sys, pathlib\n"
        "sys.modules['asyncpg'] = None  # import asyncpg raises ImportError\n"
        "import pichub.cli, pichub.commands, pichub.app, pichub.errors\n"
        "from pichub.db.database import Database\n"
        "async def main():\n"
        f"    db = await Database.open('sqlite:///{tmp_path}/p.db')\n"
        "    assert db.dialect == 'sqlite'\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
        "assert not pichub.errors.is_disk_full(ValueError())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert (tmp_path / "p.db").is_file()


def test_disk_full_is_recognised_from_either_engine() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert is_disk_full(full)

    class PostgresDiskFull(Exception):  # asyncpg's DiskFullError carries its SQLSTATE
        sqlstate = "53100"

    assert is_disk_full(PostgresDiskFull())
    assert not is_disk_full(sqlite3.IntegrityError("UNIQUE constraint failed"))


async def test_sessions_keep_their_numbers_as_ids(tmp_path: Path) -> None:
    """Migration 0015 gives sessions a real `id` column: each keeps the number (rowid) the
    account page showed, so a "sign out" form rendered before the upgrade still works."""
    path = tmp_path / "old.db"
    folder = resources.files("pichub.db") / "migrations"
    with closing(sqlite3.connect(path)) as conn:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql") and entry.name < "0015":
                conn.executescript(entry.read_text(encoding="utf-8"))
        conn.execute("PRAGMA user_version=14")
        conn.execute("INSERT INTO users (id, username, password_hash, created_at)"
                     " VALUES (1, 'u', 'x', '2026-01-01T00:00:00Z')")
        for rowid, id_hash in ((7, "h7"), (42, "h42")):
            conn.execute("INSERT INTO sessions (rowid, id_hash, user_id, csrf_token, created_at,"
                         " expires_at) VALUES (?, ?, 1, 'c', 'a', 'z')", (rowid, id_hash))
        conn.commit()
    db = await Database.open(path)
    try:
        rows = await db.fetchall("SELECT id, id_hash FROM sessions ORDER BY id")
        assert [tuple(r) for r in rows] == [(7, "h7"), (42, "h42")]
    finally:
        await db.close()
