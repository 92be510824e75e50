"""Backup and restore of a data directory (README: Running): plain blocking functions.

A backup is laid out like a data directory, without `cache/` and `tmp/`:

    DEST/pichub.db        the database, copied with SQLite's online backup API
    DEST/blobs/ab/cd/…    every original the snapshot refers to, and every kept
                          original upload (`<id>.orig.heic`, checked by its own sha256)
    DEST/secret.key       the server key (pichub.sealing), when it is a file and not
                          `auth.secret_key`: without it two-factor sign-in cannot be read
    DEST/manifest.json    written last: a backup without it is incomplete

Consistency with a running server: the database snapshot is taken first, in
one step, then the blobs it refers to are copied. Blobs are immutable and an
upload writes its blob before committing its row, so every row in the
snapshot had its blob. A blob that is missing by the time it is copied was
deleted after the snapshot (the delete commits the row removal first, then
unlinks): its row is dropped from the backup's database too, as it is gone
from the live instance anyway, and the backup reports it. Webhook events of
such a delete may be missing from the backup; the image is gone either way.
The copy reads only the snapshot and the blob files, so it holds no lock on
the live database; `backup_copy` streams the rows a page at a time and
copies and hashes the blobs in a bounded pool of threads. Blobs that are one
file at the source (de-duplicated uploads) are one file in the backup, and
again after a restore. A blob missing at copy time drops its image from the
backup's database whichever of its files (stored, kept original) it was.

Resuming. While a backup is written, `DEST/.backup-in-progress` names its
source and its snapshot (when it was taken, its size and sha256). Run again
with the same arguments, a backup continues: the snapshot is kept if it is
still the one the marker names (else a new one is taken and blobs it does
not name are removed), and every blob already in DEST with its row's size
and sha256 (read back and hashed) is kept; the rest is copied. The manifest
is still written last, then the marker removed; a DEST with a manifest is a
finished backup and is refused, never resumed. The manifest's `created_at`
is the time of the snapshot: what the backup holds.

Restore checks the manifest, copies everything into `D/.restore-tmp`,
verifies each blob against the sha256 in its row and the database with
`PRAGMA integrity_check`, flushes, then moves `blobs/` and finally
`pichub.db` into place: an interrupted restore leaves no database, so the
directory never looks like a working instance. `.restore-tmp` holds a marker
naming the backup (its path and the sha256 of its manifest); a restore run
again from the same backup keeps the verified blobs already there (also when
it stopped between its two renames), from another backup it starts over.

A refusal (`BackupError`: a damaged backup, a row that names no blob) leaves
DEST, or D, as empty as it was; any other failure (Ctrl-C, a full disk)
leaves the work done so far for the next run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pichub.blobs import atomic_write, fsync_dir, sha256_file
from pichub.db.snapshot import Snapshot, SnapshotError, copy_online, latest_schema
from pichub.sealing import KEY_FILE, copy_key
from pichub.services.backup_copy import (
    WORKERS,
    Blob,
    CopyError,
    Fate,
    Interrupted,
    Progress,
    Report,
    copy_all,
)
from pichub.timeutil import iso

__all__ = ["WORKERS", "BackupError", "Interrupted", "Manifest", "Progress", "backup",
           "read_manifest", "restore"]

DB_FILE = "pichub.db"
BLOBS_DIR = "blobs"
MANIFEST_FILE = "manifest.json"
BACKUP_MARKER = ".backup-in-progress"
RESTORE_TMP = ".restore-tmp"
RESTORE_MARKER = ".restore-in-progress"  # inside RESTORE_TMP
FORMAT = "pichub-backup"
FORMAT_VERSION = 1


class BackupError(Exception):
    """Backup or restore refused or failed; the message is one line for the user."""


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` records about a backup."""

    created_at: str
    pichub_version: str
    schema_version: int
    images: int
    bytes: int
    dropped: list[str] = field(default_factory=list)  # rows whose blob was deleted meanwhile
    damaged: list[str] = field(default_factory=list)  # blobs not matching their sha256 at source

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)},
                          indent=2) + "\n"


def _silent(_progress: Progress) -> None:
    pass


# --- backup ---------------------------------------------------------------------------------

def backup(data_dir: Path, dest: Path, report: Report = _silent, *, workers: int = WORKERS,
           stop: threading.Event | None = None) -> Manifest:
    """Copy the instance in `data_dir` (running or stopped) into `dest`: absent, empty, or
    holding an interrupted backup of `data_dir`, which is continued."""
    source_db = data_dir / DB_FILE
    if not source_db.is_file():
        raise BackupError(f"no PicHub database at {source_db}")
    _require_dir(dest, "backup destination")
    dest.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest, "a backup is being written into"):
        marker = _backup_marker(dest, data_dir)
        try:
            return _backup_into(data_dir, dest, marker, report, workers, stop)
        except BackupError:
            _empty(dest)  # it was empty, or held only this backup: a rerun starts clean
            raise


def _backup_marker(dest: Path, data_dir: Path) -> dict[str, Any] | None:
    """The marker of the interrupted backup in `dest` (None if `dest` is empty)."""
    if (dest / MANIFEST_FILE).exists():
        raise BackupError(f"backup destination {dest} is not empty: it holds a finished "
                          "backup; choose another destination")
    marker = _read_marker(dest / BACKUP_MARKER)
    if marker is None:
        _require_empty(dest, "backup destination")
        return None
    if marker.get("source") != str(data_dir.resolve()):
        raise BackupError(f"backup destination {dest} holds an unfinished backup of "
                          f"{marker.get('source')}, not of {data_dir}")
    return marker


def _backup_into(data_dir: Path, dest: Path, marker: dict[str, Any] | None, report: Report,
                 workers: int, stop: threading.Event | None) -> Manifest:
    fresh = not (dest / BLOBS_DIR).exists()
    taken = _resumable_snapshot(dest, marker)
    retaken = taken is None
    if taken is None:
        taken = _take_snapshot(data_dir, dest)
        atomic_write(dest / BACKUP_MARKER, _marker_json(
            format=f"{FORMAT}-in-progress", source=str(data_dir.resolve()), snapshot=taken))
    kept = _Totals()
    try:
        with Snapshot(dest / DB_FILE) as snapshot:
            _images, files, size = snapshot.image_totals()
            if fresh:
                _require_space(dest, size)
            copy_all(snapshot.blob_pages(), data_dir / BLOBS_DIR, dest / BLOBS_DIR,
                     Progress(files, size), kept.judge, report, workers=workers, stop=stop)
            snapshot.drop_images(kept.dropped)
            if kept.dropped or (retaken and not fresh):  # blobs no row names may be there
                _sweep(snapshot, dest / BLOBS_DIR)
            snapshot.make_self_contained()
            schema = snapshot.schema_version()
            images, _files, size = snapshot.image_totals()
    except SnapshotError as exc:
        raise BackupError(str(exc)) from None
    except CopyError as exc:
        raise BackupError(str(exc)) from None
    copy_key(data_dir, dest)  # the server key (two-factor secrets), when it is a file
    os.sync()  # blobs and database durable before the manifest marks the backup complete
    manifest = Manifest(
        created_at=str(taken["taken_at"]), pichub_version=pichub_version(), schema_version=schema,
        images=images, bytes=size, dropped=sorted(kept.dropped),
        damaged=sorted(kept.damaged - kept.dropped))
    atomic_write(dest / MANIFEST_FILE, manifest.to_json().encode())
    (dest / BACKUP_MARKER).unlink()
    fsync_dir(dest)
    return manifest


@dataclass
class _Totals:
    """What went wrong with the backup's blobs, by image."""

    dropped: set[str] = field(default_factory=set)  # a file gone: deleted during the backup
    damaged: set[str] = field(default_factory=set)

    def judge(self, blob: Blob, fate: Fate) -> None:
        if fate is Fate.MISSING:  # its stored file and its kept original go together
            self.dropped.add(blob.id)
        elif fate is Fate.MISMATCH:
            self.damaged.add(blob.id)


def _resumable_snapshot(dest: Path, marker: dict[str, Any] | None) -> dict[str, Any] | None:
    """The marker's snapshot if the database in `dest` is still that file, byte for byte."""
    taken = marker.get("snapshot") if marker else None
    if not isinstance(taken, dict):
        return None
    try:
        identity = _file_identity(dest / DB_FILE)
    except FileNotFoundError:
        return None
    return taken if identity == {k: taken.get(k) for k in identity} else None


def _take_snapshot(data_dir: Path, dest: Path) -> dict[str, Any]:
    """A new snapshot of the live database into `dest`; its identity for the marker."""
    for suffix in ("", "-wal", "-shm", "-journal"):  # a snapshot cut short
        (dest / (DB_FILE + suffix)).unlink(missing_ok=True)
    taken_at = iso()
    try:
        copy_online(data_dir / DB_FILE, dest / DB_FILE)
        with Snapshot(dest / DB_FILE) as snapshot:
            snapshot.make_self_contained()  # reading it now leaves the file as it is
    except SnapshotError as exc:
        raise BackupError(str(exc)) from None
    return {"taken_at": taken_at, **_file_identity(dest / DB_FILE)}


def _file_identity(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def _sweep(snapshot: Snapshot, root: Path) -> None:
    """Remove the blobs under `root` that name no image of `snapshot`."""
    for batch in _batches(_walk_files(root), 500):
        known = snapshot.known_ids([image_id for image_id, _ in batch])
        for image_id, path in batch:
            if image_id not in known:
                path.unlink()


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield name.split(".", 1)[0], Path(dirpath, name)


def _batches(items: Iterator[tuple[str, Path]], size: int) -> Iterator[list[tuple[str, Path]]]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- restore --------------------------------------------------------------------------------

def restore(src: Path, data_dir: Path, report: Report = _silent, *, workers: int = WORKERS,
            stop: threading.Event | None = None) -> Manifest:
    """Restore the backup in `src` into `data_dir`: absent, empty, or holding an interrupted
    restore, which is continued if it was from the same backup."""
    manifest = read_manifest(src)
    _require_dir(data_dir, "restore target")
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / RESTORE_TMP
    with _exclusive(data_dir, "a restore is being written into"):
        marker = {"format": f"{FORMAT}-restore-in-progress", "backup": str(src.resolve()),
                  "manifest_sha256": sha256_file(src / MANIFEST_FILE)}
        resumed = _read_marker(tmp / RESTORE_MARKER) == marker
        moved = resumed and not (tmp / BLOBS_DIR).exists()  # stopped between the two renames?
        _require_empty(data_dir, "restore target",  # (a key is moved in before the blobs)
                       ignore={RESTORE_TMP, KEY_FILE, BLOBS_DIR} if moved
                       else {RESTORE_TMP, KEY_FILE})
        if moved and (data_dir / BLOBS_DIR).is_dir():
            (data_dir / BLOBS_DIR).rename(tmp / BLOBS_DIR)
        elif not resumed:
            shutil.rmtree(tmp, ignore_errors=True)  # left by a restore of another backup
            tmp.mkdir()
            atomic_write(tmp / RESTORE_MARKER, _marker_json(**marker))
        try:
            if not resumed:
                _require_space(tmp, manifest.bytes)
            _restore_into(src, tmp, manifest, report, workers, stop)
            os.sync()
            if (tmp / KEY_FILE).exists():
                (tmp / KEY_FILE).rename(data_dir / KEY_FILE)
            (tmp / BLOBS_DIR).rename(data_dir / BLOBS_DIR)
            (tmp / DB_FILE).rename(data_dir / DB_FILE)  # last: the instance is complete
            (tmp / RESTORE_MARKER).unlink()
            tmp.rmdir()
            fsync_dir(data_dir)
        except BackupError:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(data_dir / BLOBS_DIR, ignore_errors=True)
            raise
    return manifest


def _restore_into(src: Path, tmp: Path, manifest: Manifest, report: Report, workers: int,
                  stop: threading.Event | None) -> None:
    source_db = src / DB_FILE
    if not source_db.is_file():
        raise BackupError(f"backup is damaged: {source_db} is missing")
    shutil.copyfile(source_db, tmp / DB_FILE)
    copy_key(src, tmp)
    damaged = set(manifest.damaged)

    def judge(blob: Blob, fate: Fate) -> None:
        if fate is Fate.MISSING:
            raise BackupError(f"backup is damaged: blob of image {blob.id} is missing")
        if fate is Fate.MISMATCH and blob.id not in damaged:
            raise BackupError(f"backup is damaged: blob of image {blob.id} does not match "
                              "its sha256")

    try:
        with Snapshot(tmp / DB_FILE) as snapshot:
            _check_database(snapshot, manifest)
            images, files, size = snapshot.image_totals()
            _check_totals(images, size, manifest)
            copy_all(snapshot.blob_pages(), src / BLOBS_DIR, tmp / BLOBS_DIR,
                     Progress(files, size), judge, report, workers=workers, stop=stop)
    except SnapshotError as exc:
        raise BackupError(f"backup is damaged: {exc}") from None
    except CopyError as exc:
        raise BackupError(f"backup is damaged: {exc}") from None


def _check_totals(images: int, size: int, manifest: Manifest) -> None:
    if images != manifest.images:
        raise BackupError(f"backup is damaged: the manifest says {manifest.images} images, "
                          f"the database has {images}")
    if size != manifest.bytes:
        raise BackupError(f"backup is damaged: {size} bytes of blobs, manifest says "
                          f"{manifest.bytes}")


def _check_database(snapshot: Snapshot, manifest: Manifest) -> None:
    result = snapshot.integrity()
    if result != "ok":
        raise BackupError(f"backup is damaged: integrity_check says {result}")
    version = snapshot.schema_version()
    if version != manifest.schema_version:
        raise BackupError(f"backup is damaged: database schema {version}, manifest says "
                          f"{manifest.schema_version}")
    if version > latest_schema():
        raise BackupError(f"backup is from a newer PicHub (schema {version}, this version "
                          f"knows up to {latest_schema()}); upgrade PicHub first")


def read_manifest(src: Path) -> Manifest:
    """The manifest of the backup in `src`, checked field by field."""
    path = src / MANIFEST_FILE
    if not src.is_dir():
        raise BackupError(f"no backup at {src}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{src} is not a complete PicHub backup: no {MANIFEST_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"bad manifest {path}: {exc}") from None
    return _parse_manifest(data, path)


def _parse_manifest(data: Any, path: Path) -> Manifest:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"bad manifest {path}: not a PicHub backup manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"bad manifest {path}: unsupported format_version "
                          f"{data.get('format_version')!r} (this PicHub reads {FORMAT_VERSION})")
    fields = {"created_at": str, "pichub_version": str, "schema_version": int, "images": int,
              "bytes": int, "dropped": list, "damaged": list}
    for name, kind in fields.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BackupError(f"bad manifest {path}: {name} must be {kind.__name__}")
    return Manifest(**{name: data[name] for name in fields})


# --- shared ---------------------------------------------------------------------------------

def _require_dir(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise BackupError(f"{what} {path} is not a directory")


def _require_empty(path: Path, what: str, ignore: set[str] | None = None) -> None:
    if any(e.name not in (ignore or set()) for e in path.iterdir()):
        raise BackupError(f"{what} {path} is not empty")


@contextmanager
def _exclusive(path: Path, doing: str) -> Iterator[None]:
    """Hold an exclusive lock on the directory `path`: one backup or restore at a time."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"{doing} {path} by another process") from None
        yield
    finally:
        os.close(fd)


def _read_marker(path: Path) -> dict[str, Any] | None:
    """An in-progress marker (written atomically by `_marker_json`); None when absent."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"unreadable {path} ({exc}); remove its directory to start over") \
            from None
    return data if isinstance(data, dict) else None


def _marker_json(**fields: Any) -> bytes:
    return (json.dumps(fields, indent=2) + "\n").encode()


def _empty(path: Path) -> None:
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _require_space(path: Path, needed: int) -> None:
    free = shutil.disk_usage(path).free
    if needed > free:
        raise BackupError(f"not enough free space in {path}: need {needed >> 20} MB, "
                          f"have {free >> 20} MB")


def pichub_version() -> str:
    try:
        return metadata.version("pichub")
    except metadata.PackageNotFoundError:
        return "unknown"
