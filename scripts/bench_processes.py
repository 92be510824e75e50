#!/usr/bin/env python3
"""One PicHub process against two, on the engines of docs/scale-out.md (GitHub issue 18).

`scripts/bench-processes [--seconds N] [--repeat N] [--json out.json]` starts the real
engines the tests use: a throw-away PostgreSQL cluster (tests/support/postgres.py), a
SeaweedFS S3 server (tests/support/seaweed.py), a redis-server for the rate limits (on,
with limits far above the load) and nginx running docs/nginx.conf with its own /img/ cache
off, so every request reaches PicHub. Two `pichub serve` processes read one shared config
file, each with a data directory of its own as on two machines (tests/test_scale_out.py).
Three set-ups, each behind its own nginx and measured in turn within every repeat:

  local-1   SQLite + filesystem, one process (what a single box runs)
  scale-1   PostgreSQL + S3 + Redis, one process behind nginx
  scale-2   the same, two processes behind nginx round-robin

and for each: uploads/s of 12 MP camera JPEGs with default options (stored as WebP),
CONCURRENCY clients for `--seconds`; cold variants/s (`/img/{id}.webp?w=800`, each URL
once, widths moving by a pixel over the photos uploaded so far); cached hits with wrk
(--latency, 16 connections, a few variant URLs each cached by every upstream). The rows
are the medians of `--repeat` runs.

Then, once, the requests to the engines (scale set-up, counted by the engines themselves):
PostgreSQL's pg_stat_statements (preloaded into the tests' cluster) gives the write
transactions (calls of the writer's `pg_advisory_xact_lock`, docs/scale-out.md) and every
statement; its statement log (log_min_duration_statement=0, epoch-ms timestamps) gives
how long each write transaction held the writer lock (lock granted -> COMMIT done);
SeaweedFS's Prometheus counter `SeaweedFS_s3_request_total` gives the S3 requests by
type. The background traffic of an idle window of the same length is subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
from bench import camera_jpeg, cpu_seconds, parse_wrk, percentile  # noqa: E402

from tests.support import postgres  # noqa: E402
from tests.support.nginx import Nginx  # noqa: E402
from tests.support.redis import redis_server  # noqa: E402
from tests.support.seaweed import Seaweed, _free_ports, weed_binary  # noqa: E402
from tests.support.server import Server  # noqa: E402
from tests.test_scale_out import SECRET, _toml  # noqa: E402

SIZE = (4000, 3000)  # 12 MP
PHOTOS = 6  # distinct source photos; each upload is made unique by a JPEG comment
CONCURRENCY = 4
HIT_CONNECTIONS = 16
HIT_URLS = 4
COUNT_UPLOADS = 12
NO_NGINX_CACHE = {"        proxy_cache pichub_img;\n": ""}  # PicHub answers every /img/


# --- the engines -----------------------------------------------------------------------------

def _postgres_with_statistics() -> None:
    """Make the tests' cluster start with pg_stat_statements and a statement log it can
    switch on (`tests/support/postgres.py` starts `postgres` with fixed options)."""
    real = subprocess

    def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if any(arg.endswith("/postgres") for arg in argv):
            argv = [*argv, "-c", "shared_preload_libraries=pg_stat_statements",
                    "-c", "pg_stat_statements.track_utility=on", "-c", "logging_collector=on",
                    "-c", "log_line_prefix=%n %p "]  # the log is switched on by ALTER SYSTEM
        return real.Popen(argv, **kwargs)

    postgres.subprocess = types.SimpleNamespace(  # type: ignore[assignment]
        run=real.run, Popen=popen, DEVNULL=real.DEVNULL, PIPE=real.PIPE,
        TimeoutExpired=real.TimeoutExpired)


class MeteredSeaweed(Seaweed):
    """The tests' SeaweedFS with its Prometheus metrics on a port of its own."""

    def command(self) -> list[str]:
        if not hasattr(self, "metrics_port"):
            self.metrics_port = _free_ports(1)[0]
        return [f"-metricsPort={self.metrics_port}" if arg == "-metricsPort=0" else arg
                for arg in super().command()]

    def s3_requests(self) -> Counter[str]:
        """S3 requests answered so far, by type (GET, PUT, DELETE, ...), every bucket."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            text = resp.read().decode()
        counts: Counter[str] = Counter()
        for labels, value in re.findall(r"^SeaweedFS_s3_request_total\{([^}]*)\} (\S+)$", text,
                                        re.MULTILINE):
            kind = re.search(r'type="([^"]*)"', labels)
            counts[kind.group(1) if kind else "?"] += round(float(value))
        return counts


class Pg:
    """The statistics of the bench's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cluster = postgres._running()
        self.cluster.run(self._execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))

    async def _execute(self, sql: str) -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    def statements(self) -> Counter[str]:
        """Calls so far of every statement on the bench's database, by its text."""
        rows = self.cluster.run(self._execute(
            "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = current_database()"))
        return Counter({row["query"]: row["calls"] for row in rows})

    def log_statements(self, on: bool) -> Path:
        """Switch the statement log on or off; the log directory."""
        value = 0 if on else -1
        self.cluster.run(self._execute(f"ALTER SYSTEM SET log_min_duration_statement = {value}"))
        self.cluster.run(self._execute("SELECT pg_reload_conf()"))
        time.sleep(0.3)
        return self.cluster.root / "data" / "log"


def write_transactions(log_dir: Path, since: float) -> tuple[list[float], Counter[str]]:
    """The write transactions logged after `since` (epoch s): how long each held the writer
    lock (from the log line of its granted `pg_advisory_xact_lock` to that of its COMMIT),
    and how many began with each statement (what they were)."""
    line = re.compile(r"^(\d+\.\d+) (\d+) LOG:  duration: [\d.]+ ms  (?:statement|execute "
                      r"[^:]*): (.*)$")
    granted: dict[str, float] = {}
    first: dict[str, str] = {}
    holds: list[float] = []
    kinds: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        for text in path.read_text(errors="replace").splitlines():
            found = line.match(text)
            if not found or float(found.group(1)) < since:
                continue
            at, pid, sql = float(found.group(1)), found.group(2), found.group(3).strip()
            if "pg_advisory_xact_lock" in sql:
                granted[pid] = at
            elif sql.upper().startswith(("COMMIT", "ROLLBACK")) and pid in granted:
                holds.append((at - granted.pop(pid)) * 1000)
                kinds[first.pop(pid, "(nothing)")] += 1
            elif pid in granted and pid not in first:
                first[pid] = sql[:60]
    return holds, kinds


# --- the set-ups -----------------------------------------------------------------------------

@dataclass
class Setup:
    """PicHub processes behind one nginx; `token` is the admin's."""

    name: str
    servers: list[Server]
    nginx: Nginx
    token: str
    ids: list[str] = field(default_factory=list)  # uploaded photos, for cold variants
    widths: Iterator[int] = field(default_factory=lambda: iter(range(800, 100_000)))

    @property
    def pids(self) -> list[int]:
        return [server.proc.pid for server in self.servers]


def write_config(folder: Path, sections: dict[str, dict[str, Any]]) -> Path:
    path = folder / "config.toml"
    path.write_text(_toml({"server": {"trusted_proxies": ["127.0.0.1/32"]},
                           "storage": {"min_free_mb": 0},
                           "images": {"cache_max_mb": 4096},
                           "auth": {"secret_key": SECRET}} | sections))
    return path


def start(name: str, folder: Path, config: Path, processes: int) -> Setup:
    env = {"PICHUB_CONFIG": str(config), "PICHUB_RATE_LIMITS__ENABLED": "true"}
    servers = [Server(folder / f"data{n}", env, cwd=ROOT) for n in range(processes)]
    upstreams = " ".join(f"server 127.0.0.1:{s.port};" for s in servers)
    nginx = Nginx(folder / "nginx", servers[0].port,
                  {"server 127.0.0.1:8080;": upstreams, **NO_NGINX_CACHE}, workers=1)
    found = re.search(r"API token: (\S+)", "".join(s.output for s in servers))
    assert found, "no admin token printed"
    return Setup(name, servers, nginx, found.group(1))


# --- load ------------------------------------------------------------------------------------

def unique(jpeg: bytes, n: int) -> bytes:
    """`jpeg` with a comment segment of its own, so no two uploads are the same file."""
    note = f"bench upload {n} {time.time_ns()}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + jpeg[2:]


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    count: int
    errors: int
    cpu_ms: float = 0.0  # PicHub's CPU (all its processes) per request


async def timed(pids: list[int], seconds: float,
                one: Callable[[int], Awaitable[bool]]) -> Run:
    """CONCURRENCY workers call `one(n)` until time is up; rate per second of successes."""
    latencies: list[float] = []
    errors = 0
    numbers = iter(range(10**9))
    cpu = sum(cpu_seconds(pid) for pid in pids)
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() - started < seconds:
            begin = time.perf_counter()
            if await one(next(numbers)):
                latencies.append((time.perf_counter() - begin) * 1000)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    used = sum(cpu_seconds(pid) for pid in pids) - cpu
    return Run(len(latencies) / elapsed, percentile(latencies, 50), percentile(latencies, 99),
               len(latencies), errors, used * 1000 / max(1, len(latencies)))


async def upload(session: aiohttp.ClientSession, base: str, setup: Setup, data: bytes) -> bool:
    form = aiohttp.FormData()
    form.add_field("files[]", data, filename="photo.jpg", content_type="image/jpeg")
    async with session.post(f"{base}/api/v1/upload", data=form,
                            headers={"Authorization": f"Bearer {setup.token}"}) as resp:
        body = await resp.json()
    if resp.status != 201:
        print(f"  upload: {resp.status} {body}", file=sys.stderr)
        return False
    setup.ids.append(body["data"][0]["id"])
    return True


async def uploads(session: aiohttp.ClientSession, setup: Setup, photos: list[bytes],
                  seconds: float) -> Run:
    async def one(n: int) -> bool:
        return await upload(session, setup.nginx.https, setup, unique(photos[n % len(photos)], n))
    return await timed(setup.pids, seconds, one)


def cold_urls(setup: Setup) -> Iterator[str]:
    """URLs never asked before: every photo at w=800, then 801, 802, ..."""
    while True:
        width = next(setup.widths)
        for image_id in list(setup.ids):
            yield f"/img/{image_id}.webp?w={width}"


async def get(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status == 200


async def cold(session: aiohttp.ClientSession, setup: Setup, seconds: float) -> Run:
    urls = cold_urls(setup)
    return await timed(setup.pids, seconds,
                       lambda _: get(session, setup.nginx.https + next(urls)))


async def hits(session: aiohttp.ClientSession, setup: Setup, seconds: float,
               folder: Path) -> Run:
    """wrk on HIT_URLS variants, each made beforehand on every process."""
    paths = [f"/img/{image_id}.webp?w=640" for image_id in setup.ids[:HIT_URLS]]
    for server in setup.servers:
        for path in paths:
            assert await get(session, server.base + path)
    script = folder / f"hits-{setup.name}.lua"
    script.write_text("paths = {" + ", ".join(f'"{p}"' for p in paths) + "}\ni = 0\n"
                      "request = function()\n  i = i % #paths + 1\n"
                      "  return wrk.format(\"GET\", paths[i])\nend\n")
    cpu = sum(cpu_seconds(pid) for pid in setup.pids)
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{HIT_CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
        "-s", str(script), setup.nginx.https,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    rps, p50, p99, total, errors = parse_wrk(out.decode())
    used = sum(cpu_seconds(pid) for pid in setup.pids) - cpu
    return Run(rps, p50, p99, total, errors, used * 1000 / max(1, total))


# --- the engine counts -----------------------------------------------------------------------

async def engine_counts(session: aiohttp.ClientSession, setup: Setup, pg: Pg,
                        weed: MeteredSeaweed, photos: list[bytes]) -> dict[str, Any]:
    """Per upload, per cold variant (on the process that took the upload and on the other)
    and per delete: write transactions, all statements and S3 requests, idle traffic out."""
    first, second = (server.base for server in setup.servers)
    n = COUNT_UPLOADS

    async def window(action: Callable[[], Awaitable[None]]) -> tuple[Counter[str],
                                                                     Counter[str], float]:
        statements, requests = pg.statements(), weed.s3_requests()
        began = time.perf_counter()
        await action()
        elapsed = time.perf_counter() - began
        return pg.statements() - statements, weed.s3_requests() - requests, elapsed

    idle_sql, idle_s3, idle_s = await window(lambda: asyncio.sleep(10))
    log_dir = pg.log_statements(on=True)
    mine = Setup(setup.name, setup.servers, setup.nginx, setup.token)

    async def upload_all() -> None:
        queue = iter(range(n))

        async def worker() -> None:
            for k in queue:
                assert await upload(session, first, mine, unique(photos[k % len(photos)], k))
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    async def variants(base: str, width: int) -> None:
        for image_id in mine.ids:
            assert await get(session, f"{base}/img/{image_id}.webp?w={width}")

    async def delete_all() -> None:
        for image_id in mine.ids:
            async with session.delete(f"{first}/api/v1/images/{image_id}",
                                      headers={"Authorization": f"Bearer {setup.token}"}) as r:
                assert r.status in (200, 204), r.status

    steps: dict[str, Callable[[], Awaitable[None]]] = {
        "upload (4 concurrent)": upload_all,
        "cold variant, same process": lambda: variants(first, 810),
        "cold variant, other process": lambda: variants(second, 811),
        "delete": delete_all}
    found: dict[str, Any] = {}
    for name, action in steps.items():
        since = time.time()
        sql, s3, elapsed = await window(action)
        holds, kinds = write_transactions(log_dir, since)
        share = elapsed / idle_s
        writes = sum(c for q, c in sql.items() if "pg_advisory_xact_lock" in q)
        idle_writes = sum(c for q, c in idle_sql.items() if "pg_advisory_xact_lock" in q)
        statements = sum(sql.values()) - share * sum(idle_sql.values())
        s3_by_type = {k: (v - share * idle_s3.get(k, 0)) / n for k, v in sorted(s3.items())}
        found[name] = {"write_transactions": (writes - share * idle_writes) / n,
                       "statements": statements / n,
                       "s3_requests": sum(s3_by_type.values()),
                       "s3_by_type": {k: round(v, 2) for k, v in s3_by_type.items()
                                      if round(v, 2)},
                       "seconds": elapsed,
                       "writer_lock_hold_ms": {
                           "count": len(holds), "p50": percentile(holds, 50),
                           "p99": percentile(holds, 99),
                           "mean": statistics.fmean(holds) if holds else float("nan")},
                       "write_transactions_began_with": dict(kinds.most_common())}
    pg.log_statements(on=False)
    found["idle_per_s"] = {"statements": sum(idle_sql.values()) / idle_s,
                           "s3_requests": sum(idle_s3.values()) / idle_s}
    return found


# --- orchestration ---------------------------------------------------------------------------

def versions() -> dict[str, str]:
    def out(*argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except OSError:
            return "not found"
        return (done.stdout + done.stderr).strip().splitlines()[0]

    pg_bin = postgres._bin("postgres") or "postgres"
    return {"nproc": out("nproc"), "postgres": out(pg_bin, "--version"),
            "weed": out(weed_binary() or "weed", "version"),
            "nginx": out(shutil.which("nginx", path="/usr/sbin:/usr/bin") or "nginx", "-v"),
            "redis-server": out("redis-server", "--version"), "wrk": out("wrk", "-v")}


def median_run(runs: list[Run]) -> dict[str, Any]:
    chosen = sorted(runs, key=lambda r: r.rate)[(len(runs) - 1) // 2]
    return {"rate": chosen.rate, "p50_ms": chosen.p50_ms, "p99_ms": chosen.p99_ms,
            "cpu_ms": statistics.median(r.cpu_ms for r in runs),
            "runs": [round(r.rate, 2) for r in runs], "errors": sum(r.errors for r in runs)}


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = ["| Set-up | Uploads/s (p50 ms) | Cold variants/s (p50 ms) | Hits req/s "
            "| Hit p50 / p99 ms | CPU ms per upload / variant / hit |",
            "|---|---|---|---|---|---|"]
    for name, r in results.items():
        up, co, hi = r["uploads"], r["cold"], r["hits"]
        rows.append(f"| {name} | {up['rate']:.2f} ({up['p50_ms']:.0f}) | {co['rate']:.1f} "
                    f"({co['p50_ms']:.0f}) | {hi['rate']:.0f} | {hi['p50_ms']:.2f} / "
                    f"{hi['p99_ms']:.2f} | {up['cpu_ms']:.0f} / {co['cpu_ms']:.0f} / "
                    f"{hi['cpu_ms']:.2f} |")
    return "\n".join(rows)


def counts_table(counts: dict[str, Any]) -> str:
    rows = ["| Per request | Write transactions | SQL statements | S3 requests (by type) |",
            "|---|---|---|---|"]
    for name, c in counts.items():
        if "write_transactions" in c:
            kinds = ", ".join(f"{k} {v:g}" for k, v in c["s3_by_type"].items()) or "-"
            rows.append(f"| {name} | {c['write_transactions']:.2f} | {c['statements']:.1f} | "
                        f"{c['s3_requests']:.2f} ({kinds}) |")
    rows.append("\nWriter lock held per write transaction (lock granted -> COMMIT):")
    for name, c in counts.items():
        hold = c.get("writer_lock_hold_ms", {})
        if hold.get("count"):
            began = "; ".join(f"{n}x {q}" for q, n in c["write_transactions_began_with"].items())
            rows.append(f"  {name}: p50 {hold['p50']:.1f} ms, p99 {hold['p99']:.1f} ms, mean "
                        f"{hold['mean']:.1f} ms over {hold['count']} ({began})")
    return "\n".join(rows)


async def bench(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    photos = [camera_jpeg(SIZE, 1800 + n) for n in range(PHOTOS)]
    print(f"{PHOTOS} photos of {SIZE[0]}x{SIZE[1]}, {statistics.mean(map(len, photos)) / 1e6:.1f}"
          f" MB each on average, made in {time.perf_counter() - started:.0f} s", flush=True)
    _postgres_with_statistics()
    weed = MeteredSeaweed()
    url = postgres.fresh_url()
    pg = Pg(url)
    with redis_server() as redis_url:
        limits = {"enabled": True, "storage_uri": redis_url, "api": "1000000/hour",
                  "upload": "1000000/hour", "img_miss": "1000000/hour"}
        (folder / "scale").mkdir()
        (folder / "local").mkdir()
        scale = write_config(folder / "scale", {
            "rate_limits": limits, "database": {"url": url},
            "storage": {"min_free_mb": 0, "backend": "s3",
                        "s3": weed.settings(weed.fresh_bucket())}})
        local = write_config(folder / "local", {"rate_limits": limits})
        one = start("local-1", folder / "local", local, 1)
        two = start("scale-2", folder / "scale", scale, 2)
        # scale-1: the first of those two processes, alone behind an nginx of its own.
        alone = Setup("scale-1", two.servers[:1],
                      Nginx(folder / "scale" / "nginx-one", two.servers[0].port,
                            NO_NGINX_CACHE, workers=1), two.token)
        setups = [one, alone, two]
        runs: dict[str, dict[str, list[Run]]] = {s.name: {"uploads": [], "cold": [], "hits": []}
                                                 for s in setups}
        connector = aiohttp.TCPConnector(limit=64, ssl=False)
        timeout = aiohttp.ClientTimeout(total=300)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                for rep in range(args.repeat):
                    for setup in setups:
                        up = await uploads(session, setup, photos, args.seconds)
                        co = await cold(session, setup, args.seconds)
                        hi = await hits(session, setup, args.seconds, folder)
                        for kind, run in (("uploads", up), ("cold", co), ("hits", hi)):
                            runs[setup.name][kind].append(run)
                        print(f"run {rep + 1} {setup.name}: {up.rate:.2f} uploads/s, "
                              f"{co.rate:.1f} cold/s, {hi.rate:.0f} hits/s "
                              f"(p50 {hi.p50_ms:.2f} ms, p99 {hi.p99_ms:.2f} ms)", flush=True)
                counts = await engine_counts(session, two, pg, weed, photos)
        finally:
            for setup in setups:
                setup.nginx.stop()
                for server in setup.servers:
                    if server.proc.poll() is None:
                        server.stop()
            weed.close()
    results = {name: {kind: median_run(r) for kind, r in kinds.items()}
               for name, kinds in runs.items() if args.repeat}
    return {"results": results, "counts": counts, "versions": versions(),
            "seconds": args.seconds, "repeat": args.repeat, "concurrency": CONCURRENCY,
            "hit_connections": HIT_CONNECTIONS, "photo": f"{SIZE[0]}x{SIZE[1]} JPEG q90",
            "total_s": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs; rows are the medians (0: only the engine counts)")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pichub-bench-processes-"))
    if os.geteuid() == 0:
        folder.chmod(0o755)
    try:
        found = asyncio.run(bench(args, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nMedians of {args.repeat} runs, {args.seconds:g} s each; {CONCURRENCY} clients "
          f"for uploads and cold variants, wrk -c{HIT_CONNECTIONS} for hits:\n")
    print(table(found["results"]))
    print("\nRequests to the engines (scale set-up, idle background traffic subtracted):\n")
    print(counts_table(found["counts"]))
    print("\n" + "\n".join(f"{k}: {v}" for k, v in found["versions"].items()))
    print(f"total {found['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    errors = sum(kind["errors"] for r in found["results"].values() for kind in r.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
