"""SQL for backup and restore: a database file opened without the server, plain blocking.

`copy_online` takes SQLite's online backup of a live database (a consistent
read transaction; writers keep going in WAL mode). `Snapshot` is such a copy,
or a backup's database, opened to read and trim it. sqlite3 errors become
`SnapshotError`, so callers need not know the driver.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from importlib import resources
from pathlib import Path
from types import TracebackType


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

    def images(self) -> list[tuple[str, str, int, str]]:
        """(id, format, size, sha256) of every image, oldest first."""
        try:
            rows = self._conn.execute(
                "SELECT id, format, size, sha256 FROM images ORDER BY seq").fetchall()
        except sqlite3.Error as exc:
            raise SnapshotError(f"not a PicHub database: {exc}") from None
        return [(str(i), str(f), int(s), str(h)) for i, f, s, h in rows]

    def originals(self) -> list[tuple[str, str, int, str]]:
        """(id, format, size, sha256) of every kept original upload (a HEIC beside its
        stored image), oldest first; none in a database from before they existed."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(images)")}
        if "original_format" not in columns:
            return []
        rows = self._conn.execute(
            "SELECT id, original_format, original_size, original_sha256 FROM images"
            " WHERE original_format IS NOT NULL ORDER BY seq").fetchall()
        return [(str(i), str(f), int(s), str(h)) for i, f, s, h in rows]

    def drop_images(self, ids: set[str]) -> None:
        """Remove these images' rows (their blobs vanished after the snapshot)."""
        with self._conn:
            self._conn.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in sorted(ids)])

    def make_self_contained(self) -> None:
        """One file with no `-wal` beside it."""
        self._conn.execute("PRAGMA journal_mode=DELETE")

    def integrity(self) -> str:
        """`PRAGMA integrity_check`: "ok" when the file is sound."""
        try:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise SnapshotError(f"the database cannot be read ({exc})") from None

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])
