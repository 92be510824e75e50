"""PostgreSQL behind the `Database` facade: an asyncpg pool and a small dialect layer.

Why not a query builder: the SQL in `pichub/db` is already plain, portable SQL
(`?` parameters, `RETURNING`, `ON CONFLICT`, `COALESCE`), so one set of
queries serves both engines. asyncpg is the fastest PostgreSQL driver for
asyncio, and SQLAlchemy Core would mean rewriting ~100 queries into its
expression language for no change in behaviour. This module only adapts:
`?` becomes `$1, $2 …` (never inside a string literal or a quoted name), an
asyncpg Record is a row as the callers use one (`row["col"]`, `row[0]`,
`dict(row)`), a statement's status gives `rowcount`, and NUMERIC results
(what `SUM` of a BIGINT gives) come back as int, as SQLite gives them.

Writers are serial, as on SQLite: a serial transaction takes
`pg_advisory_xact_lock(WRITER_LOCK)` right after BEGIN, so one write
transaction runs at a time across every process on the database, and a
service's read-check-write (quota, counters, the outbox event in the change's
transaction) keeps its meaning without row locks or retries on serialisation
failures. The cost is what SQLite already pays: write throughput is one
transaction at a time (short ones: no I/O to blobs or the network inside).
Reads never wait for it. An asyncio lock in front of the advisory lock keeps a
process to one waiting connection, so waiting writers do not empty the pool
that reads need. `transaction(serial=False)` skips both for work that locks
its own rows (the webhook claim: `FOR UPDATE SKIP LOCKED`). A transaction holds
one pooled connection and reads beside it take others, so `pool_size` is at
least 3 (`[database]`, checked with the configuration).

Migrations are `migrations/postgresql/NNNN_name.sql`, numbered like SQLite's
(the first, 0015, is the baseline equal to SQLite's schema after 0015); the
version is the `schema_version` table, and they are applied under a session
advisory lock, so processes starting together migrate once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any

import asyncpg

from pichub.db.database import Conn, Cursor, Database, Query, Row, migration_files

#: The advisory lock key of the one writer (any constant; "PicHubWr" in ASCII).
WRITER_LOCK = 0x5069634875625772
#: The advisory lock key held while migrating ("PicHubMg").
MIGRATION_LOCK = 0x5069634875624D67

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?")
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.IGNORECASE)


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """`?` placeholders as `$1, $2 …`, leaving string literals, quoted names and comments be."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() != "?":
            return match.group()
        count += 1
        return f"${count}"

    return _TOKENS.sub(number, sql)


def _numeric(text: str) -> int | Decimal:
    """NUMERIC as SQLite gives a sum of integers: an int when it is whole."""
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else value


async def setup_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("numeric", schema="pg_catalog", encoder=str, decoder=_numeric,
                              format="text")


class PgCursor:
    """The rows a statement returned, or how many rows it changed."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[Row]:
        return self._rows

    async def close(self) -> None:
        return None


def _changed(status: str) -> int:
    """Rows changed, from a command status such as `UPDATE 3` or `INSERT 0 5`."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class PgConn(Conn):
    """An asyncpg connection inside a transaction, as a `Conn`."""

    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Query:
        return Query(self._execute(translate(sql), tuple(params)))

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> Cursor:
        if _RETURNS_ROWS.search(sql):
            rows: list[Row] = await self.raw.fetch(sql, *params)
            return PgCursor(rows, len(rows))
        return PgCursor([], _changed(await self.raw.execute(sql, *params)))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.raw.executemany(translate(sql), [tuple(row) for row in rows])


class PostgresDatabase(Database):
    """A pool of up to `pool_size` connections to the database at a `postgresql://` URL."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.target = url
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, pool_size: int) -> PostgresDatabase:
        await migrate(url)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, init=setup_connection)
        return cls(pool, url)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self, *, serial: bool = True) -> AsyncIterator[Conn]:
        if not serial:
            async with self._pool.acquire() as conn, conn.transaction():
                yield PgConn(conn)
            return
        async with self._lock, self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
            yield PgConn(conn)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        row: Row | None = await self._pool.fetchrow(translate(sql), *params)
        return row

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        rows: list[Row] = await self._pool.fetch(translate(sql), *params)
        return rows


async def migrate(url: str) -> None:
    """Apply the PostgreSQL migrations not yet applied, once whoever else is starting."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        current = await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0
        for version, sql in migration_files("postgresql"):
            if version <= current:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
    finally:
        await conn.close()  # ends the session, and with it the advisory lock
