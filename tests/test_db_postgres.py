"""PostgreSQL as the metadata engine: the schema matches SQLite's, migrations run once,
writers are serial, and webhook deliveries are claimed once across processes.

Each test starts from its own database on the session's throw-away cluster
(tests/support/postgres.py); skipped when PostgreSQL is not installed (outside CI).
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pichub.db import deliveries as deliveries_db
from pichub.db import events as events_db
from pichub.db import webhooks as webhooks_db
from pichub.db.database import Database, insert_id
from tests.support import postgres

asyncpg = pytest.importorskip("asyncpg")  # the `scale` extra; pichub.db.postgres needs it

from pichub.db.postgres import migrate, translate  # noqa: E402

_ON_DELETE = {"c": "CASCADE", "n": "SET NULL", "a": "NO ACTION", "r": "RESTRICT",
              "d": "SET DEFAULT"}

Shape = dict[str, Any]


def _sqlite_shape(path: Path) -> Shape:
    with closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        columns, keys = {}, set()
        for table in tables:
            # a PRIMARY KEY column holds no NULL (SQLite's rowid alias says notnull=0)
            columns[table] = {(name, bool(notnull or pk)) for _, name, _, notnull, _, pk
                              in conn.execute(f"PRAGMA table_info({table})")}
            keys |= {(table, r[3], r[2], r[6]) for r in
                     conn.execute(f"PRAGMA foreign_key_list({table})")}
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    return {"columns": columns, "indexes": indexes, "foreign keys": keys}


async def _postgres_shape(url: str) -> Shape:
    conn = await asyncpg.connect(url)
    try:
        columns: dict[str, set[tuple[str, bool]]] = {}
        for r in await conn.fetch(
                "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name != 'schema_version'"):
            columns.setdefault(r[0], set()).add((r[1], r[2] == "NO"))
        indexes = {r[0] for r in await conn.fetch(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_namespace n ON n.oid = i.relnamespace WHERE n.nspname = 'public'"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)")}
        keys = {(r[0], r[1], r[2], _ON_DELETE[r[3]]) for r in await conn.fetch(
            "SELECT t.relname, a.attname, f.relname, c.confdeltype::text FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class f ON f.oid = c.confrelid"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'f'")}
    finally:
        await conn.close()
    return {"columns": columns, "indexes": indexes, "foreign keys": keys}


async def test_postgresql_schema_matches_sqlite(tmp_path: Path) -> None:
    """Every table's columns and their NOT NULL, every index, every foreign key and its
    ON DELETE: the same after all migrations of either engine. A migration added to one
    engine without its twin fails here."""
    sqlite_db = await Database.open(tmp_path / "pichub.db")
    await sqlite_db.close()
    lite, pg = _sqlite_shape(tmp_path / "pichub.db"), await _postgres_shape(postgres.fresh_url())
    assert sorted(pg["columns"]) == sorted(lite["columns"])
    for table, found in lite["columns"].items():
        assert pg["columns"][table] == found, table
    assert pg["indexes"] == lite["indexes"]
    assert pg["foreign keys"] == lite["foreign keys"]


async def test_processes_starting_together_migrate_once() -> None:
    url = postgres.empty_url()
    await asyncio.gather(*(migrate(url) for _ in range(4)))
    conn = await asyncpg.connect(url)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_version")]
    finally:
        await conn.close()
    assert versions == sorted(set(versions)) and versions


async def test_write_transactions_are_serial_across_databases() -> None:
    """Two `Database` objects (two processes) doing read-then-write: no update is lost,
    as with SQLite's single writer."""
    url = postgres.fresh_url()
    dbs = [await Database.open(url, pool_size=4) for _ in range(2)]
    try:
        async def bump(db: Database) -> None:
            async with db.transaction() as conn:
                async with conn.execute(
                        "SELECT value FROM counters WHERE name = 'public_images'") as cur:
                    row = await cur.fetchone()
                assert row is not None
                await asyncio.sleep(0)
                await conn.execute("UPDATE counters SET value = ? WHERE name = 'public_images'",
                                   (row[0] + 1,))

        await asyncio.gather(*(bump(dbs[n % 2]) for n in range(40)))
        assert await dbs[0].fetchval(
            "SELECT value FROM counters WHERE name = 'public_images'") == 40
    finally:
        for db in dbs:
            await db.close()


async def _queue(db: Database, endpoints: int, per_endpoint: int) -> set[int]:
    async with db.transaction() as conn:
        user = await insert_id(conn, "INSERT INTO users (username, password_hash, created_at)"
                                     " VALUES ('alice', 'x', '2026-01-01T00:00:00Z')")
        for n in range(endpoints):
            await webhooks_db.create(conn, user, f"http://127.0.0.1:9/{n}", "whsec_x", None)
        for n in range(per_endpoint):  # each event goes to every endpoint
            await events_db.record(conn, user, "album.created", {"id": n})
        await deliveries_db.dispatch_pending(conn, global_endpoint=False)
    return {int(r[0]) for r in await db.fetchall("SELECT id FROM deliveries")}


async def test_two_workers_never_claim_the_same_delivery() -> None:
    """Two processes claim (FOR UPDATE SKIP LOCKED, beside the writer lock) and finish
    deliveries as the worker does, four claim loops each: each delivery is claimed once."""
    url = postgres.fresh_url()
    dbs = [await Database.open(url, pool_size=6) for _ in range(2)]
    try:
        queued = await _queue(dbs[0], endpoints=25, per_endpoint=8)
        claimed: list[int] = []

        async def claimer(db: Database) -> None:
            idle = 0
            while idle < 5:
                now = datetime.now(UTC)
                async with db.transaction(serial=False) as conn:
                    rows = await deliveries_db.claim_due(conn, now, now + timedelta(minutes=5), 4)
                idle = 0 if rows else idle + 1
                for row in rows:
                    claimed.append(int(row["id"]))
                    async with db.transaction() as conn:
                        await deliveries_db.record_delivered(conn, row["id"], 1, 200)
                await asyncio.sleep(0)

        await asyncio.gather(*(claimer(dbs[n % 2]) for n in range(8)))
        assert len(claimed) == len(set(claimed))
        assert set(claimed) == queued
    finally:
        for db in dbs:
            await db.close()


async def test_an_expired_lease_is_reclaimed_by_another_process() -> None:
    url = postgres.fresh_url()
    first = await Database.open(url, pool_size=2)
    second = await Database.open(url, pool_size=2)
    try:
        queued = await _queue(first, endpoints=1, per_endpoint=1)
        now = datetime.now(UTC)
        async with first.transaction(serial=False) as conn:
            rows = await deliveries_db.claim_due(conn, now, now + timedelta(milliseconds=50), 1)
        assert {r["id"] for r in rows} == queued
        async with second.transaction(serial=False) as conn:  # leased: not due
            assert await deliveries_db.claim_due(conn, now, now + timedelta(minutes=5), 1) == []
        later = now + timedelta(seconds=1)  # the first process died; its lease ran out
        async with second.transaction(serial=False) as conn:
            rows = await deliveries_db.claim_due(conn, later, later + timedelta(minutes=5), 1)
        assert {r["id"] for r in rows} == queued
    finally:
        await first.close()
        await second.close()


def test_placeholders_are_numbered_outside_literals_and_names() -> None:
    sql = ("SELECT '?', \"a?\", x FROM t -- why?\n"
           "WHERE a = ? AND b = 'it''s ?' AND c IN (?, ?)")
    assert translate(sql) == ("SELECT '?', \"a?\", x FROM t -- why?\n"
                              "WHERE a = $1 AND b = 'it''s ?' AND c IN ($2, $3)")
