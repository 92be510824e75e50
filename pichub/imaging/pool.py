"""The image thread pool: a fixed set of threads that take jobs by priority, fairly.

Uploads and variants share the CPU, but not equally: a visitor waiting for a
thumbnail should not queue behind a burst of uploads whose bodies are already
on disk. Jobs carry a `Priority`; a free thread takes the most urgent job
waiting (first come, first served within a priority), so a cold variant
waits for the jobs already running, not for queued uploads.

Strict priority would starve uploads while variants keep coming, so an upload
that has waited longer than UPLOAD_PATIENCE_S is *overdue*: while one is
waiting, every UPLOAD_TURN-th thread that frees up takes the oldest overdue
upload, the others the most urgent job. Under any mix uploads then get at
least one thread in three and variants two in three. Admission (how many
jobs may wait) is the pipeline's business; this pool only orders them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

T = TypeVar("T")
#: Seconds an upload waits behind variants before it is overdue (see module doc).
UPLOAD_PATIENCE_S: Final = 1.0
#: While uploads are overdue, one free thread in UPLOAD_TURN takes the oldest of them.
UPLOAD_TURN: Final = 3


class Priority(enum.IntEnum):
    """Lower runs first."""

    VARIANT = 0  # someone is waiting for an image on a page
    UPLOAD = 1  # the client waits too, but its body is in: a little later costs little
    BACKGROUND = 2  # cache eviction and other housekeeping


@dataclass
class _Job:
    future: concurrent.futures.Future[Any]
    fn: Callable[[], Any]
    queued_at: float


class PriorityPool:
    """`workers` threads running submitted callables, most urgent first (see module doc)."""

    def __init__(self, workers: int, name: str = "pichub-img", *,
                 upload_patience_s: float = UPLOAD_PATIENCE_S) -> None:
        self._patience = upload_patience_s
        self._queues: dict[Priority, deque[_Job]] = {p: deque() for p in Priority}
        self._ready = threading.Condition()
        self._turn = 0
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def waiting(self) -> int:
        """Jobs submitted and not yet started."""
        with self._ready:
            return sum(len(q) for q in self._queues.values())

    def submit(self, priority: Priority, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run `fn()` in a pool thread; the result as an asyncio future of the running loop.

        Cancelling the asyncio future before the job starts keeps it from running.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the image pool is shut down")
            self._queues[priority].append(_Job(future, fn, time.monotonic()))
            self._ready.notify()
        return asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Cancel the jobs that have not started, let running ones finish, join the threads."""
        with self._ready:
            self._closed = True
            for waiting in self._queues.values():
                for job in waiting:
                    job.future.cancel()
                waiting.clear()
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _next(self) -> _Job | None:
        """The job to run next (caller holds the lock); None when nothing waits."""
        uploads = self._queues[Priority.UPLOAD]
        overdue = bool(uploads) and time.monotonic() - uploads[0].queued_at > self._patience
        if overdue:
            self._turn = (self._turn + 1) % UPLOAD_TURN
            if self._turn == 0:
                return uploads.popleft()
        for priority in Priority:
            if self._queues[priority]:
                return self._queues[priority].popleft()
        return None

    def _work(self) -> None:
        while True:
            with self._ready:
                while (job := self._next()) is None:
                    if self._closed:
                        return
                    self._ready.wait()
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                result = job.fn()
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the job
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)


class MemoryBudget:
    """Bytes that jobs in flight may use together; a job waits for its share, first come
    first served, before it goes to the pool (so a waiting job holds no thread).

    A job bigger than the whole budget runs when nothing else holds any of it, so every
    job that the per-image limits let through eventually runs.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.in_use = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def reserve(self, amount: int) -> AsyncIterator[None]:
        share = min(max(0, amount), self.capacity)
        if self._waiting or self.in_use + share > self.capacity:
            ready = asyncio.get_running_loop().create_future()
            entry = (share, ready)
            self._waiting.append(entry)
            try:
                await ready
            except BaseException:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    self._release(0)  # those behind it may fit now
                elif ready.done() and not ready.cancelled():
                    self._release(share)  # granted just as it was cancelled
                raise
        else:
            self.in_use += share
        try:
            yield
        finally:
            self._release(share)

    def _release(self, share: int) -> None:
        self.in_use -= share
        while self._waiting:
            share_next, ready = self._waiting[0]
            if self.in_use + share_next > self.capacity:
                return
            self._waiting.popleft()
            if not ready.done():
                self.in_use += share_next
                ready.set_result(None)
