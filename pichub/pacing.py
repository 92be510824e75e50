"""Start-up jobs that walk big directory trees in the background, in small steps.

Like nginx's cache loader, PicHub opens its port at once and only then walks its
stores (the orphan sweep over `blobs/`, the variant cache's index over `cache/`):
`Pacing.files` files per step, one step of either job at a time in the image pool at
background priority, then a rest as long as the step took and at least
`Pacing.sleep_s` (`Pipeline.background`), so a million files never take more than
half a core or one thread of the pool. `Progress` tells the log how far a job got
every few seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Final

#: Seconds between two progress lines of a background job.
PROGRESS_EVERY_S: Final = 5.0


@dataclass(frozen=True)
class Pacing:
    """How background jobs step: `files` per step, at least `sleep_s` between steps
    (`storage.loader_files`, `storage.loader_sleep_ms`; nginx's loader_files/loader_sleep)."""

    files: int = 500
    sleep_s: float = 0.01


class Progress:
    """The counts of one background job, logged every `every_s` seconds while it runs.

    `seen` and `removed` are totals so far (also exported by /metrics); `done` turns true
    when the job has finished.
    """

    def __init__(self, what: str, log: logging.Logger, every_s: float = PROGRESS_EVERY_S
                 ) -> None:
        self.what = what
        self.seen = 0
        self.removed = 0
        self.done = False
        self._log = log
        self._every_s = every_s
        self.started = time.monotonic()
        self._next_line = self.started + every_s

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Files seen per second so far."""
        return self.seen / max(self.seconds, 1e-9)

    def update(self, seen: int, removed: int) -> None:
        """Record the totals so far; log them when a line is due."""
        self.seen, self.removed = seen, removed
        now = time.monotonic()
        if now >= self._next_line:
            self._next_line = now + self._every_s
            self._log.info("%s: %d files seen, %d removed, %.0f files/s", self.what,
                           self.seen, self.removed, self.rate)

    def finish(self, summary: str, *args: object) -> None:
        """Log the job's last line: `what` done in N s, then `summary % args`."""
        self.done = True
        self._log.info("%s done in %.1fs (%.0f files/s): " + summary, self.what, self.seconds,
                       self.rate, *args)


class Paced:
    """The pace of a count of work, for the progress line of a long command: `done` of
    `total` since `started` (a `time.monotonic()`), set by the subclass."""

    total: int
    done: int
    started: float

    @property
    def rate(self) -> float:
        """Items per second so far."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at that pace (None before a first item and once all are done)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 and self.done < self.total else None
