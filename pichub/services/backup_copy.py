"""The blob copy of a backup or restore: many small files, copied and hashed side by side.

Rows come in pages (`Snapshot.blob_pages`), are cut into chunks of `CHUNK` blobs and
handed to a pool of threads; at most `4 × workers` chunks are in flight, so memory stays
flat whatever the library size. File I/O and hashlib release the GIL, so the threads
overlap on every core. The results come back in order to the calling thread, which
judges each blob (a backup drops or reports it, a restore refuses) and counts progress.

A blob already at its target with the row's size and sha256 (read back and hashed, not
trusted) is kept as it is: that is how an interrupted backup or restore resumes. Anything
else at the target (a partial or damaged copy) is overwritten. Nothing here fsyncs: the
caller flushes everything once at the end.

Blobs that are one file at the source (hard links: uploads of the same bytes share their
files, see blobs.BlobStore.share) become one file at the target: the first name met is
copied, the others are linked to it (`_Links`), so a backup, and a restore from it, take
the disk space the instance takes, not once per name.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pichub.blobs import ORIGINAL_INFIX
from pichub.db.snapshot import Row
from pichub.imaging.formats import FORMATS, SOURCE_ONLY, ext_of, source_ext

CHUNK = 64  # blobs per task: enough to make the pool's own cost per blob negligible
WORKERS = min(16, 4 * (os.cpu_count() or 1))  # small files: waiting on the disk, not the CPU
_BUFFER = 1 << 20
_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW  # a blob is a file, never a link out
_ID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")  # BlobStore.path's rule: no "/", no ".."


class CopyError(Exception):
    """A row that cannot be copied (its id or format names no blob); the message says why."""


class Interrupted(Exception):
    """Stopped on request (Ctrl-C); what was copied stays, for the next run."""


class Fate(enum.Enum):
    """What happened to one blob."""

    COPIED = "copied"  # copied, and its bytes match the row
    KEPT = "kept"  # already at the target with the right size and sha256
    MISSING = "missing"  # no file at the source
    MISMATCH = "mismatch"  # copied, but its size or sha256 differs from the row


@dataclass(frozen=True, slots=True)
class Blob:
    """One blob file of an image (its stored file, or its kept original upload): where it
    lives under a blob root, and what it must hash to."""

    id: str
    rel: str
    size: int
    sha256: str
    original: bool = False


def blob_of(image_id: str, fmt: str, size: int, sha256: str, original: bool) -> Blob:
    """The blob of a snapshot row, with the path `BlobStore` gives it: `ab/cd/<id>.<ext>`,
    or `ab/cd/<id>.orig.<ext>` for a kept original upload."""
    if fmt not in (SOURCE_ONLY if original else FORMATS):
        kind = "original format" if original else "format"
        raise CopyError(f"image {image_id} has an unknown {kind} {fmt!r}")
    if not _ID.match(image_id):
        raise CopyError(f"image {image_id!r} has an id that cannot name a blob")
    name = f"{image_id}{ORIGINAL_INFIX}{source_ext(fmt)}" if original else \
        f"{image_id}.{ext_of(fmt)}"
    return Blob(image_id, f"{image_id[:2]}/{image_id[2:4]}/{name}", size, sha256, original)


@dataclass
class Progress:
    """How far a copy is: files and bytes done (copied or found in place) of the totals."""

    files_total: int
    bytes_total: int
    files: int = 0
    bytes: int = 0
    kept: int = 0  # already in place from an interrupted run, verified
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.files >= self.files_total

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Files per second so far."""
        elapsed = self.elapsed_s
        return self.files / elapsed if elapsed > 0 else 0.0

    @property
    def byte_rate(self) -> float:
        elapsed = self.elapsed_s
        return self.bytes / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return (self.files_total - self.files) / rate if rate > 0 else None


Rows = Iterable[list[Row]]
Judge = Callable[[Blob, Fate], None]
Report = Callable[[Progress], None]


def copy_all(pages: Rows, source: Path, target: Path, progress: Progress, judge: Judge,
             report: Report, *, workers: int = WORKERS,
             stop: threading.Event | None = None) -> None:
    """Copy the blob of every row from the root `source` to the root `target`.

    `judge` sees each blob's fate in row order (in this thread) and may raise to stop
    the copy; then, as on `stop`, the chunks not started are cancelled and the running
    ones finish before this returns.
    """
    resuming = target.exists()  # else nothing can be there to keep: no need to look
    where = str(source.resolve()), str(target.resolve()), resuming, _Links()
    report(progress)
    with ThreadPoolExecutor(workers, thread_name_prefix="pichub-copy") as pool:
        pending: deque[tuple[list[Blob], Future[list[Fate]]]] = deque()
        try:
            for chunk in _chunks(pages):
                _check(stop)
                pending.append((chunk, pool.submit(_copy_chunk, chunk, *where)))
                if len(pending) >= 4 * workers:
                    _settle(*pending.popleft(), progress, judge, report)
            while pending:
                _check(stop)
                _settle(*pending.popleft(), progress, judge, report)
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Interrupted("stopped on request")


def _chunks(pages: Rows) -> Iterator[list[Blob]]:
    chunk: list[Blob] = []
    for page in pages:
        for row in page:
            chunk.append(blob_of(*row))
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _settle(chunk: list[Blob], future: Future[list[Fate]], progress: Progress, judge: Judge,
            report: Report) -> None:
    for blob, fate in zip(chunk, future.result(), strict=True):
        judge(blob, fate)
        progress.files += 1
        progress.bytes += blob.size
        progress.kept += fate is Fate.KEPT
    report(progress)


class _First:
    """The first name met of a file with several names at the source: the others wait for
    its copy and are linked to it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.path = ""
        self.got: tuple[int, str] | None = None  # its (size, sha256), None if it failed


class _Links:
    """The source files with more than one name seen so far, by (device, inode)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, int], _First] = {}

    def claim(self, st: os.stat_result) -> tuple[_First, bool]:
        """The file's `_First`, and whether the caller is the first (and must copy it)."""
        with self._lock:
            first = self._seen.get((st.st_dev, st.st_ino))
            if first is not None:
                return first, False
            first = self._seen[(st.st_dev, st.st_ino)] = _First()
            return first, True


# --- in the pool's threads -------------------------------------------------------------------

def _copy_chunk(chunk: list[Blob], source: str, target: str, resuming: bool,
                links: _Links) -> list[Fate]:
    buffer = memoryview(bytearray(_BUFFER))
    return [_copy_one(blob, source, target, resuming, links, buffer) for blob in chunk]


def _copy_one(blob: Blob, source: str, target: str, resuming: bool, links: _Links,
              buffer: memoryview) -> Fate:
    path = f"{target}/{blob.rel}"
    try:
        fd_in = os.open(f"{source}/{blob.rel}", _READ)
    except FileNotFoundError:
        return Fate.MISSING
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CopyError(f"the blob of image {blob.id} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd_in)
        if st.st_nlink < 2:
            return _judged(_place(fd_in, path, blob, resuming, buffer), blob)
        first, mine = links.claim(st)
        if not mine:
            first.done.wait()  # its copy is under way in another thread
            if first.got is not None:
                _link(first.path, path)
                return _judged(first.got, blob)
            # the first copy failed (and raised there): copy this name on its own
            return _judged(_place(fd_in, path, blob, resuming, buffer), blob)
        try:
            got = _place(fd_in, path, blob, resuming, buffer)
            first.path, first.got = path, got or (blob.size, blob.sha256)
        finally:
            first.done.set()
        return _judged(got, blob)
    finally:
        os.close(fd_in)


def _judged(got: tuple[int, str] | None, blob: Blob) -> Fate:
    """The fate of a blob whose target now holds `got` (None: kept, already verified)."""
    if got is None:
        return Fate.KEPT
    return Fate.COPIED if got == (blob.size, blob.sha256) else Fate.MISMATCH


def _place(fd_in: int, path: str, blob: Blob, resuming: bool,
           buffer: memoryview) -> tuple[int, str] | None:
    """Put the bytes of `fd_in` at `path`: (size, sha256) of what was copied, or None if
    the target already holds the blob (verified)."""
    if resuming and _holds(path, blob, buffer):
        return None
    fd_out = _create(path)
    try:
        return _pump(fd_in, fd_out, buffer)
    finally:
        os.close(fd_out)


def _link(first: str, path: str) -> None:
    """Make `path` another name of the file `first` (whatever `path` was before)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        _make_parent(path)
    os.link(first, path)


def _holds(path: str, blob: Blob, buffer: memoryview) -> bool:
    """Whether the file at `path` has the blob's size and sha256."""
    try:
        fd = os.open(path, _READ)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        if os.fstat(fd).st_size != blob.size:
            return False
        digest = hashlib.sha256()
        while n := os.readv(fd, [buffer]):
            digest.update(buffer[:n])
        return digest.hexdigest() == blob.sha256
    finally:
        os.close(fd)


def _create(path: str) -> int:
    """Open `path` for writing, making its two shard directories if needed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        _make_parent(path)
    return os.open(path, flags, 0o644)


def _make_parent(path: str) -> None:
    leaf = os.path.dirname(path)
    try:
        os.mkdir(leaf)
    except FileNotFoundError:
        os.makedirs(leaf, exist_ok=True)  # the first directory, or the root, is missing too
    except FileExistsError:
        pass  # made by another thread meanwhile


def _pump(fd_in: int, fd_out: int, buffer: memoryview) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while n := os.readv(fd_in, [buffer]):
        data = buffer[:n]
        digest.update(data)
        while data:
            data = data[os.write(fd_out, data):]
        size += n
    return size, digest.hexdigest()
