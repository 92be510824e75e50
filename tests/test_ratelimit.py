"""RateLimiter against the real `limits` MemoryStorage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter

from pichub.config import RateLimitSettings
from pichub.errors import RateLimited
from pichub.ratelimit import UNLIMITED, Decision, PacedMemoryStorage, RateLimiter

MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture
async def make_limiter() -> AsyncIterator[MakeLimiter]:
    made: list[RateLimiter] = []

    def make(**settings: Any) -> RateLimiter:
        limiter = RateLimiter.from_settings(RateLimitSettings(**settings))
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


def memory(limiter: RateLimiter) -> PacedMemoryStorage:
    storage = limiter.storage
    assert isinstance(storage, PacedMemoryStorage)
    return storage


async def test_headers_present_and_decreasing(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()  # defaults: 60/minute;1000/hour;10000/day
    before = time.time()
    seen = [(await limiter.check("api", "token:1")).headers() for _ in range(3)]
    assert [h["X-RateLimit-Limit"] for h in seen] == ["60"] * 3
    assert [h["X-RateLimit-Remaining"] for h in seen] == ["59", "58", "57"]
    reset = int(seen[0]["X-RateLimit-Reset"])
    assert before < reset <= before + 61
    assert all("Retry-After" not in h for h in seen)


async def test_over_the_limit_is_refused_with_retry_after(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="3/minute")
    allowed = [await limiter.check("api", "ip:1.2.3.4") for _ in range(3)]
    assert [d.allowed for d in allowed] == [True, True, True]
    assert allowed[-1].remaining == 0
    refused = await limiter.check("api", "ip:1.2.3.4")
    assert not refused.allowed
    assert (refused.limit, refused.remaining) == (3, 0)
    assert 1 <= refused.retry_after <= 60
    assert refused.reset > time.time()
    assert refused.headers()["Retry-After"] == str(refused.retry_after)
    assert refused.headers()["X-RateLimit-Remaining"] == "0"


async def test_refusal_error_is_a_429_with_headers(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(login="1/minute")
    await limiter.check("login", "ip:1.2.3.4")
    error = (await limiter.check("login", "ip:1.2.3.4")).error()
    assert isinstance(error, RateLimited)
    assert (error.status, error.code) == (429, "RATE_LIMIT_EXCEEDED")
    assert int(error.headers["Retry-After"]) >= 1
    assert error.details["limit"] == 1


async def test_most_constraining_window_is_reported(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="10/minute;3/hour", upload="10/minute;100/hour")
    decision = await limiter.check("api", "k")
    assert (decision.limit, decision.remaining) == (3, 2)  # the hour window
    decision = await limiter.check("upload", "k")
    assert (decision.limit, decision.remaining) == (10, 9)  # the minute window


async def test_equal_remaining_reports_the_sooner_reset(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="5/minute;5/hour")
    decision = await limiter.check("api", "k")
    assert decision.remaining == 4
    assert decision.reset <= time.time() + 61  # the minute window, not the hour


async def test_refusal_reports_when_every_blocking_window_ends(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="2/minute;2/hour")
    for _ in range(2):
        await limiter.check("api", "k")
    refused = await limiter.check("api", "k")
    assert not refused.allowed
    # Both windows are exhausted: retrying after the minute would still fail.
    assert refused.retry_after > 60
    assert refused.reset > time.time() + 60


async def test_keys_are_isolated(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="2/minute")
    for _ in range(3):
        await limiter.check("api", "token:A")
    assert not (await limiter.check("api", "token:A")).allowed
    other = await limiter.check("api", "token:B")
    assert other.allowed and other.remaining == 1


async def test_buckets_are_isolated(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="1/minute", img_miss="1/minute")
    assert (await limiter.check("api", "ip:1.1.1.1")).allowed
    assert (await limiter.check("img_miss", "ip:1.1.1.1")).allowed


async def test_refused_hit_consumes_no_other_window(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="10/minute;2/hour")
    results = [(await limiter.check("api", "k")).allowed for _ in range(5)]
    assert results == [True, True, False, False, False]
    minute = FixedWindowRateLimiter(memory(limiter))
    stats = await minute.get_window_stats(parse("10/minute"), "api", "k")
    assert stats.remaining == 8  # only the two allowed requests counted


async def test_upload_window_reported_when_most_constraining(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="60/minute", upload="2/minute")
    checks = [("api", "token:1"), ("upload", "token:1")]
    first = await limiter.check_all(checks)
    assert (first.limit, first.remaining) == (2, 1)
    await limiter.check_all(checks)
    refused = await limiter.check_all(checks)
    assert not refused.allowed and refused.limit == 2
    # The refused upload did not count against the api bucket.
    api = await limiter.check("api", "token:1")
    assert (api.limit, api.remaining) == (60, 57)


async def test_api_window_reported_when_most_constraining(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="3/minute", upload="10/minute")
    decision = await limiter.check_all([("api", "t"), ("upload", "t")])
    assert (decision.limit, decision.remaining) == (3, 2)


async def test_concurrent_checks_never_exceed_the_limit(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="10/minute")
    decisions = await asyncio.gather(*(limiter.check("api", "k") for _ in range(25)))
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))


async def test_disabled_always_allows_without_headers(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(enabled=False, api="1/minute")
    decisions = [await limiter.check("api", "k") for _ in range(5)]
    assert all(d is UNLIMITED for d in decisions)
    assert UNLIMITED.headers() == {}
    assert limiter.storage is None and not limiter.enabled


async def test_unknown_bucket_is_a_programming_error(make_limiter: MakeLimiter) -> None:
    with pytest.raises(ValueError, match="bucket"):
        await make_limiter().check("apii", "k")


def test_combine_prefers_refusal_then_lowest_remaining() -> None:
    ok_low = Decision(True, 10, 1, 2000)
    ok_high = Decision(True, 10, 5, 1000)
    no_soon = Decision(False, 10, 0, 1000, 5)
    no_late = Decision(False, 10, 0, 3000, 50)
    assert Decision.combine(ok_high, ok_low) is ok_low
    assert Decision.combine(ok_low, no_soon) is no_soon
    assert Decision.combine(no_soon, no_late) is no_late
    assert Decision.combine(UNLIMITED, ok_high) is ok_high
    assert Decision.combine(ok_high, UNLIMITED) is ok_high
    tie_late = Decision(True, 10, 1, 3000)
    assert Decision.combine(tie_late, ok_low) is ok_low


def test_sweep_pacing_hook_still_exists_upstream() -> None:
    # PacedMemoryStorage overrides this private name; a rename would silently un-pace it.
    assert "_MemoryStorage__schedule_expiry" in vars(MemoryStorage)


async def test_memory_storage_forgets_expired_keys(make_limiter: MakeLimiter) -> None:
    eager = memory(make_limiter(api="1/second"))
    eager.sweep_interval_s = 0
    paced_limiter = make_limiter(api="1/second")
    paced = memory(paced_limiter)
    paced.sweep_interval_s = 3600
    for storage in (eager, paced):
        await FixedWindowRateLimiter(storage).hit(parse("1/second"), "api", "ip:old")
    await asyncio.sleep(1.1)  # the only real wait: let the 1-second windows end
    for storage in (eager, paced):
        await FixedWindowRateLimiter(storage).hit(parse("1/second"), "api", "ip:new")
        assert storage.timer is not None
        await storage.timer
    assert [k for k in eager.storage if "ip:old" in k] == []
    assert [k for k in eager.expirations if "ip:old" in k] == []
    # Paced: not swept yet, but an expired counter never counts.
    assert [k for k in paced.storage if "ip:old" in k] != []
    fresh = await paced_limiter.check("api", "ip:old")
    assert fresh.allowed and fresh.remaining == 0
    assert [k for k in paced.storage if "ip:old" in k] != []  # a new window, newly counted


async def test_reset_forgets_every_counter(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(api="1/minute")
    await limiter.check("api", "k")
    await limiter.reset()
    assert (await limiter.check("api", "k")).allowed
    assert await limiter.ping()
