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

    def image_totals(self) -> tuple[int, int]:
        """(number of images, sum of their sizes)."""
        row = self._read("SELECT count(*), coalesce(sum(size), 0) FROM images", ())
        return int(row[0][0]), int(row[0][1])

    def image_pages(self, page: int = 1000) -> Iterator[list[tuple[str, str, int, str]]]:
        """(id, format, size, sha256) of every image, oldest first, `page` rows at a time."""
        after = 0
        while rows := self._read("SELECT seq, id, format, size, sha256 FROM images"
                                 " WHERE seq > ? ORDER BY seq LIMIT ?", (after, page)):
            after = int(rows[-1][0])
            yield [(str(i), str(f), int(s), str(h)) for _, i, f, s, h in rows]

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
