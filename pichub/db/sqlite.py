"""SQLite behind the `Database` facade: one writer connection (BEGIN IMMEDIATE) and one
reader, WAL mode.

SQLite allows one writer at a time; serialising writers in-process with a lock
avoids SQLITE_BUSY storms, while WAL lets the reader run beside the writer.
Migrations are `migrations/NNNN_name.sql`, the version in `PRAGMA user_version`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from pichub.db.database import Conn, Cursor, Database, Query, Row, migration_files


@asynccontextmanager
async def _one_at_a_time(path: Path) -> AsyncIterator[None]:
    """An exclusive lock next to the database file while migrating: a second process that
    starts at the same moment reads `user_version` after the first has committed, instead of
    running the same migration again. (Not a lock on the database file itself: closing any
    descriptor of it would drop SQLite's own locks in this process.)"""
    fd = await asyncio.to_thread(_lock, path.with_name(path.name + ".migrate-lock"))
    try:
        yield
    finally:
        os.close(fd)


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=10000")
    await conn.execute("PRAGMA synchronous=FULL")
    return conn


class SqliteConn(Conn):
    """An aiosqlite connection as a `Conn`."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Query:
        return Query(self._execute(sql, tuple(params)))

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> Cursor:
        cursor: Cursor = await self.raw.execute(sql, params)
        return cursor

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.raw.executemany(sql, rows)


class SqliteDatabase(Database):
    """The SQLite file at `path`."""

    dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection,
                 path: Path) -> None:
        self._writer = writer
        self._conn = SqliteConn(writer)
        self._reader = reader
        self._lock = asyncio.Lock()
        self.path = self.target = path

    @classmethod
    async def connect(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        try:
            async with _one_at_a_time(path):  # processes starting at once on one file
                await cls._migrate(writer)
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader, path)

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for version, sql in migration_files():
            if version <= current:
                continue
            # executescript commits on its own; the version bump rides in the same script.
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={version};\nCOMMIT;"
            )

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def _finish(self, sql: str) -> None:
        """Run a statement to its end even if the caller is cancelled meanwhile.

        aiosqlite runs it on its own thread either way; awaiting it keeps the
        connection's transaction state known before the cancellation goes on.
        """
        task = asyncio.ensure_future(self._writer.execute(sql))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    @asynccontextmanager
    async def transaction(self, *, serial: bool = True) -> AsyncIterator[Conn]:
        """A write transaction on the one writer (`serial` changes nothing here)."""
        async with self._lock:
            try:
                await self._finish("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                if self._writer.in_transaction:
                    await self._finish("ROLLBACK")
                raise
            try:
                yield self._conn
            except BaseException:
                await self._finish("ROLLBACK")
                raise
            await self._finish("COMMIT")

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self._reader.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._reader.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())
