"""The orphan sweep: files in the blob store that no image row owns, removed after start-up.

An upload writes its blob (and working copies) first and commits its row after, so a
crash in between leaves files with no row, and a crash in the middle of a write leaves a
temp file (TMP_PREFIX). The sweep finds both without loading every id: it walks the
store in paced steps (pichub.pacing) while the server already serves, and asks the
database, once per step, which of the ids it saw exist.

It must never remove the files of an upload in progress, whose row commits moments
after them. Only files unchanged since before the sweep was created (minus SETTLE_S,
for file system clocks that lag) can go; every upload this process receives writes
its files later than that. A file that qualifies has its row looked up once more right
before it is unlinked.

With the S3 backend the bucket is swept too (`BucketSweep`): there the objects of an
upload in flight are protected by their age (a grace period), as a listing cannot tell
which were PUT after the sweep began.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from pichub.blobs import TMP_PREFIX, BlobStore, owner, remove, unchanged_since
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.pacing import Pacing, Progress
from pichub.storage.objects import Listed
from pichub.storage.s3 import S3Storage

log = logging.getLogger(__name__)
#: Seconds a file must be older than the sweep to be removed (kernels stamp files with a
#: clock that may lag `time.time()` by a tick; this covers it many times over).
SETTLE_S: Final = 2.0
#: Runs one blocking step in a thread (`Pipeline.background`: the image pool, low priority,
#: paced).
#: Seconds an object in the bucket must be older than to be swept without a row: far
#: longer than any upload takes from its first PUT to its commit.
BUCKET_GRACE_S: Final = 3600.0
Background = Callable[[Callable[[], Any]], Awaitable[Any]]


class OrphanSweep:
    """One sweep of `blobs`: create it before the port opens, then `await run()`."""

    def __init__(self, db: Database, blobs: BlobStore, background: Background,
                 pacing: Pacing, progress: Progress, *, settle_s: float = SETTLE_S) -> None:
        self.db = db
        self.blobs = blobs
        self.background = background
        self.pacing = pacing
        self.progress = progress
        self.before = time.time() - settle_s  # longer when other processes share `blobs`
        self.orphans = 0
        self.temps = 0

    async def run(self) -> None:
        """Walk the whole store, removing orphans and temp files, and log what it did."""
        batches = self.blobs.batches(self.pacing.files)
        seen = 0
        while (batch := await self.background(functools.partial(next, batches, None))):
            await self._sweep(batch)
            seen += len(batch)
            self.progress.update(seen, self.orphans + self.temps)
        self.progress.update(seen, self.orphans + self.temps)
        self.progress.finish("%d files, %d orphan and %d temporary file(s) removed", seen,
                             self.orphans, self.temps)

    async def _sweep(self, batch: list[Path]) -> None:
        temps = [path for path in batch if path.name.startswith(TMP_PREFIX)]
        files = [path for path in batch if not path.name.startswith(TMP_PREFIX)]
        known = await images_db.existing(self.db, {owner(path) for path in files})
        unowned = [path for path in files if owner(path) not in known]
        if not unowned and not temps:
            return
        old = await self.background(functools.partial(unchanged_since, unowned + temps,
                                                      self.before))
        orphans = [path for path in old if not path.name.startswith(TMP_PREFIX)]
        if orphans:  # once more, right before the unlink
            known = await images_db.existing(self.db, {owner(path) for path in orphans})
            orphans = [path for path in orphans if owner(path) not in known]
        stale = [path for path in old if path.name.startswith(TMP_PREFIX)]
        await self.background(functools.partial(remove, orphans + stale))
        for path in orphans:
            log.debug("removed %s: no image owns it", path)
        self.orphans += len(orphans)
        self.temps += len(stale)


class BucketSweep:
    """The orphan sweep of the bucket (`storage.backend = "s3"`): objects whose image has no
    row and which are older than `grace_s` (an upload PUTs its objects before its row
    commits; the grace covers every upload in flight) are deleted, a listing page at a
    time, the rows looked up once per page and once more right before the delete."""

    def __init__(self, db: Database, storage: S3Storage, progress: Progress, *,
                 grace_s: float = BUCKET_GRACE_S, clock: Callable[[], float] = time.time
                 ) -> None:
        self.db = db
        self.storage = storage
        self.progress = progress
        self.grace_s = grace_s
        self.clock = clock
        self.orphans = 0

    async def run(self) -> None:
        seen = 0
        async for page in self.storage.stored():
            await self._sweep(page)
            seen += len(page)
            self.progress.update(seen, self.orphans)
        self.progress.update(seen, self.orphans)
        self.progress.finish("%d objects, %d orphan(s) removed", seen, self.orphans)

    async def _sweep(self, page: list[tuple[str, Listed]]) -> None:
        before = self.clock() - self.grace_s
        old = [(image_id, item) for image_id, item in page if item.modified < before]
        known = await images_db.existing(self.db, {image_id for image_id, _ in old})
        orphans = [(image_id, item) for image_id, item in old if image_id not in known]
        if orphans:  # once more, right before the delete
            known = await images_db.existing(self.db, {image_id for image_id, _ in orphans})
            orphans = [(image_id, item) for image_id, item in orphans if image_id not in known]
        if orphans:
            await self.storage.remove_objects([item.key for _, item in orphans])
            self.orphans += len(orphans)
