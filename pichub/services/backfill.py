"""`pichub backfill`: working copies for images stored before they existed, or restored.

Resumable and safe while the server runs: an image whose copies are all on disk
is skipped, copies are written atomically, and an interrupted run simply starts
over and skips what is done. Images are read in insertion order, a page at a
time, so memory does not grow with the library.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pichub.blobs import BlobStore
from pichub.db import images as images_db
from pichub.db.database import Database, Row
from pichub.imaging import working
from pichub.imaging.formats import ext_of

PAGE = 200


@dataclass
class Progress:
    """How far a back-fill is: images looked at, copies made, and the pace so far."""

    total: int
    done: int = 0
    made: int = 0
    failed: int = 0
    started: float = 0.0

    @property
    def rate(self) -> float:
        """Images per second so far."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None


async def backfill(db: Database, blobs: BlobStore, report: Callable[[Progress], None],
                   limit: int | None = None) -> Progress:
    """Make the missing working copies of every still image (at most `limit` images)."""
    progress = Progress(await images_db.count_stills(db), started=time.monotonic())
    if limit is not None:
        progress.total = min(progress.total, limit)
    after = 0
    while progress.done < progress.total:
        rows = await images_db.stills_after(db, after, PAGE)
        if not rows:
            break
        for row in rows[: progress.total - progress.done]:
            after = row["seq"]
            made = await asyncio.to_thread(_fill, blobs, row)
            progress.made += max(made, 0)
            progress.failed += made < 0
            progress.done += 1
            report(progress)
    return progress


def _fill(blobs: BlobStore, row: Row) -> int:
    """Blocking: the image's missing copies; how many were written (-1: unreadable)."""
    size = (row["width"], row["height"])
    wanted = set(working.levels_for(size))
    if not wanted or wanted <= set(blobs.working_copies(row["id"])):
        return 0
    ext = ext_of(row["format"])
    try:
        copies = working.make_from_file(blobs.path(row["id"], ext), row["format"], size)
    except FileNotFoundError:
        return 0  # deleted meanwhile
    except (OSError, ValueError, SyntaxError):
        return -1
    for copy in copies:
        blobs.put_working(row["id"], copy.level, copy.ext, copy.data)
    return len(copies)
