"""BlobStore: the stored originals, on disk, written the safe way.

This is the local file layer under `pichub.storage`: with the filesystem backend it is
where files live for good; with the S3 backend it holds the local copies of the bucket's
objects (same layout), a cache bounded by `storage.s3.local_cache_mb`.

Layout: `root/ab/cd/<id>.<ext>` (the first four characters of the id shard it),
with the image's working copies beside it as `<id>.w<level>.<ext>` and a kept
original upload (a HEIC stored as WebP or JPEG) as `<id>.orig.<ext>`: every file
of an image starts with its id, which is what the orphan sweep and `delete` go by.
A write goes to a temp file in the target directory, is fsynced, then renamed
over with `os.replace`, and the directory is fsynced, so a crash leaves either
the whole blob or no blob. All methods are blocking: call them in a thread.

De-duplication: an image whose bytes another image already has gets its names as
hard links to that image's files (`share`), so the bytes are on disk once. The file
system counts the references: deleting an image removes its names, and the bytes
go with the last name. Names are installed like writes (a temp name, then
`os.replace`), so a crash leaves a whole name or none, and the orphan sweep removes
names without a row as ever. Where links are impossible (another file system, FAT,
too many links) the bytes are written again.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

_ID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
_EXT = re.compile(r"^[a-z0-9]{2,5}$")
TMP_PREFIX = ".tmp-"
#: Between the id and the extension of a kept original upload: `<id>.orig.heic`.
ORIGINAL_INFIX = ".orig."


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in blocks (never whole into memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable_name: bool = True) -> None:
    """Write `data` to `path` so that readers see all of it or none of it.

    The data is fsynced before the rename; with `durable_name` the directory is fsynced
    after it too, so the new name survives a crash (the variant cache, which can always
    recompute, skips that).
    """
    _install(path, lambda fh: fh.write(data), durable_name)


def atomic_copy(source: Path, path: Path) -> None:
    """Copy the file at `source` to `path` with the guarantees of `atomic_write`."""
    with open(source, "rb") as src:
        _install(path, lambda fh: shutil.copyfileobj(src, fh, 1024 * 1024), True)


#: Why `os.link` may fail where writing the bytes again still works.
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES})


def atomic_link(source: Path, path: Path) -> bool:
    """Make `path` a hard link to the file at `source`, atomically and durably; False when
    `source` is gone or the file system cannot link it (the caller writes the bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{os.urandom(6).hex()}")
    try:
        os.link(source, tmp)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in _NO_LINK:
            return False
        raise
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return True


def _install(path: Path, fill: Callable[[BinaryIO], object], durable_name: bool) -> None:
    """Fill a temp file beside `path`, fsync it, rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable_name:
        fsync_dir(path.parent)


def working_path(original: Path, level: int, ext: str) -> Path:
    """Where the working copy at `level` of the original at `original` lives."""
    return original.with_name(f"{original.name.split('.', 1)[0]}.w{level}.{ext}")


def working_beside(original: Path) -> dict[int, Path]:
    """The working copies stored beside the original at `original`, by level."""
    prefix = original.name.split(".", 1)[0] + ".w"
    found: dict[int, Path] = {}
    try:
        entries = list(os.scandir(original.parent))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.startswith(prefix):
            level = entry.name[len(prefix):].split(".", 1)[0]
            if level.isascii() and level.isdigit():
                found[int(level)] = Path(entry.path)
    return found


class BlobStore:
    """Originals keyed by image id and extension."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, image_id: str, ext: str) -> Path:
        if not _ID.match(image_id) or not _EXT.match(ext):
            raise ValueError(f"bad blob name {image_id!r}.{ext!r}")
        path = (self.root / image_id[:2] / image_id[2:4] / f"{image_id}.{ext}").resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("blob path escapes the store")
        return path

    def put(self, image_id: str, ext: str, data: bytes) -> Path:
        path = self.path(image_id, ext)
        atomic_write(path, data)
        return path

    def share(self, donor_id: str, image_id: str, ext: str) -> bool:
        """Give `image_id` the stored file of `donor_id` (same bytes, same `ext`) and its
        working copies, as hard links; False (nothing changed) when the donor's file is
        gone or cannot be linked."""
        if not atomic_link(self.path(donor_id, ext), self.path(image_id, ext)):
            return False
        for level, copy in self.working_copies(donor_id).items():
            atomic_link(copy, working_path(self.path(image_id, ext), level,
                                           copy.name.rsplit(".", 1)[1]))
        return True

    def share_original(self, donor_id: str, image_id: str, ext: str) -> bool:
        """Give `image_id` the kept original upload of `donor_id` as a hard link."""
        return atomic_link(self.original_path(donor_id, ext), self.original_path(image_id, ext))

    def put_file(self, image_id: str, ext: str, source: Path) -> Path:
        """Move the file at `source` into the store (same guarantees as `put`, no copy in
        memory): its data is fsynced, then it is renamed into place and the directory
        fsynced. Across file systems it is copied to a temp name first."""
        return self._move_in(self.path(image_id, ext), source)

    def _move_in(self, path: Path, source: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(source, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            atomic_copy(source, path)
            return path
        fsync_dir(path.parent)
        return path

    def delete(self, image_id: str, ext: str) -> None:
        """The original, its working copies and its kept original upload."""
        path = self.path(image_id, ext)
        for copy in self.working_copies(image_id).values():
            copy.unlink(missing_ok=True)
        for kept in self.originals(image_id):
            kept.unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    # --- kept original uploads: `<id>.orig.<ext>` beside the stored image ---------------------

    def original_path(self, image_id: str, ext: str) -> Path:
        """Where the original upload of `image_id`, in format `ext`, is kept."""
        return self.path(image_id, ext).with_name(f"{image_id}{ORIGINAL_INFIX}{ext}")

    def put_original_file(self, image_id: str, ext: str, source: Path) -> Path:
        """Move the uploaded file at `source` in as the kept original (as `put_file`)."""
        return self._move_in(self.original_path(image_id, ext), source)

    def originals(self, image_id: str) -> list[Path]:
        """The kept original uploads of `image_id` on disk (none, or one)."""
        prefix = image_id + ORIGINAL_INFIX
        try:
            entries = list(os.scandir(self.path(image_id, "jpg").parent))
        except FileNotFoundError:
            return []
        return [Path(entry.path) for entry in entries if entry.name.startswith(prefix)]

    def files_of(self, image_id: str) -> list[Path]:
        """Every file of `image_id` on disk: stored file, working copies, kept original."""
        prefix = image_id + "."
        try:
            entries = list(os.scandir(self.path(image_id, "jpg").parent))
        except FileNotFoundError:
            return []
        return [Path(entry.path) for entry in entries if entry.name.startswith(prefix)]

    def relative(self, path: Path) -> str:
        """`path` (a file of the store) as `ab/cd/<name>`, the same on every machine."""
        return path.relative_to(self.root).as_posix()

    # --- working copies (imaging.working): `<id>.w<level>.<ext>` beside the original ---------

    def put_working(self, image_id: str, level: int, ext: str, data: bytes) -> Path:
        path = working_path(self.path(image_id, ext), level, ext)
        atomic_write(path, data)
        return path

    def working_copies(self, image_id: str) -> dict[int, Path]:
        """The working copies of `image_id` on disk, by level."""
        return working_beside(self.path(image_id, "jpg"))

    def walk(self) -> Iterator[Path]:
        """Every file under the store, temp files included."""
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                yield Path(dirpath) / name

    def batches(self, size: int) -> Iterator[list[Path]]:
        """Every file under the store (temp files included), `size` at a time, for a sweep
        in steps: each `next` reads only as many directories as it needs (no stat)."""
        batch: list[Path] = []
        for path in self.walk():
            batch.append(path)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def owner(path: Path) -> str:
    """The image id a file of the store belongs to: `<id>.<ext>` and its working copies
    `<id>.w<level>.<ext>` alike."""
    return path.name.split(".", 1)[0]


def unchanged_since(paths: Iterable[Path], moment: float) -> list[Path]:
    """Those of `paths` neither written nor moved since `moment` (a `time.time()`), by
    their mtime and their ctime: a file moved into the store keeps its mtime, but the
    rename sets its ctime. Files gone meanwhile are left out. Blocking."""
    found = []
    for path in paths:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if max(st.st_mtime, st.st_ctime) < moment:
            found.append(path)
    return found


def remove(paths: Iterable[Path]) -> None:
    """Unlink `paths` (those already gone too). Blocking."""
    for path in paths:
        path.unlink(missing_ok=True)
