"""RateLimiter over a real redis-server shared by two limiters (two "processes").

Skipped only when redis-server is not installed and CI is not "true" (tests.support.redis).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from pichub.config import RateLimitSettings
from pichub.ratelimit import UNLIMITED, RateLimiter
from tests.support.redis import redis_server
from tests.support.server import free_port


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RateLimiter, RateLimiter]]:
    settings = RateLimitSettings(api="5/minute;100/hour", upload="2/minute", storage_uri=redis_url)
    first, second = RateLimiter.from_settings(settings), RateLimiter.from_settings(settings)
    await first.reset()
    yield first, second
    await first.reset()
    await first.close()
    await second.close()


async def test_limits_are_shared_between_limiters(pair: tuple[RateLimiter, RateLimiter]) -> None:
    first, second = pair
    remaining = [(await limiter.check("api", "token:1")).remaining for limiter in pair * 2]
    assert remaining == [4, 3, 2, 1]
    last = await first.check("api", "token:1")
    assert last.allowed and last.remaining == 0
    refused = await second.check("api", "token:1")
    assert not refused.allowed
    assert 1 <= refused.retry_after <= 60
    assert refused.reset > time.time()
    assert refused.headers()["X-RateLimit-Limit"] == "5"


async def test_keys_are_isolated(pair: tuple[RateLimiter, RateLimiter]) -> None:
    first, second = pair
    for _ in range(6):
        await first.check("api", "ip:10.0.0.1")
    other = await second.check("api", "ip:10.0.0.2")
    assert other.allowed and other.remaining == 4


async def test_refused_upload_does_not_consume_api(pair: tuple[RateLimiter, RateLimiter]) -> None:
    first, second = pair
    checks = [("api", "token:2"), ("upload", "token:2")]
    decisions = [await limiter.check_all(checks) for limiter in (first, second, first)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert (decisions[0].limit, decisions[0].remaining) == (2, 1)
    api = await second.check("api", "token:2")
    assert api.remaining == 2  # 5 - two allowed uploads - this request


async def test_ping(pair: tuple[RateLimiter, RateLimiter]) -> None:
    assert await pair[0].ping()


async def test_unreachable_redis_fails_open(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RateLimiter.from_settings(RateLimitSettings(storage_uri=dead))
    try:
        with caplog.at_level(logging.WARNING, logger="pichub.ratelimit"):
            decisions = [await limiter.check("api", "k") for _ in range(2)]
    finally:
        await limiter.close()
    assert decisions == [UNLIMITED, UNLIMITED]
    assert len([r for r in caplog.records if "unavailable" in r.message]) == 1
