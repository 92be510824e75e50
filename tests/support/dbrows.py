"""Plain, blocking SQL on a test app's database, whichever engine it runs on.

For checks between requests (a stored counter, an event row) written as they
would be against the SQLite file: `rows(api, "SELECT …", params)` gives tuples.
On PostgreSQL the query runs on its own connection in a helper thread (the
test's event loop is the app's, so it cannot be awaited from sync code).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

from aiohttp import web

from pichub.app import data_paths
from pichub.config import Settings
from pichub.db.database import is_postgres, sqlite_path
from pichub.keys import SETTINGS


def target(settings: Settings) -> Path | str:
    """What `Database.open` opens for these settings: a URL or the SQLite file."""
    return settings.database.url or data_paths(settings)["db"]


def _of(where: Any) -> Path | str:
    if isinstance(where, (Path, str)):
        return where
    app: web.Application = where.app if hasattr(where, "app") else where
    return target(app[SETTINGS])


def rows(where: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of a query on the database of `where` (an Api, an app, a path or a URL)."""
    found = _of(where)
    if is_postgres(found):
        return _on_postgres(str(found), sql, params, fetch=True)
    with closing(sqlite3.connect(sqlite_path(found))) as conn:
        return conn.execute(sql, tuple(params)).fetchall()


def execute(where: Any, sql: str, params: Sequence[Any] = ()) -> None:
    """Run one statement (committed) on the database of `where`."""
    found = _of(where)
    if is_postgres(found):
        _on_postgres(str(found), sql, params, fetch=False)
        return
    with closing(sqlite3.connect(sqlite_path(found))) as conn, conn:
        conn.execute(sql, tuple(params))


def _on_postgres(url: str, sql: str, params: Sequence[Any], *,
                 fetch: bool) -> list[tuple[Any, ...]]:
    import asyncpg

    from pichub.db.postgres import setup_connection, translate

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            await setup_connection(conn)
            if fetch:
                return [tuple(r) for r in await conn.fetch(translate(sql), *params)]
            await conn.execute(translate(sql), *params)
            return []
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=30)
