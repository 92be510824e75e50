#!/usr/bin/env python3
"""Load and fault figures of the hardening work: `scripts/loadtest [mixed|uploads|drain] ...`.

Each scenario starts `python -m pichub serve` (or `--pyz FILE`) on loopback with
a fresh data dir and reports medians and peaks; nothing here is a pass/fail
test (the test suite asserts behaviour, this measures it).

  mixed    CLIENTS clients (default 200) for SECONDS (default 30), each looping over
           a weighted mix (--mix): 40 % `GET /api/v1/images`, 40 % one cached variant,
           10 % a ~150 KB JPEG upload, 10 % a cold variant (a width never asked
           before, 3 MP source stored with default options). Reports p50/p99 per
           kind of the successful answers, status counts, and the server's peak RSS.
  uploads  4 concurrent uploads of a 20 MP camera JPEG (default options: stored
           as WebP), then 4 concurrent ~45 MB PNGs; reports the peak RSS of
           each round and the wall time.
  drain    KEEPALIVE clients loop small uploads on keep-alive connections; after
           3 s the server gets SIGTERM. Reports seconds from SIGTERM to exit,
           uploads answered 201 after SIGTERM, uploads cut (no answer), and
           whether every 201 is stored after a restart.

Photos come from scripts/bench.py (deterministic, no downloads).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BIG, SEED, RssSampler, Server, camera_jpeg, percentile, photo  # noqa: E402

SMALL_3MP = (2000, 1500)


def _jpeg(size: tuple[int, int], seed: int, quality: int = 85) -> bytes:
    out = io.BytesIO()
    photo(size, seed).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _big_png(seed: int) -> bytes:
    """About 45 MB: a 5200x3600 RGBA photo (noisy pixels compress poorly in PNG)."""
    rgb = photo((5200, 3600), seed)
    rgba = rgb.convert("RGBA")
    out = io.BytesIO()
    rgba.save(out, "PNG", compress_level=1)
    return out.getvalue()


async def _upload(session: aiohttp.ClientSession, base: str, token: str, name: str,
                  data: bytes, **fields: str) -> tuple[int, dict[str, object]]:
    form = aiohttp.FormData()
    form.add_field("files[]", data, filename=name, content_type="application/octet-stream")
    for key, value in fields.items():
        form.add_field(key, value)
    async with session.post(f"{base}/api/v1/upload", data=form,
                            headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json(content_type=None)


def _summary(name: str, values: list[float]) -> str:
    return (f"{name:<8} n={len(values):<6} p50={percentile(values, 50) * 1000:8.0f} ms  "
            f"p99={percentile(values, 99) * 1000:8.0f} ms")


# --- mixed -------------------------------------------------------------------------------------

async def mixed(args: argparse.Namespace, workdir: Path) -> None:
    server = Server(workdir, _server_env(args))
    token = server.wait_token()
    sampler = RssSampler(server.proc.pid)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        source = _jpeg(SMALL_3MP, SEED + 1, 90)
        status, body = await _upload(session, server.base, token, "3mp.jpg", source)
        assert status == 201, body
        image_id = body["data"][0]["id"]  # type: ignore[index]
        hit_url = f"{server.base}/img/{image_id}.webp?w=400"
        async with session.get(hit_url) as resp:
            await resp.read()
        small = _jpeg((640, 480), SEED + 2, 95)
        print(f"  upload body {len(small) / 1000:.0f} KB; cold variants from a "
              f"{SMALL_3MP[0]}x{SMALL_3MP[1]} source stored as WebP")
        widths = itertools.count(200)
        latencies: dict[str, list[float]] = defaultdict(list)
        statuses: Counter[tuple[str, int]] = Counter()
        kinds = [kind for part in args.mix.split(",")
                 for kind, weight in [part.split("=")] for _ in range(int(weight))]
        deadline = time.monotonic() + args.seconds
        headers = {"Authorization": f"Bearer {token}"}

        async def one(kind: str) -> int:
            if kind == "upload":
                return (await _upload(session, server.base, token, "s.jpg", small))[0]
            if kind == "list":
                url = f"{server.base}/api/v1/images?per_page=20"
            elif kind == "hit":
                url = hit_url
            else:
                url = f"{server.base}/img/{image_id}.webp?w={next(widths)}"
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                return resp.status

        async def client(rng: random.Random) -> None:
            while time.monotonic() < deadline:
                kind = rng.choice(kinds)
                started = time.perf_counter()
                try:
                    status = await one(kind)
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                if 200 <= status < 300:  # a fast 503 is no answer to wait for
                    latencies[kind].append(time.perf_counter() - started)
                statuses[(kind, status)] += 1

        sampler.reset()
        sampling = asyncio.create_task(sampler.run())
        await asyncio.gather(*(client(random.Random(i)) for i in range(args.clients)))
        sampling.cancel()
    peak = sampler.peak_mb()
    server.stop()
    print(f"mixed load: {args.clients} clients x {args.seconds:.0f} s")
    for kind in ("list", "hit", "upload", "cold"):
        print("  " + _summary(kind, latencies[kind]))
    print("  statuses: " + ", ".join(f"{k}:{s}={n}" for (k, s), n in sorted(statuses.items())))
    bad = sum(n for (_, s), n in statuses.items() if s >= 500 and s != 503 or s == 0)
    print(f"  5xx other than 503, or no answer: {bad}; peak RSS {peak:.0f} MB")


# --- uploads -----------------------------------------------------------------------------------

async def uploads(args: argparse.Namespace, workdir: Path) -> None:
    print("  generating 4 x 20 MP JPEG and 4 x 45 MB PNG ...", flush=True)
    jpegs = [camera_jpeg(BIG, SEED + i) for i in range(4)]
    pngs = [_big_png(SEED + 10 + i) for i in range(4)]
    server = Server(workdir, _server_env(args))
    token = server.wait_token()
    sampler = RssSampler(server.proc.pid)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        for label, files, ext in (("20 MP JPEG", jpegs, "jpg"), ("45 MB PNG", pngs, "png")):
            sampler.reset()
            sampling = asyncio.create_task(sampler.run(0.02))
            started = time.perf_counter()
            results = await asyncio.gather(*(
                _upload(session, server.base, token, f"f{i}.{ext}", data)
                for i, data in enumerate(files)))
            wall = time.perf_counter() - started
            sampling.cancel()
            codes = [status for status, _ in results]
            size = sum(len(d) for d in files) / len(files) / 1e6
            print(f"  4 x {label} ({size:.1f} MB each): statuses {codes}, wall {wall:.1f} s, "
                  f"peak RSS {sampler.peak_mb():.0f} MB")
    server.stop()


# --- drain -------------------------------------------------------------------------------------

async def drain(args: argparse.Namespace, workdir: Path) -> None:
    server = Server(workdir, _server_env(args))
    token = server.wait_token()
    small = _jpeg((320, 240), SEED, 90)
    accepted: list[tuple[float, str]] = []
    cut = 0
    stop_at: float | None = None

    async def client() -> None:
        nonlocal cut
        connector = aiohttp.TCPConnector(limit=1, force_close=False)
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=60)) as session:
            while server.proc.poll() is None:
                try:
                    status, body = await _upload(session, server.base, token, "k.jpg", small)
                except (aiohttp.ClientError, TimeoutError):
                    if stop_at is None:
                        cut += 1
                    else:
                        await asyncio.sleep(0.05)
                    continue
                if status == 201:
                    accepted.append((time.monotonic(), body["data"][0]["id"]))  # type: ignore[index]

    tasks = [asyncio.create_task(client()) for _ in range(args.keepalive)]
    await asyncio.sleep(3)
    stop_at = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(server.proc.wait)
    exited = time.monotonic() - stop_at
    await asyncio.gather(*tasks)
    after = [i for t, i in accepted if t > stop_at]
    restarted = Server(workdir, _server_env(args))  # same data dir: a restart
    missing = await _missing(restarted, token, [i for _, i in accepted])
    restarted.stop()
    print(f"drain with {args.keepalive} keep-alive upload loops: exit {exited:.1f} s after "
          f"SIGTERM; 201 answers {len(accepted)} ({len(after)} after SIGTERM); "
          f"connections cut before SIGTERM {cut}; 201s missing after restart: {missing}")


async def _missing(server: Server, token: str, ids: list[str]) -> int:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(server.base + "/healthz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("restarted server did not come up")
            await asyncio.sleep(0.1)
        missing = 0
        for image_id in ids:
            async with session.get(f"{server.base}/api/v1/images/{image_id}",
                                   headers={"Authorization": f"Bearer {token}"}) as resp:
                missing += resp.status != 200
        return missing


def _server_env(args: argparse.Namespace) -> dict[str, str]:
    return {"PICHUB_SERVER__LOG_LEVEL": "warning"} | dict(e.split("=", 1) for e in args.env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["mixed", "uploads", "drain"])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--keepalive", type=int, default=16)
    parser.add_argument("--mix", default="list=4,hit=4,upload=1,cold=1",
                        help="mixed: weights of list, hit, upload and cold requests")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the server (repeatable)")
    args = parser.parse_args()
    run = {"mixed": mixed, "uploads": uploads, "drain": drain}[args.scenario]
    with tempfile.TemporaryDirectory(prefix="pichub-load-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
