"""Rate limits (README: Rate limits; docs/security.md): a thin wrapper over the `limits` package.

Buckets, each one or more windows parsed once from `RateLimitSettings` with
`limits.parse_many`: `api` (every API request, per token or client IP),
`upload` (additionally on `/upload`), `img_miss` (variant cache misses, per
client IP), `login` (per IP and per username), `two_factor` (codes of two-factor
sign-in, per IP and per user) and `signup` (open sign-ups, per IP). The counters live in a
`limits` async storage: process memory by default, Redis (`redis://…`) when
several processes must share them.

Choices, so the middleware can rely on them:

- Fixed windows (`FixedWindowRateLimiter`): one counter per window and caller,
  and an exact `X-RateLimit-Reset` (the end of the caller's current window,
  which starts at the caller's first hit in it).
- A refused request consumes nothing: every window of the check is first
  *tested*, and only when all pass is each one *hit*. A client that keeps
  hammering while blocked is let in as soon as the binding window ends, and a
  refusal by the hour window does not eat into the minute window. (With Redis,
  two processes can both pass the test for the last slot; the hit that
  overshoots is then refused. Windows already hit in that call keep the hit.)
- Storage failures (Redis down) fail open: the request is allowed without
  rate-limit headers and a warning is logged once per outage. Limits protect
  the service; they must not take it down.
- Memory storage is `limits`' MemoryStorage with its expiry sweep paced
  (`PacedMemoryStorage`): expired counters are dropped within seconds, so
  memory follows the callers active within the longest window.
- Disabled limits (`enabled = false`): `check` returns `UNLIMITED`, whose
  `headers()` is empty, so no rate-limit headers are sent at all.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

from pichub.config import RateLimitSettings
from pichub.errors import RateLimited

log = logging.getLogger(__name__)

BUCKETS: tuple[str, ...] = ("api", "upload", "img_miss", "login", "two_factor", "signup")
REDIS_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a check, described by its most constraining window.

    `reset` is a Unix time (whole seconds, rounded up); `retry_after` is 0 when
    allowed, else the whole seconds (≥ 1) until the request can succeed.
    `unlimited` marks the answer of a disabled (or unreachable) limiter.
    """

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int = 0
    unlimited: bool = False

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-*` (+ `Retry-After` when refused); empty when unlimited."""
        if self.unlimited:
            return {}
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers

    def error(self) -> RateLimited:
        """The 429 to raise for a refused decision, carrying the headers."""
        return RateLimited(
            f"Rate limit exceeded. Try again in {self.retry_after} seconds.",
            {"limit": self.limit, "reset": self.reset, "retry_after": self.retry_after},
            headers=self.headers(),
        )

    @staticmethod
    def combine(a: Decision, b: Decision) -> Decision:
        """The more constraining of two decisions (`a` on a full tie).

        A refusal beats an allowance; of two refusals, the later reset wins
        (that is when the request can succeed); of two allowances, the lower
        `remaining` wins, then the sooner reset. Unlimited loses to anything.
        """
        if a.unlimited or b.unlimited:
            return b if a.unlimited else a
        if a.allowed != b.allowed:
            return b if a.allowed else a
        if not a.allowed:
            return b if b.reset > a.reset else a
        return b if (b.remaining, b.reset) < (a.remaining, a.reset) else a


def user_rate_key(user_id: int) -> str:
    """The rate-limit identity of a signed-in user, whatever token or session they use."""
    return f"user:{user_id}"


UNLIMITED = Decision(allowed=True, limit=0, remaining=0, reset=0, unlimited=True)


class PacedMemoryStorage(MemoryStorage):
    """`limits`' MemoryStorage whose full expiry sweep runs at most every `sweep_interval_s`.

    Upstream starts a sweep over *every* counter after each hit once the
    previous sweep is done: with 100,000 callers that is ~100 ms of blocked
    event loop per request (see scripts/bench_ratelimit.py). Expired counters
    are already ignored on read, so the sweep only reclaims memory, and doing
    it every few seconds is enough. The hook is a private name of `limits`;
    tests/test_ratelimit.py fails if an upgrade renames it.
    """

    def __init__(self, sweep_interval_s: float = 5.0) -> None:
        super().__init__()
        self.sweep_interval_s = sweep_interval_s
        self._last_sweep = -math.inf

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_interval_s:
            self._last_sweep = now
            # The name-mangled `__schedule_expiry` of limits' MemoryStorage.
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]

    async def sweep(self) -> None:
        """Reclaim expired counters now, whatever the pacing (tests, benchmarks)."""
        self._last_sweep = -math.inf
        await self._MemoryStorage__schedule_expiry()
        if self.timer is not None:
            await self.timer

    async def close(self) -> None:
        """Stop a sweep still pending, so no task outlives the app."""
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()


@dataclass(frozen=True, slots=True)
class _Backend:
    storage: Storage
    failures: tuple[type[Exception], ...]  # storage errors that make the limiter fail open
    close: Callable[[], Awaitable[None]]


def open_backend(uri: str) -> _Backend:
    """The storage named by `rate_limits.storage_uri` (`memory://` or `redis://…`).

    The scheme and the `redis` package were checked when the settings loaded
    (`RateLimitSettings`), so a bad URI stops start-up before anything opens.
    """
    if urllib.parse.urlsplit(uri).scheme.removeprefix("async+") == "memory":
        storage = PacedMemoryStorage()
        return _Backend(storage, (), storage.close)
    return _redis_backend(uri.removeprefix("async+"))


def _redis_backend(uri: str) -> _Backend:
    from redis.asyncio import ConnectionPool
    from redis.exceptions import RedisError

    pool = ConnectionPool.from_url(
        uri.replace("redis+unix://", "unix://", 1),
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    # Our own pool, so that close() can release its connections.
    options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(f"async+{uri}", implementation="redispy", **options)
    return _Backend(storage, (RedisError, OSError), pool.aclose)


@dataclass(frozen=True, slots=True)
class _Window:
    item: RateLimitItem
    ids: tuple[str, str]  # (bucket, caller key)


class RateLimiter:
    """Checks callers against the configured buckets; one per app (`from_settings`)."""

    def __init__(
        self,
        buckets: Mapping[str, Sequence[RateLimitItem]],
        backend: _Backend | None,
    ) -> None:
        self._buckets = {name: tuple(items) for name, items in buckets.items()}
        self._backend = backend
        self._strategy = FixedWindowRateLimiter(backend.storage) if backend else None
        self._outage = False

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimiter:
        """Parse every bucket once; open the storage unless limits are disabled."""
        buckets = {name: parse_many(getattr(settings, name)) for name in BUCKETS}
        backend = open_backend(settings.storage_uri) if settings.enabled else None
        return cls(buckets, backend)

    @property
    def enabled(self) -> bool:
        return self._strategy is not None

    @property
    def storage(self) -> Storage | None:
        """The `limits` storage (None when disabled); for tests and health checks."""
        return self._backend.storage if self._backend else None

    async def check(self, bucket: str, key: str, cost: int = 1) -> Decision:
        """Count one request of `key` (e.g. "user:12", "ip:1.2.3.4") against `bucket`;
        `cost` > 1 charges a request worth several (a costly image decode)."""
        return await self.check_all([(bucket, key)], cost)

    async def check_all(self, checks: Iterable[tuple[str, str]], cost: int = 1) -> Decision:
        """Count one request (of `cost` units) against several (bucket, key) pairs at once.

        All windows are tested before any is hit, so a refusal by one pair
        consumes none of the others (e.g. `/upload`: api + upload; login: per
        IP + per username). Returns the most constraining window overall.
        """
        if self._strategy is None or self._backend is None:
            return UNLIMITED
        windows = self._windows(checks)
        try:
            decision = await _count(self._strategy, windows, cost)
        except self._backend.failures as exc:
            self._note_outage(exc)
            return UNLIMITED
        self._note_recovery()
        return decision

    async def ping(self) -> bool:
        """True when the storage answers (always for memory)."""
        return True if self._backend is None else await self._backend.storage.check()

    async def reset(self) -> None:
        """Forget every counter (tests, admin)."""
        if self._backend is not None:
            await self._backend.storage.reset()

    async def close(self) -> None:
        """Release the storage (pending sweep task, Redis connections)."""
        if self._backend is not None:
            await self._backend.close()

    def _windows(self, checks: Iterable[tuple[str, str]]) -> list[_Window]:
        windows: list[_Window] = []
        for bucket, key in dict.fromkeys(checks):
            if bucket not in self._buckets:
                raise ValueError(f"unknown rate limit bucket {bucket!r}")
            windows += [_Window(item, (bucket, key)) for item in self._buckets[bucket]]
        return windows

    def _note_outage(self, exc: Exception) -> None:
        if not self._outage:
            log.warning("rate limit storage unavailable, allowing requests: %s", exc)
        self._outage = True

    def _note_recovery(self) -> None:
        if self._outage:
            log.warning("rate limit storage is back")
        self._outage = False


async def _count(strategy: FixedWindowRateLimiter, windows: list[_Window], cost: int) -> Decision:
    """Test every window, then hit every window; describe the binding one."""
    refused = [w for w in windows if not await strategy.test(w.item, *w.ids, cost=cost)]
    if refused:
        return await _summarise(strategy, refused, allowed=False)
    for window in windows:
        if not await strategy.hit(window.item, *window.ids, cost=cost):
            return await _summarise(strategy, [window], allowed=False)
    return await _summarise(strategy, windows, allowed=True)


async def _summarise(
    strategy: FixedWindowRateLimiter, windows: list[_Window], *, allowed: bool
) -> Decision:
    decisions = []
    for window in windows:
        reset_time, remaining = await strategy.get_window_stats(window.item, *window.ids)
        # `now` after the read: Redis derives reset_time from a whole-second TTL + time().
        now = time.time()
        decisions.append(_window_decision(window.item, reset_time, remaining, allowed, now))
    return functools.reduce(Decision.combine, decisions)


def _window_decision(
    item: RateLimitItem, reset_time: float, remaining: int, allowed: bool, now: float
) -> Decision:
    if allowed:
        return Decision(True, item.amount, max(0, remaining), math.ceil(reset_time))
    retry_after = max(1, math.ceil(reset_time - now))
    return Decision(False, item.amount, 0, math.ceil(reset_time), retry_after)
