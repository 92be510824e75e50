"""`pichub migrate`, and backup/restore of an instance on PostgreSQL or S3.

Each is a `transfer` from one pair of engines to another:

- migrate: a consistent snapshot of the SQLite database of `data_dir` (taken while it
  serves) and its `blobs/` → the PostgreSQL database of `--to-database` and, with
  `--to-storage s3`, the bucket of `[storage.s3]`. The work directory
  `<data_dir>/migrate/` keeps the snapshot and the journal of verified files until the
  next run;
- backup: the configured database and storage → a new backup directory in the usual
  layout (`pichub.db`, `blobs/`, `manifest.json`, the server key), so `pichub restore`
  can bring it back on either kind of install;
- restore: a backup directory → the configured (empty) database and storage.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pichub.blobs import atomic_write, fsync_dir
from pichub.db.database import Database
from pichub.db.snapshot import Snapshot, SnapshotError, copy_online
from pichub.db.transfer import count, drop_images
from pichub.sealing import copy_key
from pichub.services.backup import (
    BACKUP_MARKER,
    BLOBS_DIR,
    DB_FILE,
    MANIFEST_FILE,
    BackupError,
    Manifest,
    pichub_version,
    read_manifest,
)
from pichub.services.transfer import (
    Directory,
    Files,
    Report,
    TransferError,
    copy_files,
    copy_rows,
    image_ids,
)
from pichub.timeutil import iso

WORK_DIR = "migrate"
RESTORE_MARKER = ".restore-from"  # in the work directory of a restore into PostgreSQL/S3


@dataclass(frozen=True)
class Moved:
    """What a move copied."""

    rows: dict[str, int]
    files: int
    bytes: int
    vanished: frozenset[str] = frozenset()  # images deleted at the source during the copy


async def move(source: Database, source_files: Files, dest: Database,
               dest_files: Files | None, work: Path, report: Report, *,
               working: bool = True) -> Moved:
    """Every row, then every file of every image, verified (see services.transfer); no
    files with `dest_files` None (they stay where they are), no working copies without
    `working`."""
    rows = await copy_rows(source, dest, report)
    if dest_files is None:
        return Moved(rows, 0, 0)
    files = await copy_files(await image_ids(source), source_files, dest_files, work, report,
                             working=working)
    return Moved(rows, files.total, files.total_bytes, frozenset(files.vanished))


async def migrate(data_dir: Path, dest: Database, dest_files: Files | None,
                  source_files: Files, report: Report) -> Moved:
    """Copy the single-box instance in `data_dir` into `dest` and `dest_files`."""
    work = data_dir / WORK_DIR
    snapshot = work / DB_FILE
    try:
        await asyncio.to_thread(_snapshot, data_dir / DB_FILE, snapshot)
    except SnapshotError as exc:
        raise TransferError(str(exc)) from None
    source = await Database.open(snapshot)
    try:
        return await move(source, source_files, dest, dest_files, work, report)
    finally:
        await source.close()


def _snapshot(source: Path, snapshot: Path) -> None:
    """A fresh consistent copy of the live database at `source` into `snapshot`."""
    snapshot.parent.mkdir(exist_ok=True)
    for stale in (snapshot, snapshot.with_name(snapshot.name + "-wal"),
                  snapshot.with_name(snapshot.name + "-shm")):
        stale.unlink(missing_ok=True)
    copy_online(source, snapshot)


async def backup(db: Database, files: Files, data_dir: Path, dest: Path,
                 report: Report) -> Manifest:
    """Copy the instance on `db` and `files` into the backup directory `dest` (absent,
    empty, or holding an unfinished backup made by this function, which continues)."""
    await asyncio.to_thread(_claim_backup_dest, dest)
    target = await Database.open(dest / DB_FILE)
    try:
        moved = await move(db, files, target, Directory(dest / BLOBS_DIR), dest / WORK_DIR,
                           report, working=False)  # as a single box's: made again when needed
        if moved.vanished:  # deleted during the backup: left out, as `pichub backup` does
            await drop_images(target, sorted(moved.vanished))
        schema = int(await target.fetchval("PRAGMA user_version"))
    finally:
        await target.close()
    images, _files, size = await asyncio.to_thread(_totals, dest / DB_FILE)
    manifest = Manifest(created_at=iso(), pichub_version=pichub_version(), schema_version=schema,
                        images=images, bytes=size, dropped=sorted(moved.vanished))
    await asyncio.to_thread(_finish_backup, data_dir, dest, manifest)
    return manifest


def _totals(path: Path) -> tuple[int, int, int]:
    """(images, files, bytes) as `pichub restore` counts them in the backup's database."""
    with Snapshot(path) as snapshot:
        return snapshot.image_totals()


def _claim_backup_dest(dest: Path) -> None:
    """Refuse a destination holding anything but an unfinished backup of this kind; mark it."""
    dest.mkdir(parents=True, exist_ok=True)
    if (dest / MANIFEST_FILE).exists():
        raise BackupError(f"backup destination {dest} is not empty: it holds a finished "
                          "backup; choose another destination")
    if any(dest.iterdir()) and not (dest / BACKUP_MARKER).exists():
        raise BackupError(f"backup destination {dest} is not empty")
    atomic_write(dest / BACKUP_MARKER, json.dumps({"format": "pichub-backup-in-progress",
                                                   "source": "database"}).encode())


def _finish_backup(data_dir: Path, dest: Path, manifest: Manifest) -> None:
    """The server key in, everything durable, then the manifest that marks it complete."""
    shutil.rmtree(dest / WORK_DIR, ignore_errors=True)
    copy_key(data_dir, dest)
    os.sync()
    atomic_write(dest / MANIFEST_FILE, manifest.to_json().encode())
    (dest / BACKUP_MARKER).unlink()
    fsync_dir(dest)


async def restore(src: Path, db: Database, files: Files, data_dir: Path,
                  report: Report) -> Manifest:
    """Copy the backup in `src` into `db` and `files`, which must be empty (or hold an
    unfinished restore of the same backup, which continues)."""
    manifest = await asyncio.to_thread(read_manifest, src)
    work = data_dir / WORK_DIR
    if not await asyncio.to_thread(_resuming, work, src) and await count(db, "users"):
        raise BackupError("restore target is not empty: the database has users")
    copy = await asyncio.to_thread(_stage_restore, work, src)
    source = await Database.open(copy)
    try:
        await move(source, Directory(src / BLOBS_DIR), db, files, work, report)
    finally:
        await source.close()
    await asyncio.to_thread(copy_key, src, data_dir)
    await asyncio.to_thread(shutil.rmtree, work, True)
    return manifest


def _resuming(work: Path, src: Path) -> bool:
    """Whether `work` holds an unfinished restore of the backup in `src`."""
    marker = work / RESTORE_MARKER
    return marker.exists() and marker.read_text() == str(src.resolve())


def _stage_restore(work: Path, src: Path) -> Path:
    """Mark the restore of `src` under way; a copy of its database to read (opening
    migrates a backup of an older PicHub: never the backup's own file)."""
    work.mkdir(parents=True, exist_ok=True)
    atomic_write(work / RESTORE_MARKER, str(src.resolve()).encode())
    copy = work / DB_FILE
    shutil.copyfile(src / DB_FILE, copy)
    return copy

