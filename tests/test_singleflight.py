"""SingleFlight: one computation per key for concurrent callers, errors shared,
cancellation of one waiter harmless, entries gone when done."""

from __future__ import annotations

import asyncio

import pytest

from pichub.singleflight import SingleFlight


class Work:
    """A computation that waits for `release` and counts how often it ran."""

    def __init__(self, result: str = "done", error: Exception | None = None) -> None:
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.result = result
        self.error = error

    async def __call__(self) -> str:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.error:
            raise self.error
        return self.result


async def test_twenty_concurrent_calls_compute_once() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work("value")
    calls = [asyncio.create_task(sf.do("k", work)) for _ in range(20)]
    await work.started.wait()
    assert "k" in sf and len(sf) == 1
    work.release.set()
    assert await asyncio.gather(*calls) == ["value"] * 20
    assert work.runs == 1
    assert len(sf) == 0


async def test_different_keys_compute_separately() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    a, b = Work("a"), Work("b")
    a.release.set()
    b.release.set()
    assert list(await asyncio.gather(sf.do("a", a), sf.do("b", b))) == ["a", "b"]
    assert (a.runs, b.runs) == (1, 1)


async def test_a_later_call_computes_again() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work()
    work.release.set()
    await sf.do("k", work)
    await sf.do("k", work)
    assert work.runs == 2


async def test_an_exception_reaches_every_waiter_and_clears_the_key() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work(error=ValueError("boom"))
    calls = [asyncio.create_task(sf.do("k", work)) for _ in range(5)]
    await work.started.wait()
    work.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ValueError) and str(r) == "boom" for r in results)
    assert work.runs == 1
    assert "k" not in sf
    ok = Work("again")
    ok.release.set()
    assert await sf.do("k", ok) == "again"


async def test_cancelling_the_leader_does_not_cancel_the_work_for_others() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work("survived")
    leader = asyncio.create_task(sf.do("k", work))
    await work.started.wait()
    follower = asyncio.create_task(sf.do("k", work))
    await asyncio.sleep(0)  # let the follower join the flight
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    work.release.set()
    assert await follower == "survived"
    assert work.runs == 1


async def test_work_finishes_even_when_every_waiter_left() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work()
    finished = asyncio.Event()

    async def produce() -> str:
        value = await work()
        finished.set()
        return value

    caller = asyncio.create_task(sf.do("k", produce))
    await work.started.wait()
    caller.cancel()
    work.release.set()
    others = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.gather(*others, return_exceptions=True)  # the caller and the flight
    assert finished.is_set()  # the side effect (e.g. a cache write) still happened
    assert len(sf) == 0
