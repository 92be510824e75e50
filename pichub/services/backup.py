"""Backup and restore of a data directory (README: Running): plain blocking functions.

A backup is laid out like a data directory, without `cache/` and `tmp/`:

    DEST/pichub.db        the database, copied with SQLite's online backup API
    DEST/blobs/ab/cd/…    every original the snapshot refers to, and every kept
                          original upload (`<id>.orig.heic`, checked by its own sha256)
    DEST/manifest.json    written last: a backup without it is incomplete

Consistency with a running server: the database snapshot is taken first, in
one step, then the blobs it refers to are copied. Blobs are immutable and an
upload writes its blob before committing its row, so every row in the
snapshot had its blob. A blob that is missing by the time it is copied was
deleted after the snapshot (the delete commits the row removal first, then
unlinks): its row is dropped from the backup's database too, as it is gone
from the live instance anyway, and the backup reports it. Webhook events of
such a delete may be missing from the backup; the image is gone either way.

Restore checks the manifest, copies everything into `D/.restore-tmp`,
verifies each blob against the sha256 in its row and the database with
`PRAGMA integrity_check`, flushes, then moves `blobs/` and finally
`pichub.db` into place: an interrupted restore leaves no database, so the
directory never looks like a working instance.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pichub.blobs import BlobStore, atomic_write, fsync_dir
from pichub.db.snapshot import Snapshot, SnapshotError, copy_online, latest_schema
from pichub.imaging.formats import FORMATS, SOURCE_ONLY, ext_of, source_ext
from pichub.timeutil import iso

DB_FILE = "pichub.db"
BLOBS_DIR = "blobs"
MANIFEST_FILE = "manifest.json"
RESTORE_TMP = ".restore-tmp"
FORMAT = "pichub-backup"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


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


@dataclass(frozen=True)
class _Blob:
    id: str
    ext: str
    size: int
    sha256: str
    original: bool = False  # a kept original upload (`<id>.orig.<ext>`), not the stored file


# --- backup ---------------------------------------------------------------------------------

def backup(data_dir: Path, dest: Path) -> Manifest:
    """Copy the instance in `data_dir` (running or stopped) into `dest` (absent or empty).

    On failure `dest` is emptied again (it was empty before), so the command can be rerun.
    """
    source_db = data_dir / DB_FILE
    if not source_db.is_file():
        raise BackupError(f"no PicHub database at {source_db}")
    _require_empty(dest, "backup destination")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        manifest = _backup_into(data_dir, dest)
        os.sync()  # blobs and database durable before the manifest marks the backup complete
        atomic_write(dest / MANIFEST_FILE, manifest.to_json().encode())
    except BaseException:
        _empty(dest)
        raise
    return manifest


def _backup_into(data_dir: Path, dest: Path) -> Manifest:
    try:
        copy_online(data_dir / DB_FILE, dest / DB_FILE)
        with Snapshot(dest / DB_FILE) as snapshot:
            blobs = _blobs(snapshot)
            _require_space(dest, sum(b.size for b in blobs))
            dropped, damaged = _copy_blobs(blobs, BlobStore(data_dir / BLOBS_DIR),
                                           BlobStore(dest / BLOBS_DIR))
            snapshot.drop_images(dropped)
            snapshot.make_self_contained()
            kept = [b for b in blobs if b.id not in dropped]
            return Manifest(
                created_at=iso(), pichub_version=_version(),
                schema_version=snapshot.schema_version(),
                images=sum(not b.original for b in kept),
                bytes=sum(b.size for b in kept), dropped=sorted(dropped), damaged=sorted(damaged),
            )
    except SnapshotError as exc:
        raise BackupError(str(exc)) from None


def _copy_blobs(blobs: list[_Blob], source: BlobStore,
                target: BlobStore) -> tuple[set[str], set[str]]:
    """Copy every blob; returns (ids whose blob vanished, ids whose bytes mismatch)."""
    dropped: set[str] = set()
    damaged: set[str] = set()
    for blob in blobs:
        try:
            size, digest = _copy_blob(blob, source, target)
        except FileNotFoundError:
            dropped.add(blob.id)
            continue
        if (size, digest) != (blob.size, blob.sha256):
            damaged.add(blob.id)
    return dropped, damaged


# --- restore --------------------------------------------------------------------------------

def restore(src: Path, data_dir: Path) -> Manifest:
    """Restore the backup in `src` into `data_dir` (absent, or empty)."""
    manifest = read_manifest(src)
    _require_empty(data_dir, "restore target", ignore=RESTORE_TMP)
    tmp = data_dir / RESTORE_TMP
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted restore
    tmp.mkdir(parents=True)
    try:
        _require_space(tmp, manifest.bytes)
        _restore_into(src, tmp, manifest)
        os.sync()
        (tmp / BLOBS_DIR).rename(data_dir / BLOBS_DIR)
        (tmp / DB_FILE).rename(data_dir / DB_FILE)  # last: the instance is complete
        tmp.rmdir()
        fsync_dir(data_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(data_dir / BLOBS_DIR, ignore_errors=True)
        raise
    return manifest


def _restore_into(src: Path, tmp: Path, manifest: Manifest) -> None:
    source_db = src / DB_FILE
    if not source_db.is_file():
        raise BackupError(f"backup is damaged: {source_db} is missing")
    shutil.copyfile(source_db, tmp / DB_FILE)
    try:
        with Snapshot(tmp / DB_FILE) as snapshot:
            _check_database(snapshot, manifest)
            blobs = _blobs(snapshot)
    except SnapshotError as exc:
        raise BackupError(f"backup is damaged: {exc}") from None
    images = sum(not b.original for b in blobs)
    if images != manifest.images:
        raise BackupError(f"backup is damaged: the manifest says {manifest.images} images, "
                          f"the database has {images}")
    source, target = BlobStore(src / BLOBS_DIR), BlobStore(tmp / BLOBS_DIR)
    for blob in blobs:
        _restore_blob(blob, source, target, manifest)
    total = sum(b.size for b in blobs)
    if total != manifest.bytes:
        raise BackupError(f"backup is damaged: {total} bytes of blobs, manifest says "
                          f"{manifest.bytes}")


def _restore_blob(blob: _Blob, source: BlobStore, target: BlobStore, manifest: Manifest) -> None:
    try:
        size, digest = _copy_blob(blob, source, target)
    except FileNotFoundError:
        raise BackupError(f"backup is damaged: blob of image {blob.id} is missing") from None
    if (size, digest) != (blob.size, blob.sha256) and blob.id not in manifest.damaged:
        raise BackupError(f"backup is damaged: blob of image {blob.id} does not match "
                          "its sha256")


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

def _require_empty(path: Path, what: str, ignore: str | None = None) -> None:
    if path.exists() and not path.is_dir():
        raise BackupError(f"{what} {path} is not a directory")
    if path.is_dir() and any(e.name != ignore for e in path.iterdir()):
        raise BackupError(f"{what} {path} is not empty")


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


def _blobs(snapshot: Snapshot) -> list[_Blob]:
    blobs = []
    for image_id, fmt, size, sha256 in snapshot.images():
        if fmt not in FORMATS:
            raise BackupError(f"image {image_id} has an unknown format {fmt!r}")
        blobs.append(_Blob(image_id, ext_of(fmt), size, sha256))
    for image_id, fmt, size, sha256 in snapshot.originals():
        if fmt not in SOURCE_ONLY:
            raise BackupError(f"image {image_id} has an unknown original format {fmt!r}")
        blobs.append(_Blob(image_id, source_ext(fmt), size, sha256, original=True))
    return blobs


def _copy_blob(blob: _Blob, source: BlobStore, target: BlobStore) -> tuple[int, str]:
    try:
        if blob.original:
            paths = source.original_path(blob.id, blob.ext), target.original_path(blob.id,
                                                                                   blob.ext)
        else:
            paths = source.path(blob.id, blob.ext), target.path(blob.id, blob.ext)
    except ValueError:
        raise BackupError(f"image {blob.id!r} has an id that cannot name a blob") from None
    return _copy_file(*paths)


def _copy_file(source: Path, target: Path) -> tuple[int, str]:
    """Copy bytes, returning (size, sha256 hex); FileNotFoundError if `source` is gone."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as fin:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def _version() -> str:
    try:
        return metadata.version("pichub")
    except metadata.PackageNotFoundError:
        return "unknown"
