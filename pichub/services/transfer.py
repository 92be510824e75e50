"""Moving an instance between engines: every row, every file, verified.

`pichub migrate` copies a single-box instance (SQLite and `blobs/`) into PostgreSQL and a
bucket; `pichub backup`/`restore` of an instance on PostgreSQL or S3 copy it to and from a
backup directory of the usual layout (`pichub.db` + `blobs/`). All three are one `move`:

1. rows: each table parents first, a page at a time, upserted (`pichub.db.transfer`); rows
   the destination has and the source does not are removed; then the count of every table
   must be equal on both sides;
2. files: every file of every image the source's rows name (stored file, working copies,
   kept original upload) is copied unless the destination already holds one of the same
   size that was verified before, and then read back from the destination and compared by
   SHA-256 with the source's bytes.

Running it again continues: the upserts make the rows current, and a journal of verified
files (one line each, appended and flushed as they are verified) spares their second
download. The source may be serving while it runs; a last run with it stopped makes the
copy exact. A step of `Progress` is reported as it goes: items, bytes, rate and ETA.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pichub.blobs import TMP_PREFIX, atomic_copy, owner
from pichub.db import transfer as rows_db
from pichub.db.database import Database
from pichub.pacing import Paced
from pichub.storage.objects import ObjectStore

#: The name of a working copy (blobs.working_path): `<id>.w<level>.<ext>`.
_WORKING = re.compile(r"^[^.]+\.w[0-9]+\.[a-z0-9]+$")
PAGE = 500  # rows per read and per write transaction
PARALLEL = 8  # files in flight at once


class TransferError(Exception):
    """The copy cannot go on or did not verify; the message is one line for the user."""


@dataclass
class Progress(Paced):
    """One step of a move, as it goes."""

    step: str
    total: int
    total_bytes: int = 0
    done: int = 0
    done_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False
    vanished: set[str] = field(default_factory=set)  # images whose files went meanwhile


Report = Callable[[Progress], None]


# --- the two sides of a file copy --------------------------------------------------------------

class Files(Protocol):
    """Files in the blob layout (`ab/cd/<id>.<ext>`), by their relative path."""

    #: Which store this is (the journal of verified files is kept per destination).
    where: str

    def listing(self) -> AsyncIterator[list[tuple[str, int]]]:
        """(relative path, size) of every file, a page at a time; temp files left out."""
        ...

    async def size(self, relative: str) -> int | None: ...

    async def fetch(self, relative: str, into: Path) -> Path | None:
        """A local file with the bytes of `relative`: the file itself when it is local,
        else a download into `into`; None when there is no such file (any more)."""
        ...

    async def store(self, relative: str, source: Path) -> None: ...


class Directory:
    """A blob directory on this machine (a data directory's or a backup's `blobs/`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = f"directory {root.resolve()}"

    async def listing(self) -> AsyncIterator[list[tuple[str, int]]]:
        found = await asyncio.to_thread(_walk, self.root)
        for start in range(0, len(found), PAGE):
            yield found[start:start + PAGE]

    async def size(self, relative: str) -> int | None:
        try:
            return (await asyncio.to_thread(os.stat, self.root / relative)).st_size
        except FileNotFoundError:
            return None

    async def fetch(self, relative: str, into: Path) -> Path | None:
        path = self.root / relative
        return path if await asyncio.to_thread(path.is_file) else None

    async def store(self, relative: str, source: Path) -> None:
        await asyncio.to_thread(atomic_copy, source, self.root / relative)


def _walk(root: Path) -> list[tuple[str, int]]:
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.startswith(TMP_PREFIX):
                continue
            path = Path(dirpath) / name
            found.append((path.relative_to(root).as_posix(), path.stat().st_size))
    return found


class Bucket:
    """The bucket of `[storage.s3]` (keys are the prefix plus the relative path)."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        s3 = objects.settings
        self.where = f"bucket {s3.endpoint_url or 'aws'} {objects.bucket} {objects.prefix}"

    async def listing(self) -> AsyncIterator[list[tuple[str, int]]]:
        cut = len(self.objects.prefix)
        async for page in self.objects.pages(self.objects.prefix):
            yield [(item.key[cut:], item.size) for item in page
                   if not item.key.rsplit("/", 1)[-1].startswith(TMP_PREFIX)]

    async def size(self, relative: str) -> int | None:
        return await self.objects.head(self.objects.key(relative))

    async def fetch(self, relative: str, into: Path) -> Path | None:
        return into if await self.objects.get_file(self.objects.key(relative), into) else None

    async def store(self, relative: str, source: Path) -> None:
        await self.objects.put_file(self.objects.key(relative), source)


# --- rows ----------------------------------------------------------------------------------------

async def copy_rows(source: Database, dest: Database, report: Report) -> dict[str, int]:
    """Make every table of `dest` hold what `source` holds; the rows per table."""
    totals = {table: await rows_db.count(source, table) for table, _key in rows_db.TABLES}
    progress = Progress("rows", sum(totals.values()))
    for table, key in rows_db.TABLES:
        async for page in rows_db.pages(source, table, key, PAGE):
            await rows_db.upsert(dest, table, key, page)
            progress.done += len(page)
            report(progress)
    for table, key in reversed(rows_db.TABLES):  # children first
        await _prune(source, dest, table, key)
    await rows_db.follow_numbering(dest)
    for table, _key in rows_db.TABLES:
        have = await rows_db.count(dest, table)
        if have != totals[table]:
            raise TransferError(f"table {table}: {totals[table]} rows in the source, {have} "
                                "copied (did the source change? run it again once it is "
                                "stopped)")
    progress.finished = True
    report(progress)
    return totals


async def _prune(source: Database, dest: Database, table: str, key: tuple[str, ...]) -> None:
    """Remove the rows of `dest` whose key the source does not have (deleted meanwhile)."""
    columns = ", ".join(key)
    wanted: set[tuple[object, ...]] = set()
    async for page in rows_db.pages(source, table, key, 5000, columns):
        wanted.update(tuple(row[name] for name in key) for row in page)
    extra: list[tuple[object, ...]] = []
    async for page in rows_db.pages(dest, table, key, 5000, columns):
        found = (tuple(row[name] for name in key) for row in page)
        extra.extend(k for k in found if k not in wanted)
    if extra:
        await rows_db.remove(dest, table, key, extra)


async def image_ids(db: Database) -> set[str]:
    """The ids of every image of `db`."""
    found: set[str] = set()
    async for page in rows_db.pages(db, "images", ("seq",), 5000, "seq, id"):
        found.update(row["id"] for row in page)
    return found


# --- files ---------------------------------------------------------------------------------------

async def copy_files(ids: set[str], source: Files, dest: Files, work: Path,
                     report: Report, *, working: bool = True) -> Progress:
    """Copy and verify every file of the images `ids` (their working copies only with
    `working`: a backup leaves them out, they are made again); `work` holds the journal and
    the downloads on their way (it is created)."""
    journal = await asyncio.to_thread(Journal, work, dest.where)
    wanted: list[tuple[str, int]] = []
    async for page in source.listing():
        wanted.extend(item for item in page if owner(Path(item[0])) in ids
                      and (working or not _WORKING.match(Path(item[0]).name)))
    progress = Progress("files", len(wanted), sum(size for _rel, size in wanted))
    progress.vanished = ids - {owner(Path(relative)) for relative, _size in wanted}
    queue = iter(wanted)  # PARALLEL workers take the next file from one iterator
    try:

        async def worker() -> None:
            for relative, size in queue:
                if not (relative in journal.verified and await dest.size(relative) == size):
                    if await _copy_one(relative, size, source, dest, work):
                        await asyncio.to_thread(journal.add, relative)
                    else:  # its image was deleted since the rows were read
                        progress.vanished.add(owner(Path(relative)))
                progress.done += 1
                progress.done_bytes += size
                report(progress)

        await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    finally:
        await asyncio.to_thread(journal.close)
    progress.finished = True
    report(progress)
    return progress


async def _copy_one(relative: str, size: int, source: Files, dest: Files, work: Path) -> bool:
    """Copy one file unless the destination has it already, then read it back and compare;
    False when the source has no such file any more."""
    down = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=TMP_PREFIX, dir=work))
    try:
        local = await source.fetch(relative, down / "source")
        if local is None:
            return False
        digest = await asyncio.to_thread(_sha256, local)
        stored = await dest.size(relative) == size
        for _attempt in range(2):  # what was there already, then a fresh copy
            if not stored:
                await dest.store(relative, local)
            back = await dest.fetch(relative, down / "dest")
            if back is not None and await asyncio.to_thread(_sha256, back) == digest:
                return True
            stored = False
        raise TransferError(f"{relative}: the copy's SHA-256 differs from the source's")
    finally:
        await asyncio.to_thread(shutil.rmtree, down, True)


class Journal:
    """The files verified so far at one destination, one relative path a line in
    `work/verified-<destination>.log` (created with `work`); each line is flushed as it is
    added. Blocking."""

    def __init__(self, work: Path, where: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"verified-{hashlib.sha256(where.encode()).hexdigest()[:16]}.log"
        self.verified = set(path.read_text().split()) if path.exists() else set()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def add(self, relative: str) -> None:
        self._file.write(relative + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(2**20):
            digest.update(block)
    return digest.hexdigest()
