"""The image pool takes the most urgent job first: variants before queued uploads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from pichub.imaging.pool import MemoryBudget, Priority, PriorityPool


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


async def test_memory_budget_admits_what_fits_first_come_first_served() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []
    release = {name: asyncio.Event() for name in ("a", "b", "c", "d")}

    async def job(name: str, amount: int) -> None:
        async with budget.reserve(amount):
            order.append(name)
            await release[name].wait()

    tasks = [asyncio.create_task(job("a", 60))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(job("b", 60)), asyncio.create_task(job("c", 10))]
    await asyncio.sleep(0)
    assert order == ["a"] and budget.in_use == 60  # c would fit, but b came first
    release["a"].set()
    await asyncio.sleep(0.01)
    assert order == ["a", "b", "c"] and budget.in_use == 70
    tasks.append(asyncio.create_task(job("d", 500)))  # bigger than the whole budget
    await asyncio.sleep(0.01)
    assert order == ["a", "b", "c"]
    release["b"].set()
    release["c"].set()
    await asyncio.sleep(0.01)
    assert order == ["a", "b", "c", "d"] and budget.in_use == 100  # alone, capped share
    release["d"].set()
    await asyncio.gather(*tasks)
    assert budget.in_use == 0


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    budget = MemoryBudget(100)
    holder_done = asyncio.Event()

    async def hold() -> None:
        async with budget.reserve(90):
            await holder_done.wait()

    async def want(amount: int) -> str:
        async with budget.reserve(amount):
            return "ran"

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    big = asyncio.create_task(want(50))
    small = asyncio.create_task(want(10))
    await asyncio.sleep(0)
    assert not small.done()  # queued behind `big`
    big.cancel()
    assert await small == "ran"  # fits next to the holder once `big` left the line
    holder_done.set()
    await holder
    assert budget.in_use == 0
