"""The blob copy of a backup or restore: many small files, copied and hashed side by side.

Rows come in pages (`Snapshot.image_pages`), are cut into chunks of `CHUNK` blobs and
handed to a pool of threads; at most `4 × workers` chunks are in flight, so memory stays
flat whatever the library size. File I/O and hashlib release the GIL, so the threads
overlap on every core. The results come back in order to the calling thread, which
judges each blob (a backup drops or reports it, a restore refuses) and counts progress.

A blob already at its target with the row's size and sha256 (read back and hashed, not
trusted) is kept as it is: that is how an interrupted backup or restore resumes. Anything
else at the target (a partial or damaged copy) is overwritten. Nothing here fsyncs: the
caller flushes everything once at the end.
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

from pichub.imaging.formats import FORMATS, ext_of

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
    """One image's original: where it lives under a blob root, and what it must hash to."""

    id: str
    rel: str
    size: int
    sha256: str


def blob_of(image_id: str, fmt: str, size: int, sha256: str) -> Blob:
    """The blob of an image row, with the path `BlobStore` gives it (`ab/cd/<id>.<ext>`)."""
    if fmt not in FORMATS:
        raise CopyError(f"image {image_id} has an unknown format {fmt!r}")
    if not _ID.match(image_id):
        raise CopyError(f"image {image_id!r} has an id that cannot name a blob")
    return Blob(image_id, f"{image_id[:2]}/{image_id[2:4]}/{image_id}.{ext_of(fmt)}", size,
                sha256)


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


Rows = Iterable[list[tuple[str, str, int, str]]]
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
    where = str(source.resolve()), str(target.resolve()), resuming
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


# --- in the pool's threads -------------------------------------------------------------------

def _copy_chunk(chunk: list[Blob], source: str, target: str, resuming: bool) -> list[Fate]:
    buffer = memoryview(bytearray(_BUFFER))
    return [_copy_one(blob, source, target, resuming, buffer) for blob in chunk]


def _copy_one(blob: Blob, source: str, target: str, resuming: bool, buffer: memoryview) -> Fate:
    path = f"{target}/{blob.rel}"
    try:
        if resuming and _holds(path, blob, buffer):
            return Fate.KEPT
        copied = _copy_file(f"{source}/{blob.rel}", path, buffer)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CopyError(f"the blob of image {blob.id} is a symbolic link") from None
        raise
    if copied is None:
        return Fate.MISSING
    return Fate.COPIED if copied == (blob.size, blob.sha256) else Fate.MISMATCH


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


def _copy_file(source: str, target: str, buffer: memoryview) -> tuple[int, str] | None:
    """Copy, returning (size, sha256 hex) of the bytes; None if `source` does not exist."""
    try:
        fd_in = os.open(source, _READ)
    except FileNotFoundError:
        return None
    try:
        fd_out = _create(target)
        try:
            return _pump(fd_in, fd_out, buffer)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _create(path: str) -> int:
    """Open `path` for writing, making its two shard directories if needed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        pass
    leaf = os.path.dirname(path)
    try:
        os.mkdir(leaf)
    except FileNotFoundError:
        os.makedirs(leaf, exist_ok=True)  # the first directory, or the root, is missing too
    except FileExistsError:
        pass  # made by another thread meanwhile
    return os.open(path, flags, 0o644)


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
