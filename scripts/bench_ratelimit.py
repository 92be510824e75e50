#!/usr/bin/env python3
"""Bounded benchmark of the in-memory rate limiter (pichub/ratelimit.py).

100,000 distinct client IPs (default; `--clients N`) each make one API
request, in-process, yielding to the event loop after every check as a server
would. Prints time per check, live counters and RSS (VmRSS / peak VmHWM):

1. short windows ("60/second;1000/2 seconds"), two rounds of fresh IPs with
   the windows left to expire in between: the counters are reclaimed and the
   peak RSS of round 2 stays at round 1's, i.e. memory is bounded by the
   callers active within the longest window, not by all callers ever seen;
2. the default api bucket ("60/minute;1000/hour;10000/day"): the cost of
   100,000 live callers (3 counters each), how long one full expiry sweep of
   limits' MemoryStorage takes at that size, and what a check costs when a
   sweep follows every hit as upstream does (the reason sweeps are paced).

Runs in well under 60 s on a small machine: `.venv/bin/python scripts/bench_ratelimit.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time
from pathlib import Path

from pichub.config import RateLimitSettings
from pichub.ratelimit import PacedMemoryStorage, RateLimiter

SHORT = "60/second;1000/2 seconds"
UNPACED_CHECKS = 30


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB; peak from getrusage where /proc is missing."""
    fields: dict[str, float] = {}
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    peak = fields.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return fields.get("VmRSS", peak), peak


def report(label: str, storage: PacedMemoryStorage | None = None) -> float:
    rss, hwm = memory_mb()
    live = f"  live counters {len(storage.storage):>7,}" if storage is not None else ""
    print(f"{label:<44} RSS {rss:7.1f} MiB  peak {hwm:7.1f} MiB{live}")
    return hwm


def ip_key(n: int) -> str:
    return f"ip:10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


async def hammer(limiter: RateLimiter, first: int, clients: int) -> None:
    started = time.perf_counter()
    for n in range(first, first + clients):
        decision = await limiter.check("api", ip_key(n))
        assert decision.allowed and decision.remaining == decision.limit - 1
        await asyncio.sleep(0)  # a server yields between requests: lets sweeps run
    elapsed = time.perf_counter() - started
    print(f"  {clients:,} checks in {elapsed:.1f} s = {elapsed / clients * 1e6:.0f} µs/check")


async def sweep_now(storage: PacedMemoryStorage) -> float:
    """Force one full upstream sweep; returns its duration in ms."""
    started = time.perf_counter()
    await storage.sweep()
    return (time.perf_counter() - started) * 1000


def paced(limiter: RateLimiter) -> PacedMemoryStorage:
    storage = limiter.storage
    assert isinstance(storage, PacedMemoryStorage)
    return storage


async def short_windows(clients: int) -> None:
    print(f"\n[1] short windows {SHORT!r}, sweep at most every 1 s")
    limiter = RateLimiter.from_settings(RateLimitSettings(api=SHORT))
    storage = paced(limiter)
    storage.sweep_interval_s = 1.0
    peaks = []
    for round_no in (1, 2):
        await hammer(limiter, round_no * clients, clients)
        report(f"  round {round_no}: after {clients:,} new IPs", storage)
        await asyncio.sleep(2.1)  # every window of the round has ended
        took = await sweep_now(storage)
        gc.collect()
        peaks.append(report(f"  round {round_no}: windows expired, swept ({took:.0f} ms)", storage))
    verdict = "bounded" if peaks[1] - peaks[0] < 0.1 * peaks[0] else "GREW"
    print(f"  peak growth round 1 → 2: {peaks[1] - peaks[0]:+.1f} MiB ({verdict})")
    await limiter.close()


async def default_windows(clients: int) -> None:
    print("\n[2] default api bucket '60/minute;1000/hour;10000/day', sweep every 5 s")
    limiter = RateLimiter.from_settings(RateLimitSettings())
    storage = paced(limiter)
    before, _ = memory_mb()
    await hammer(limiter, 0, clients)
    report(f"  after {clients:,} IPs (windows still open)", storage)
    rss, _ = memory_mb()
    print(f"  ≈ {(rss - before) * 1024 * 1024 / clients:,.0f} bytes per live caller (3 counters)")
    took = await sweep_now(storage)
    print(
        f"  one full MemoryStorage sweep at this size: {took:.0f} ms of blocked event loop"
        " (PacedMemoryStorage: at most one every 5 s)"
    )
    storage.sweep_interval_s = 0  # upstream behaviour: a sweep after every hit
    started = time.perf_counter()
    for n in range(UNPACED_CHECKS):
        await limiter.check("api", ip_key(n))
        await asyncio.sleep(0)
    per_check = (time.perf_counter() - started) / UNPACED_CHECKS * 1000
    print(f"  unpaced (upstream) sweeping at this size: {per_check:.1f} ms per check")
    await limiter.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=100_000)
    args = parser.parse_args()
    report("start")
    await short_windows(args.clients)
    await default_windows(args.clients)


if __name__ == "__main__":
    asyncio.run(main())
