"""The change feed: what other processes deleted or re-shared, applied to this process's
memory and variant cache within POLL_S (docs/scale-out.md).

Every process keeps its own variant cache (on its own disk) and remembers, for
SOURCE_TTL_S, who may see the images it served (`Pipeline.source`). A delete through
another process commits an `image.deleted` event in the same transaction as the row's
removal (the outbox, db/events.py), so tailing the events table is enough to learn of
it: every POLL_S one primary-key lookup (the newest `seq`) and, when it moved, one
range read of the new rows of the few types that matter. An `image.deleted` purges the
image's variants here too (the process that deleted it has already: purging twice is
one missing directory); an `album.updated` or `album.deleted` (a password set or
removed, images out of an album) forgets every remembered image, since an image's
album is not in the event. Nothing runs on the request path.

On SQLite one writer commits in `seq` order, so a cursor at the last seen `seq` misses
nothing. On PostgreSQL a sequence number is drawn before its transaction commits, so
a row may appear below the cursor after the cursor passed it: the feed re-reads the
last `lookback` numbers each time and skips the rows it handled already.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from pichub.db import changes as changes_db
from pichub.db.database import Database

log = logging.getLogger(__name__)
#: Seconds between two looks at the events table: the staleness bound across processes.
POLL_S: Final = 1.0
#: Sequence numbers re-read each time on a database whose commits may land out of order.
LOOKBACK: Final = 1000
TYPES: Final = ("image.deleted", "album.updated", "album.deleted")


class ChangeFeed:
    """Applies other processes' deletes and album changes here: `await run()` in the
    background (from start-up on: earlier changes are answered by the database, as an
    image a process never remembered is)."""

    def __init__(self, db: Database, purge: Callable[[str], Awaitable[object]],
                 forget_all: Callable[[], None], *, lookback: int = 0,
                 interval_s: float = POLL_S) -> None:
        self.db = db
        self.purge = purge  # drops an image's cached variants and what is remembered of it
        self.forget_all = forget_all  # drops everything remembered of every image
        self.lookback = lookback
        self.interval_s = interval_s
        self.cursor = 0
        self._handled: set[int] = set()  # seqs within the lookback already applied
        self.applied = 0  # events applied so far (tests, /metrics)

    async def start(self) -> None:
        """Begin at the newest event (call before the port opens)."""
        self.cursor = await changes_db.last_seq(self.db)

    async def run(self) -> None:
        """Look every `interval_s`, forever (until cancelled); a failed look is retried."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.step()
            except Exception:  # a database hiccup: the next look covers the same rows
                log.exception("change feed: reading the events table failed")

    async def step(self) -> int:
        """Apply what was committed since the last look; how many events that was."""
        newest = await changes_db.last_seq(self.db)
        if newest <= self.cursor and not self.lookback:
            return 0
        rows = await changes_db.between(self.db, self.cursor - self.lookback, newest, TYPES)
        fresh = [row for row in rows if row["seq"] not in self._handled]
        for row in fresh:
            await self._apply(row["type"], row["payload"])
        self.cursor = max(self.cursor, newest)
        if self.lookback:
            floor = self.cursor - self.lookback
            self._handled = {seq for seq in self._handled if seq > floor}
            self._handled.update(row["seq"] for row in fresh)
        self.applied += len(fresh)
        return len(fresh)

    async def _apply(self, type_: str, payload: str) -> None:
        if type_ == "image.deleted":
            await self.purge(str(json.loads(payload)["data"]["id"]))
        else:
            self.forget_all()
