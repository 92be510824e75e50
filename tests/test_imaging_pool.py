"""The image pool takes the most urgent job first: variants before queued uploads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from pichub.imaging.pool import Priority, PriorityPool


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    opened = threading.Event()
    yield opened
    opened.set()  # never leave a worker blocked, even when a test fails


@pytest.fixture
def pool(gate: threading.Event) -> Iterator[PriorityPool]:
    made = PriorityPool(1, upload_patience_s=60)
    yield made
    gate.set()
    made.shutdown()


def occupy(pool: PriorityPool, gate: threading.Event,
           priority: Priority = Priority.UPLOAD) -> asyncio.Future[bool]:
    """Keep the pool's only thread busy until `gate` opens; returns once it is running."""
    started = threading.Event()

    def block() -> bool:
        started.set()
        return gate.wait(30)

    job = pool.submit(priority, block)
    assert started.wait(10)
    return job


async def test_a_variant_overtakes_queued_uploads(pool: PriorityPool,
                                                   gate: threading.Event) -> None:
    order: list[str] = []
    blocker = occupy(pool, gate)
    uploads = [pool.submit(Priority.UPLOAD, lambda i=i: order.append(f"upload{i}"))
               for i in range(3)]
    variant = pool.submit(Priority.VARIANT, lambda: order.append("variant"))
    housekeeping = pool.submit(Priority.BACKGROUND, lambda: order.append("evict"))
    assert pool.waiting == 5
    gate.set()
    await asyncio.gather(blocker, *uploads, variant, housekeeping)
    assert order == ["variant", "upload0", "upload1", "upload2", "evict"]


async def test_overdue_uploads_take_one_free_thread_in_three(gate: threading.Event) -> None:
    pool = PriorityPool(1, upload_patience_s=0.0)  # every waiting upload is overdue at once
    try:
        order: list[str] = []
        blocker = occupy(pool, gate, Priority.VARIANT)
        jobs = [pool.submit(Priority.UPLOAD, lambda i=i: order.append(f"u{i}")) for i in range(3)]
        jobs += [pool.submit(Priority.VARIANT, lambda i=i: order.append(f"v{i}"))
                 for i in range(6)]
        gate.set()
        await asyncio.gather(blocker, *jobs)
        assert order == ["v0", "v1", "u0", "v2", "v3", "u1", "v4", "v5", "u2"]
    finally:
        gate.set()
        pool.shutdown()


async def test_results_and_exceptions_reach_the_caller(pool: PriorityPool) -> None:
    assert await pool.submit(Priority.VARIANT, lambda: 6 * 7) == 42
    with pytest.raises(ZeroDivisionError):
        await pool.submit(Priority.UPLOAD, lambda: 1 / 0)


async def test_a_job_cancelled_before_it_starts_never_runs(pool: PriorityPool,
                                                           gate: threading.Event) -> None:
    ran: list[int] = []
    blocker = occupy(pool, gate)
    queued = pool.submit(Priority.UPLOAD, lambda: ran.append(1))
    queued.cancel()
    await asyncio.sleep(0)  # the cancellation reaches the pool's job on the next loop turn
    gate.set()
    await blocker
    assert await pool.submit(Priority.UPLOAD, lambda: "after") == "after"
    assert ran == []


async def test_shutdown_cancels_waiting_jobs_and_joins_threads(gate: threading.Event) -> None:
    pool = PriorityPool(1, upload_patience_s=60)
    running = occupy(pool, gate)
    waiting = pool.submit(Priority.UPLOAD, lambda: "never")
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    gate.set()
    await asyncio.to_thread(stopper.join)
    assert await running is True
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(RuntimeError):
        pool.submit(Priority.VARIANT, lambda: None)
