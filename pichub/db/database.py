"""The database facade the rest of PicHub uses, whatever the engine behind it.

`Database.open(target)` opens SQLite (a path, or a `sqlite:///path` URL: one
writer connection behind a lock, WAL mode, `pichub.db.sqlite`) or PostgreSQL
(a `postgresql://` URL: a connection pool, `pichub.db.postgres`). Both give
the same three things: `transaction()` yielding a `Conn`, the reads
`fetchone`/`fetchall`/`fetchval`, and `dialect` ("sqlite" or "postgresql")
for the rare query that must be spelled per engine. Queries are written once,
with `?` parameters, in the SQL both engines share.

Write transactions are serial on both engines: one writer at a time, across
processes too on PostgreSQL, so a service's read-check-write (a quota, a
counter, the outbox event written with its change) means the same on both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol


class Row(Protocol):
    """A result row: by column name (`row["id"]`), by position (`row[0]`), `dict(row)`."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class Cursor(Protocol):
    """What `Conn.execute` gives: the rows of a query, or how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> Iterable[Row]: ...

    async def close(self) -> None: ...


class Query:
    """One statement on its way: `await` it for its cursor, or `async with` it."""

    def __init__(self, running: Awaitable[Cursor]) -> None:
        self._running = running
        self._cursor: Cursor | None = None

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._running.__await__()

    async def __aenter__(self) -> Cursor:
        self._cursor = await self._running
        return self._cursor

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class Conn(ABC):
    """A connection inside a transaction, as the functions in `pichub.db` use it."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, params: Iterable[Any] = ()) -> Query:
        """Run one statement with `?` parameters."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""


class Database(ABC):
    """Open with `await Database.open(target)`; close with `await db.close()`."""

    dialect: str
    #: What `open` was given to open this database (a path or a URL).
    target: Path | str

    @classmethod
    async def open(cls, target: Path | str, *, pool_size: int = 10) -> Database:
        """SQLite for a path or `sqlite:///path`; PostgreSQL for a `postgresql://` URL."""
        if is_postgres(target):
            from pichub.db import postgres  # asyncpg is imported only when it is used

            return await postgres.PostgresDatabase.connect(str(target), pool_size)
        from pichub.db import sqlite

        return await sqlite.SqliteDatabase.connect(sqlite_path(target))

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def transaction(self, *, serial: bool = True) -> AbstractAsyncContextManager[Conn]:
        """A write transaction: committed on success, rolled back on any exception.

        `serial` (the default) takes the one writer's turn, so transactions never
        interleave. `serial=False` is for work that locks its own rows (claiming
        deliveries with `FOR UPDATE SKIP LOCKED`): on PostgreSQL it runs beside the
        writer; SQLite has a single writer whatever is asked.
        """

    @abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]: ...

    @abstractmethod
    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


def is_postgres(target: Path | str) -> bool:
    """True for a `postgresql://` (or `postgres://`) URL."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def sqlite_path(target: Path | str) -> Path:
    """The file of a SQLite target: a path, or a `sqlite:///path` URL."""
    if isinstance(target, Path):
        return target
    return Path(target.removeprefix("sqlite:///"))  # sqlite:////abs/path is absolute


def migration_files(folder_name: str | None = None) -> Iterator[tuple[int, str]]:
    """(version, SQL) of the migrations of one engine, in order."""
    folder = resources.files("pichub.db") / "migrations"
    if folder_name:
        folder = folder / folder_name
    found = [(int(e.name.split("_", 1)[0]), e.read_text(encoding="utf-8"))
             for e in folder.iterdir() if e.name.endswith(".sql")]
    return iter(sorted(found))


async def fetch_one(source: Database | Conn, sql: str, params: Iterable[Any] = ()) -> Row | None:
    """One row, read through the reader (`Database`) or inside a transaction (`Conn`)."""
    if isinstance(source, Database):
        return await source.fetchone(sql, params)
    async with source.execute(sql, params) as cur:
        return await cur.fetchone()


async def insert_id(conn: Conn, sql: str, params: Iterable[Any] = ()) -> int:
    """Run an INSERT of one row and return its new `id` (`RETURNING id`, on both engines)."""
    async with conn.execute(sql + " RETURNING id", params) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def set_clause(changes: dict[str, Any], columns: frozenset[str]) -> tuple[str, list[Any]]:
    """`a = ?, b = ?` and its values for an UPDATE; a key outside `columns` is a bug."""
    unknown = changes.keys() - columns
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return ", ".join(f"{name} = ?" for name in changes), list(changes.values())
