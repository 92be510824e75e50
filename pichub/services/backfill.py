"""`pichub backfill`: what images stored by an older PicHub, or restored, lack.

Two things, found and made in one pass, with one read of the stored file at
most (`imaging.stored`):

- working copies of still images (left out of backups; older uploads had none);
- the placeholders and EXIF summary (`services.describe`) of images whose row
  has none from the current computation (`meta_version` below META_VERSION):
  every image stored before migration 0005.

Resumable and safe while the server runs: an image with all its copies on disk
and its row described is skipped without reading its file, copies are written
atomically, each image's row is updated in its own short transaction (an
image deleted meanwhile is simply not found), and an interrupted run simply
starts over and skips what is done. Images are read in insertion order, a page
at a time, so memory does not grow with the library.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pichub.blobs import BlobStore
from pichub.db import images as images_db
from pichub.db.database import Database, Row
from pichub.errors import NotFound
from pichub.imaging import working
from pichub.imaging.formats import ext_of
from pichub.imaging.stored import Remade, remake
from pichub.pacing import Paced
from pichub.services.describe import META_VERSION, stored_meta
from pichub.storage import Storage

PAGE = 200


@dataclass
class Progress(Paced):
    """How far a back-fill is: images looked at, copies made, images described, and the
    pace so far."""

    total: int
    done: int = 0
    made: int = 0
    described: int = 0
    failed: int = 0
    started: float = 0.0


async def backfill(db: Database, storage: Storage, report: Callable[[Progress], None],
                   limit: int | None = None) -> Progress:
    """Make the missing working copies and descriptions of every image (at most `limit`)."""
    progress = Progress(await images_db.count(db), started=time.monotonic())
    if limit is not None:
        progress.total = min(progress.total, limit)
    after = 0
    while progress.done < progress.total:
        rows = await images_db.after(db, after, PAGE)
        if not rows:
            break
        for row in rows[: progress.total - progress.done]:
            after = row["seq"]
            await _fill(db, storage, row, progress)
            progress.done += 1
            report(progress)
    return progress


async def _fill(db: Database, storage: Storage, row: Row, progress: Progress) -> None:
    """One image: its file fetched when the storage keeps it elsewhere (S3), the copies
    made beside it and persisted there too, then its description stored."""
    try:
        await storage.local_image(row["id"], ext_of(row["format"]))
    except NotFound:
        return  # deleted meanwhile
    remade = await asyncio.to_thread(_remake, storage.blobs, row)
    if remade is None:
        progress.failed += 1
        return
    progress.made += len(remade.copies)
    if remade.copies:
        await storage.persist(row["id"])
    if remade.described:
        async with db.transaction() as conn:
            stored = await images_db.set_meta(conn, row["id"],
                                              stored_meta(remade.placeholder, remade.exif))
        progress.described += stored


def _remake(blobs: BlobStore, row: Row) -> Remade | None:
    """Blocking: the image's missing copies (written) and description; None when its file
    cannot be read."""
    size = (row["width"], row["height"])
    have = blobs.working_copies(row["id"])
    wanted = set(working.levels_for(size)) if row["frames"] == 1 else set()
    copies = not wanted <= set(have)
    describe = row["meta_version"] < META_VERSION
    if not (copies or describe):
        return Remade([])
    smallest = have[min(have)] if have and not copies else None
    try:
        remade = remake(blobs.path(row["id"], ext_of(row["format"])), row["format"], size,
                        copies=copies, describe=describe, smallest_copy=smallest)
    except FileNotFoundError:
        return Remade([])  # deleted meanwhile
    except (OSError, ValueError, SyntaxError):
        return None
    for copy in remade.copies:
        blobs.put_working(row["id"], copy.level, copy.ext, copy.data)
    return remade
