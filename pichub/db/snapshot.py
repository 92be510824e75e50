"""SQL for backup and restore: a database file opened without the server, plain blocking.

`copy_online` takes SQLite's online backup of a live database in one step (one
consistent read transaction; writers keep going in WAL mode). `Snapshot` is
such a copy, or a backup's database, opened to read and trim it: its images
are read a page at a time in `seq` order, so memory does not grow with the
library. sqlite3 errors become `SnapshotError`, so callers need not know the
driver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

#: A blob file of the snapshot: (image id, format, size, sha256, is it a kept original upload).
Row = tuple[str, str, int, str, bool]


class SnapshotError(Exception):
    """The database file cannot be read, copied or changed; the message says why."""


def copy_online(source: Path, target: Path) -> None:
    """A consistent copy of the live database at `source` into the new file `target`."""
    uri = f"{source.resolve().as_uri()}?mode=rw"  # never creates a database
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=30)) as src, \
             closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
    except sqlite3.Error as exc:
        raise SnapshotError(f"cannot snapshot {source}: {exc}") from None


def latest_schema() -> int:
    """The highest migration this PicHub knows (`PRAGMA user_version` after migrating)."""
    folder = resources.files("pichub.db") / "migrations"
    return max(int(e.name.split("_", 1)[0]) for e in folder.iterdir() if e.name.endswith(".sql"))


class Snapshot:
    """A database copy opened for backup or restore; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._conn.close()

    def image_totals(self) -> tuple[int, int, int]:
        """(images, blob files, bytes of all blob files): the stored files and the kept
        original uploads."""
        extra = ("count(original_format), coalesce(sum(original_size), 0)"
                 if self._has_originals() else "0, 0")
        row = self._read(f"SELECT count(*), coalesce(sum(size), 0), {extra} FROM images", ())
        images, size, originals, original_size = (int(v) for v in row[0])
        return images, images + originals, size + original_size

    def blob_pages(self, page: int = 1000) -> Iterator[list[Row]]:
        """(id, format, size, sha256, original?) of every blob file, `page` rows at a time:
        the stored files oldest first, then the kept original uploads (a HEIC beside its
        stored image) oldest first."""
        yield from self._pages("SELECT seq, id, format, size, sha256 FROM images", page, False)
        if self._has_originals():
            yield from self._pages(
                "SELECT seq, id, original_format, original_size, original_sha256 FROM images",
                page, True, "original_format IS NOT NULL AND ")

    def _pages(self, select: str, page: int, original: bool,
               where: str = "") -> Iterator[list[Row]]:
        after = 0
        while rows := self._read(f"{select} WHERE {where}seq > ? ORDER BY seq LIMIT ?",
                                 (after, page)):
            after = int(rows[-1][0])
            yield [(str(i), str(f), int(s), str(h), original) for _, i, f, s, h in rows]

    def _has_originals(self) -> bool:
        """Whether the schema keeps original uploads (not before migration 0004)."""
        columns = {row[1] for row in self._read("PRAGMA table_info(images)", ())}
        return "original_format" in columns

    def known_ids(self, ids: list[str]) -> set[str]:
        """Those of `ids` that name an image."""
        marks = ",".join("?" * len(ids))
        return {str(r[0]) for r in self._read(f"SELECT id FROM images WHERE id IN ({marks})",
                                               tuple(ids))}

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise SnapshotError(f"not a PicHub database: {exc}") from None

    def drop_images(self, ids: set[str]) -> None:
        """Remove these images' rows (their blobs vanished after the snapshot)."""
        with self._conn:
            self._conn.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in sorted(ids)])

    def make_self_contained(self) -> None:
        """One file with no `-wal` beside it (and reading it changes nothing on disk)."""
        self._conn.execute("PRAGMA journal_mode=DELETE")

    def integrity(self) -> str:
        """`PRAGMA integrity_check`: "ok" when the file is sound."""
        try:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise SnapshotError(f"the database cannot be read ({exc})") from None

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])
