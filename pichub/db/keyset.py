"""Keyset pagination: a page of a list read from an index, newest first, at constant cost.

A list is ordered by a key of columns that is unique per row (`created_at, seq` for
images). A page starts at an offset (the seed's `page`, cheap for the first pages) or
at a `Position`: just older than a key (the next page) or just newer (the previous
one). A position stays valid while rows are added or deleted around it, so walking a
list by positions returns every row that stays in it exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

from pichub.db.database import Database, Row

Key = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """Where a page starts: the rows just older than `key` (`older`), or just newer."""

    older: bool
    key: Key


@dataclass(frozen=True)
class Window:
    """One page of rows, newest first, and whether rows exist on either side of it."""

    rows: list[Row]
    newer: bool
    older: bool


@dataclass(frozen=True)
class Listing:
    """A list: `FROM table WHERE filters`, ordered by `key` (descending = newest first)."""

    table: str
    key: tuple[str, ...]
    filters: tuple[str, ...] = ()
    params: tuple[object, ...] = ()

    def key_of(self, row: Row) -> Key:
        return tuple(row[column] for column in self.key)

    async def window(self, db: Database, limit: int, *, offset: int = 0,
                     position: Position | None = None) -> Window:
        """`limit` rows from `offset` (position None) or from `position`."""
        if position is None:
            rows = await self._read(db, limit + 1, older_than=None, offset=offset)
            return Window(rows[:limit], newer=offset > 0 and bool(rows),
                          older=len(rows) > limit)
        if position.older:
            rows = await self._read(db, limit + 1, older_than=position.key)
            page = rows[:limit]
            newer = bool(page) and await self._exists(db, self.key_of(page[0]), newer=True)
            return Window(page, newer=newer, older=len(rows) > limit)
        rows = await self._read(db, limit + 1, newer_than=position.key)
        page = rows[:limit][::-1]
        older = bool(page) and await self._exists(db, self.key_of(page[-1]), newer=False)
        return Window(page, newer=len(rows) > limit, older=older)

    def _where(self, extra: str | None) -> str:
        clauses = [*self.filters, *([extra] if extra else [])]
        return f"WHERE {' AND '.join(clauses)}" if clauses else ""

    def _tuple(self) -> str:
        return f"({', '.join(self.key)})"

    def _order(self, direction: str) -> str:
        return "ORDER BY " + ", ".join(f"{column} {direction}" for column in self.key)

    async def _read(self, db: Database, limit: int, *, older_than: Key | None = None,
                    newer_than: Key | None = None, offset: int = 0) -> list[Row]:
        marks = f"({', '.join('?' for _ in self.key)})"
        if older_than is not None:
            where, order, bound = self._where(f"{self._tuple()} < {marks}"), "DESC", older_than
        elif newer_than is not None:
            where, order, bound = self._where(f"{self._tuple()} > {marks}"), "ASC", newer_than
        else:
            where, order, bound = self._where(None), "DESC", ()
        return await db.fetchall(
            f"SELECT * FROM {self.table} {where} {self._order(order)} LIMIT ? OFFSET ?",
            (*self.params, *bound, limit, offset))

    async def _exists(self, db: Database, key: Key, *, newer: bool) -> bool:
        marks = f"({', '.join('?' for _ in self.key)})"
        where = self._where(f"{self._tuple()} {'>' if newer else '<'} {marks}")
        found = await db.fetchone(f"SELECT 1 FROM {self.table} {where} LIMIT 1",
                                  (*self.params, *key))
        return found is not None
