"""The expiry sweep: images whose `expires_at` has come (or whose last allowed view was
used) are deleted in the background, each with its `image.deleted` event
(`reason: expired`) in the same transaction as the row's removal; so are albums whose
`expires_at` has come (not their images: they stay, out of any album), each with
`album.deleted` (`reason: expired`).

It is driven by stored state only: the indexed `expires_at` columns (migrations 0007, 0014).
After a restart it simply finds what came due meanwhile; nothing is remembered in
memory but when to look next. It works in bounded steps (BATCH images, then a rest of
`Pacing.sleep_s`) so requests are never kept waiting, sleeps until the next expiry (at
most MAX_SLEEP_S, so a changed clock is noticed), and is woken early when an upload or
a PATCH sets an expiry or a view uses up `max_views`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from pichub.db import albums as albums_db
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.pacing import Pacing
from pichub.services.albums import Albums
from pichub.services.images import Images
from pichub.timeutil import Clock, iso, parse_iso

log = logging.getLogger(__name__)
#: Images deleted per step; the longest and shortest waits between looks.
BATCH: Final = 50
MAX_SLEEP_S: Final = 60.0
MIN_SLEEP_S: Final = 0.05


class ExpirySweep:
    """Deletes expired images through `images.expire` and expired albums through
    `albums.expire`; `run()` is the background job."""

    def __init__(self, db: Database, images: Images, base_url: str, pacing: Pacing,
                 clock: Clock, albums: Albums | None = None) -> None:
        self.db = db
        self.images = images
        self.albums = albums
        self.base_url = base_url  # of the URLs in the events (no request to take it from)
        self.pacing = pacing
        self.clock = clock
        self.expired = 0  # images deleted so far (for /metrics and tests)
        self.expired_albums = 0  # albums deleted so far
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look again now: an expiry was set or reached."""
        self._wake.set()

    async def sweep_due(self) -> int:
        """Delete every image, then every album, due now, BATCH at a time with a rest
        between; how many (images and albums)."""
        return await self._sweep_images() + await self._sweep_albums()

    async def _sweep_albums(self) -> int:
        deleted = 0
        while self.albums is not None:
            due = await albums_db.expired(self.db, iso(self.clock()), BATCH)
            for album_id in due:
                if await self.albums.expire(album_id, self.base_url):
                    deleted += 1
                    self.expired_albums += 1
                    log.info("album %s expired: deleted", album_id)
            if len(due) < BATCH:
                break
            await asyncio.sleep(self.pacing.sleep_s)
        return deleted

    async def _sweep_images(self) -> int:
        deleted = 0
        while True:
            due = await images_db.expired(self.db, iso(self.clock()), BATCH)
            for image_id in due:
                if await self.images.expire(image_id, self.base_url):
                    deleted += 1
                    self.expired += 1
                    log.info("image %s expired: deleted", image_id)
            if len(due) < BATCH:
                return deleted
            await asyncio.sleep(self.pacing.sleep_s)

    async def run(self) -> None:
        """Sweep, then wait for the next expiry or a wake-up; forever (until cancelled)."""
        while True:
            self._wake.clear()
            try:
                await self.sweep_due()
                delay = await self._until_next()
            except Exception:  # a failed step is retried later, the server keeps serving
                log.exception("expiry sweep failed; trying again in %.0f s", MAX_SLEEP_S)
                delay = MAX_SLEEP_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _until_next(self) -> float:
        """Seconds until the earliest stored expiry, within MIN_SLEEP_S..MAX_SLEEP_S."""
        moments = [await images_db.next_expiry(self.db)]
        if self.albums is not None:
            moments.append(await albums_db.next_expiry(self.db))
        upcoming = min((moment for moment in moments if moment is not None), default=None)
        if upcoming is None:
            return MAX_SLEEP_S
        seconds = (parse_iso(upcoming) - self.clock()).total_seconds()
        return min(max(seconds, MIN_SLEEP_S), MAX_SLEEP_S)
