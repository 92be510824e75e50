"""The webhook delivery worker: outbox → deliveries → signed POSTs.

The delivery rules: docs/rules.md, "Events and webhooks".

One asyncio task loops: fan undispatched events into deliveries, lease the
due ones, and start one task per delivery. Isolation: at most one attempt per
endpoint is in flight and at most `webhooks.concurrency` in all, so a hanging
endpoint holds only its own slot until `timeout_s`; other endpoints keep
flowing. All state lives in SQLite (`pichub.db.webhooks`): a worker killed at
any point leaves pending deliveries whose lease simply expires, and a new
worker picks them up (delivery is at least once).

Users' endpoints go through an SSRF-guarded session (`ssrf.GuardedResolver`,
plus `check_literal` for IP hosts). The global endpoint (`[webhooks] url`) is
the operator's own config, so it is trusted and may be on a private network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.abc import AbstractResolver

from pichub.config import WebhookSettings
from pichub.db import deliveries as deliveries_db
from pichub.db.database import Database, Row
from pichub.errors import PichubError
from pichub.webhooks import signing, ssrf

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 5.0  # past the timeout, before an unfinished claim is due again
PRUNE_EVERY_S = 3600.0
JITTER = 0.2  # backoff is scaled by a random factor in [1 - JITTER, 1 + JITTER]
BACKOFF_FACTOR = 4
BACKOFF_CAP_S = 12 * 3600.0


def _now() -> datetime:
    return datetime.now(UTC)


def backoff_s(base_s: float, attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based), jittered ±20%.

    Growth ×4 per attempt, each wait capped at 12 h: with the defaults (30 s,
    8 attempts) the waits are 30 s, 2 m, 8 m, 32 m, 2.1 h, 8.5 h, 12 h, so the
    last attempt comes about a day after the first, as docs/rules.md says.
    """
    nominal = min(base_s * BACKOFF_FACTOR ** (attempt - 1), max(base_s, BACKOFF_CAP_S))
    return float(nominal * random.uniform(1 - JITTER, 1 + JITTER))


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt: delivered when `error` is None."""

    response_status: int | None
    error: str | None


class WebhookWorker:
    """Delivers webhooks in the background; `start()`, `wake()`, `await stop()`.

    Counters for metrics: `await queue_depth()` (pending deliveries),
    `delivered_total`, `failures_total` (failed attempts, retried or not) and
    `exhausted_total` (deliveries given up as `failed`).
    """

    def __init__(self, db: Database, settings: WebhookSettings, *,
                 resolver: AbstractResolver | None = None, poll_s: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.poll_s = poll_s
        self.delivered_total = 0
        self.failures_total = 0
        self.exhausted_total = 0
        self._resolver = resolver
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}  # endpoint key → attempt task
        self._claimed: dict[int, int] = {}  # endpoint key → delivery id, until recorded
        self._sending: set[int] = set()  # endpoint keys whose request is on the wire
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None  # users' endpoints: SSRF-guarded
        self._global_session: aiohttp.ClientSession | None = None
        self._next_prune = 0.0

    @property
    def global_endpoint(self) -> bool:
        return bool(self.settings.url)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the HTTP sessions and start the loop (call from the running event loop)."""
        if self._loop_task is not None:
            return
        self._stopping = False
        resolver = ssrf.GuardedResolver(self.settings.allow_private_networks, self._resolver)
        self._session = self._new_session(resolver)
        # The global endpoint comes from the operator's config, not from a user: trusted.
        self._global_session = self._new_session(self._resolver)
        self._loop_task = asyncio.create_task(self._run(), name="webhook-worker")

    def _new_session(self, resolver: AbstractResolver | None) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False,
                                         limit=self.settings.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)

    async def stop(self) -> None:
        """Stop the loop, abandon requests in flight (their leases are given back), close.

        Only the HTTP part of an attempt is cancelled; database work is never
        interrupted, so no transaction is cut in half.
        """
        self._stopping = True
        self._wakeup.set()
        try:
            if self._loop_task is not None:
                await self._loop_task
            for endpoint in self._sending:
                self._inflight[endpoint].cancel()
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
            abandoned = list(self._claimed.values())
            if abandoned:
                async with self.db.transaction() as conn:
                    await deliveries_db.release(conn, abandoned, _now())
        finally:
            self._loop_task = None
            self._inflight.clear()
            self._claimed.clear()
            self._sending.clear()
            for session in (self._session, self._global_session):
                if session is not None:
                    await session.close()
            self._session = self._global_session = None

    def wake(self) -> None:
        """Look for work now (after a transaction that wrote events)."""
        self._wakeup.set()

    async def queue_depth(self) -> int:
        return await deliveries_db.pending_count(self.db)

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                await self._tick()
                delay = await self._idle_delay()
            except Exception:
                log.exception("webhook worker: iteration failed")
                delay = self.poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _tick(self) -> None:
        if await deliveries_db.has_undispatched(self.db):
            async with self.db.transaction() as conn:
                await deliveries_db.dispatch_pending(conn, self.global_endpoint)
        await self._claim_and_start()
        if time.monotonic() >= self._next_prune:
            await self.prune()
            self._next_prune = time.monotonic() + PRUNE_EVERY_S

    async def _idle_delay(self) -> float:
        """Sleep until the next sendable delivery is due, at most `poll_s`."""
        if len(self._inflight) >= self.settings.concurrency:
            return self.poll_s  # a finishing attempt wakes the loop
        due = await deliveries_db.next_due(self.db, self._busy(), self.global_endpoint)
        if due is None:
            return self.poll_s
        return min(self.poll_s, max(0.005, (due - _now()).total_seconds()))

    def _busy(self) -> Collection[int]:
        return tuple(self._inflight)

    async def _claim_and_start(self) -> None:
        free = self.settings.concurrency - len(self._inflight)
        if free <= 0 or self._stopping:
            return
        now = _now()
        due = await deliveries_db.next_due(self.db, self._busy(), self.global_endpoint)
        if due is None or due > now:
            return  # nothing to claim: no write transaction
        lease = now + timedelta(seconds=self.settings.timeout_s + LEASE_MARGIN_S)
        async with self.db.transaction(serial=False) as conn:  # claim_due locks its rows
            rows = await deliveries_db.claim_due(conn, now, lease, free, self._busy(),
                                               self.global_endpoint)
        for row in rows:
            endpoint = int(row["endpoint"])
            self._claimed[endpoint] = int(row["id"])
            self._sending.add(endpoint)
            self._inflight[endpoint] = asyncio.create_task(
                self._attempt(endpoint, row), name=f"webhook-delivery-{row['id']}"
            )

    async def prune(self) -> tuple[int, int]:
        """Delete finished deliveries and dispatched events older than `retention_days`."""
        before = _now() - timedelta(days=self.settings.retention_days)
        async with self.db.transaction() as conn:
            return await deliveries_db.prune(conn, before)

    # --- one attempt -------------------------------------------------------------------------

    async def _attempt(self, endpoint: int, row: Row) -> None:
        try:
            try:
                outcome = await self._send(row)
            finally:
                self._sending.discard(endpoint)
            await self._record(row, outcome)
        except Exception:
            log.exception("webhook delivery %s: recording the attempt failed", row["id"])
        finally:
            self._inflight.pop(endpoint, None)
            self._wakeup.set()
        # Not reached when cancelled: then stop() gives the lease back.
        self._claimed.pop(endpoint, None)

    def _target(self, row: Row) -> tuple[str, str | None]:
        if row["webhook_id"] is None:
            secret = self.settings.secret
            return self.settings.url or "", None if secret is None else secret.get_secret_value()
        return str(row["url"]), str(row["secret"])

    async def _send(self, row: Row) -> Outcome:
        url, secret = self._target(row)
        trusted = row["webhook_id"] is None
        body = str(row["payload"]).encode("utf-8")
        try:
            ssrf.check_literal(url, self.settings.allow_private_networks or trusted)
            headers = signing.headers(secret, row["event_id"], int(time.time()), body, row["type"])
        except PichubError as exc:
            return Outcome(None, f"refused: {exc.message}")
        except ValueError as exc:
            return Outcome(None, f"cannot sign: {exc}")
        session = self._global_session if trusted else self._session
        assert session is not None
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await _post(session, url, body, headers)
        except TimeoutError:
            return Outcome(None, f"timeout after {self.settings.timeout_s:g}s")
        except aiohttp.ClientConnectorError as exc:
            return Outcome(None, _connect_error(exc))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(None, f"request error: {exc or type(exc).__name__}")

    async def _record(self, row: Row, outcome: Outcome) -> None:
        attempt = int(row["attempt"]) + 1
        async with self.db.transaction() as conn:
            if outcome.error is None:
                assert outcome.response_status is not None
                await deliveries_db.record_delivered(conn, row["id"], attempt,
                                                   outcome.response_status)
            else:
                retry_at = self._retry_at(attempt)
                await deliveries_db.record_failure(conn, row["id"], attempt,
                                                 outcome.response_status, outcome.error, retry_at)
        self._count(outcome, attempt)

    def _retry_at(self, attempt: int) -> datetime | None:
        if attempt >= self.settings.max_attempts:
            return None
        return _now() + timedelta(seconds=backoff_s(self.settings.backoff_base_s, attempt))

    def _count(self, outcome: Outcome, attempt: int) -> None:
        if outcome.error is None:
            self.delivered_total += 1
            return
        self.failures_total += 1
        if attempt >= self.settings.max_attempts:
            self.exhausted_total += 1


async def _post(session: aiohttp.ClientSession, url: str, body: bytes,
                headers: dict[str, str]) -> Outcome:
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
        if 200 <= resp.status < 300:
            return Outcome(resp.status, None)
        return Outcome(resp.status, f"HTTP {resp.status} {resp.reason or ''}".strip())


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    """A refused address (from GuardedResolver at connect time) reads as such."""
    if isinstance(exc.os_error, ssrf.RefusedAddress):
        return f"refused: {exc.os_error}"
    return f"connection error: {exc}"
