"""SQL for copying every row of one database into another, engine to engine.

`pichub migrate` copies a SQLite instance into PostgreSQL, and `pichub backup`/`restore`
of a PostgreSQL instance copy it to and from a backup's SQLite file: the same rows, the
same ids (so tokens, links and webhook signatures keep working). Both databases are at the
same schema version; the column names come from the source's rows, so a column added by a
later migration needs no change here (a table does: `TABLES`, checked by a test).

Tables are copied parents first (`TABLES` follows the foreign keys), a page at a time in
key order, and written with an upsert: a copy that was interrupted, or one made while the
source was still serving, is brought up to date by running it again. Rows the source no
longer has are removed (`prune`), children first, so the counts match at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pichub.db.database import Database, Row

#: Every table with its primary key, parents before children.
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("users", ("id",)),
    ("tokens", ("id",)),
    ("albums", ("id",)),
    ("images", ("seq",)),
    ("events", ("seq",)),
    ("webhooks", ("id",)),
    ("deliveries", ("id",)),
    ("delete_links", ("image_id",)),
    ("counters", ("name",)),
    ("secrets", ("name",)),
    ("upload_days", ("day",)),
    ("totp", ("user_id",)),
    ("recovery_codes", ("id",)),
    ("invites", ("id",)),
    ("oidc_identities", ("issuer", "subject")),
    ("sessions", ("id",)),
)

#: The tables whose key the database numbers itself: on PostgreSQL its identity sequence
#: must continue after the highest copied value.
NUMBERED = frozenset({"users", "tokens", "albums", "images", "events", "webhooks",
                      "deliveries", "recovery_codes", "invites", "sessions"})


async def pages(db: Database, table: str, key: tuple[str, ...], size: int,
                columns: str = "*") -> AsyncIterator[list[Row]]:
    """The rows of `table` (or just `columns`), `size` at a time, in key order."""
    order = ", ".join(key)
    after: tuple[object, ...] | None = None
    while True:
        if after is None:
            rows = await db.fetchall(f"SELECT {columns} FROM {table} ORDER BY {order} LIMIT ?",
                                     (size,))
        else:
            marks = ", ".join("?" for _ in key)
            rows = await db.fetchall(
                f"SELECT {columns} FROM {table} WHERE ({order}) > ({marks})"
                f" ORDER BY {order} LIMIT ?", (*after, size))
        if not rows:
            return
        yield rows
        last = rows[-1]
        after = tuple(last[name] for name in key)


async def upsert(db: Database, table: str, key: tuple[str, ...], rows: list[Row]) -> None:
    """Write `rows` into `table` of `db` in one transaction: new keys inserted, existing
    ones overwritten with the source's values."""
    names = list(rows[0].keys())
    marks = ", ".join("?" for _ in names)
    rest = [name for name in names if name not in key]
    update = (f"DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in rest)}" if rest
              else "DO NOTHING")
    sql = (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"
           f" ON CONFLICT ({', '.join(key)}) {update}")
    async with db.transaction() as conn:
        await conn.executemany(sql, [tuple(row[name] for name in names) for row in rows])


async def remove(db: Database, table: str, key: tuple[str, ...],
                 keys: list[tuple[object, ...]]) -> None:
    """Delete the rows of `table` with these keys."""
    where = " AND ".join(f"{name} = ?" for name in key)
    async with db.transaction() as conn:
        await conn.executemany(f"DELETE FROM {table} WHERE {where}", keys)


async def count(db: Database, table: str) -> int:
    return int(await db.fetchval(f"SELECT COUNT(*) FROM {table}"))


async def follow_numbering(db: Database) -> None:
    """On PostgreSQL, move each identity sequence past the highest key copied in (SQLite's
    AUTOINCREMENT follows inserted keys by itself)."""
    if db.dialect != "postgresql":
        return
    async with db.transaction() as conn:
        for table, (column,) in ((t, k) for t, k in TABLES if t in NUMBERED):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)")


async def drop_images(db: Database, ids: list[str]) -> None:
    """Delete these images' rows (their files vanished while a backup copied them)."""
    async with db.transaction() as conn:
        await conn.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in ids])
