#!/usr/bin/env python3
"""Benchmark of images as users get them (GitHub issue 3): `scripts/bench [--seconds N]`.

Starts `python -m pichub serve` on loopback in a temporary data dir, uploads
photo-like JPEGs it generates with a fixed seed (no downloads, so runs
compare), then measures requests/s, p50/p99 latency, the server's peak RSS
and its CPU time per request at concurrency 1 and 4 for:

  i    cold 20 MP JPEG -> 800x600 cover WebP q80       (uploaded as JPEG: convertToWebP=false)
  ii   cold 20 MP JPEG -> 300 px wide JPEG q80 (inside)
  iii  cold 3 MP JPEG  -> 800 px wide WebP q80
  iv   one cached 800x600 WebP variant (with wrk when installed: a Python client
       on two cores is itself the bottleneck at thousands of requests/s)
  v    (i)-(iii) again, from the same photos uploaded with default options: stored as
       WebP, which is what users of a default install get (v-i, v-ii, v-iii)
  vi   uploads with default options (JPEG -> WebP): 20 MP and 12 MP camera JPEGs, one
       file per request and 10 per request (at concurrency 1 only); files/s and p50 per
       request
  vii  a phone's HEIC: the 12 MP photo as an iPhone-like HEIC (HEVC in 512 px tiles, made
       with pillow-heif), uploaded with default options (stored as WebP, the HEIC kept),
       files/s at concurrency 1; then cold 800x600 cover WebP q80 variants of those
       uploads, as (v-i). No sharp ratio: sharp's prebuilt libvips has no HEVC decoder
  nginx  (iv) through docs/nginx.conf (its /img/ cache answers the hits) next to the same
       variant file served statically by the same nginx, both over its TLS with wrk;
       the ratio of the two (skipped without nginx, openssl or wrk)

"Cold" means a URL never requested before: `w` moves by one pixel around the
target (801, 799, 802, ...) and the requests rotate over COPIES uploads of
the same source, so the sizes stay within a few pixels of the target.

The test photos: blurred random shapes over a gradient, coarse colour noise
and fine grain, 6028x3391 (20 MP), 4000x3000 (12 MP) and 2000x1500 (3 MP),
saved as JPEG q90 with 4:2:0 chroma like a camera. The grain makes them cost
what a real photo costs to decode (about 2.7 bits per pixel: JPEG decoding
time follows the compressed size, and a flat image decodes several times
faster).

Peak RSS: VmRSS sampled every 50 ms, and VmHWM after resetting it through
/proc/PID/clear_refs where the kernel allows. CPU ms: the server's user +
system time per request, all threads; steadier than req/s on a shared machine.

Targets (TARGETS) are the issue's libvips figures from another 2-core machine
and photo. `--sharp DIR` also runs sharp (libvips) here, in-process, on the
original JPEG files (for (v) too: what the user uploaded), right after each
cold row, for a side-by-side ratio (DIR holds node_modules/sharp; nothing is
downloaded).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import PIL
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support.nginx: the docs/nginx.conf runner the tests use
from tests.support.nginx import NGINX, OPENSSL, Nginx  # noqa: E402

SEED = 20240603
BIG = (6028, 3391)
MID = (4000, 3000)
SMALL = (2000, 1500)
COPIES = 8
COPIES_DEFAULT = 4  # (v): each is a 20 MP WebP conversion at upload, seconds apiece
RSS_TARGET_MB = 300.0
CONCURRENCIES = (1, 4)
#: req/s to reach per (scenario, concurrency): libvips' figures; (iv) PicHub's own goal.
TARGETS: dict[tuple[str, int], float] = {
    ("i", 1): 12.5, ("i", 4): 24.8,
    ("ii", 1): 23.9, ("ii", 4): 45.9,
    ("iii", 1): 16.1, ("iii", 4): 31.3,
    ("iv", 4): 4000.0,
}
for _name in ("i", "ii", "iii"):  # (v): the same work, as a default install stores photos
    for _c in CONCURRENCIES:
        TARGETS[(f"v-{_name}", _c)] = TARGETS[(_name, _c)]
#: --only names: each scenario, and `v` for its three rows.
SCENARIOS = ("i", "ii", "iii", "iv", "v", "vi", "vii", "nginx")


# --- test images ---------------------------------------------------------------------------

def _colour(rng: random.Random, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return rng.randrange(low, high), rng.randrange(low, high), rng.randrange(low, high)


def _scene(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Gradient sky/ground with blurred random ellipses and polygons (the picture's shapes)."""
    gradient = Image.linear_gradient("L").resize(size)
    im = Image.composite(Image.new("RGB", size, _colour(rng, 20, 160)),
                         Image.new("RGB", size, _colour(rng, 60, 220)), gradient)
    draw = ImageDraw.Draw(im)
    width, height = size
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(max(2, width // 40), max(3, width // 6))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r * rng.uniform(0.3, 1.5)), fill=_colour(rng))
        else:
            points = [(x + rng.randint(-r, r), y + rng.randint(-r, r)) for _ in range(5)]
            draw.polygon(points, fill=_colour(rng))
    return im.filter(ImageFilter.GaussianBlur(2))


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A deterministic photo-like RGB image: shapes, colour noise, then grain at full size."""
    rng = random.Random(seed)
    width, height = size
    small = (max(1, width // 8), max(1, height // 8))
    coarse = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
    im = Image.blend(_scene(small, rng), coarse, 0.25).resize(size, Image.Resampling.BICUBIC)
    half = (max(1, width // 2), max(1, height // 2))
    blotches = Image.frombytes("L", half, rng.randbytes(half[0] * half[1]))
    grain = Image.frombytes("L", size, rng.randbytes(width * height))
    grain = Image.blend(blotches.resize(size, Image.Resampling.BILINEAR), grain, 0.5)
    return Image.blend(im, Image.merge("RGB", (grain, grain, grain)), 0.14)


def camera_jpeg(size: tuple[int, int], seed: int) -> bytes:
    """`photo` encoded as a camera would: JPEG q90, 4:2:0."""
    out = io.BytesIO()
    photo(size, seed).save(out, "JPEG", quality=90, subsampling="4:2:0")
    return out.getvalue()


# --- the server ----------------------------------------------------------------------------

def phone_heic(jpeg: bytes) -> bytes:
    """The photo as a phone writes it: HEVC at quality 80 in a grid of 512 px tiles."""
    import pillow_heif  # a test dependency (PicHub itself decodes with pi-heif)

    with Image.open(io.BytesIO(jpeg)) as im:
        rgb = im.convert("RGB")
    out = io.BytesIO()
    pillow_heif.encode("RGB", rgb.size, rgb.tobytes(), out, quality=80, tile_size=512)
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`python -m pichub serve` in a subprocess on a fresh data dir; output to a log file."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICHUB_")}
        env |= {
            "PICHUB_RATE_LIMITS__ENABLED": "false",
            "PICHUB_STORAGE__MIN_FREE_MB": "0",
            "PICHUB_STORAGE__MAX_PIXELS": "200000000",
            "PICHUB_IMAGES__WORKERS": str(os.cpu_count() or 1),
            "PICHUB_IMAGES__CACHE_MAX_MB": "2048",
        } | (extra_env or {})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pichub", "serve", "--data-dir", str(workdir / "data"),
                 "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            )

    def wait_token(self, timeout: float = 60.0) -> str:
        """The admin API token from the first-start banner, once the server listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            token = re.search(r"API token: (\S+)", text)
            if token and "listening on" in text:
                return token.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit("server did not start:\n" + self.log_path.read_text(errors="replace"))

    def answered(self) -> int:
        """Requests answered so far: the access-log lines in the server's output."""
        return self.log_path.read_text(errors="replace").count(" pichub.access ")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RssSampler:
    """Peak resident memory of one process over a run (VmRSS sampled + VmHWM if resettable)."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.clear_refs = Path(f"/proc/{pid}/clear_refs")
        self.peak_kb = 0
        self.hwm_reset = False

    def _fields(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for line in self.status.read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
        return found

    def reset(self) -> None:
        self.peak_kb = 0
        try:
            self.clear_refs.write_text("5")  # Linux: reset VmHWM to the current RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False

    def sample(self) -> None:
        self.peak_kb = max(self.peak_kb, self._fields().get("VmRSS", 0))

    def peak_mb(self) -> float:
        fields = self._fields()
        hwm = fields.get("VmHWM", 0) if self.hwm_reset else 0
        return max(self.peak_kb, fields.get("VmRSS", 0), hwm) / 1024

    async def run(self, interval: float = 0.05) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)


# --- load ----------------------------------------------------------------------------------

@dataclass
class Result:
    """One measured run: a scenario at one concurrency (the median of `--repeat` runs)."""

    scenario: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    client: str
    peak_rss_mb: float = 0.0
    cpu_ms: float = 0.0  # server CPU time (user + system, all threads) per request
    target_rps: float | None = None
    ratio: float | None = None
    runs_rps: list[float] = field(default_factory=list)
    sharp_rps: float | None = None  # with --sharp: libvips on the same images and machine
    files_per_s: float | None = None  # (vi): images stored per second
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def zigzag(base: int) -> Iterator[int]:
    """base+1, base-1, base+2, base-2, ...: distinct sizes staying close to `base`."""
    for step in itertools.count(1):
        yield base + step
        if base - step >= 1:
            yield base - step


def cold_urls(base: str, paths: list[str], param: str, target: int, rest: str) -> Iterator[str]:
    """Never-repeating URLs: each size once per uploaded copy, sizes zigzagging round target."""
    for size in zigzag(target):
        for path in paths:
            yield f"{base}{path}?{param}={size}{rest}"


async def aiohttp_load(session: aiohttp.ClientSession, scenario: str, urls: Iterator[str],
                       concurrency: int, seconds: float) -> Result:
    """`concurrency` workers GET the next URL (whole body) until time is up."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            url = next(urls)
            begin = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
            if resp.status != 200:
                errors += 1
            else:
                latencies.append((time.perf_counter() - begin) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Result(scenario, concurrency, elapsed, len(latencies), errors,
                  len(latencies) / elapsed, percentile(latencies, 50), percentile(latencies, 99),
                  "aiohttp")


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> tuple[float, float, float, int, int]:
    """(req/s, p50 ms, p99 ms, requests, errors) from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or total is None:
        raise SystemExit("cannot read wrk's output:\n" + text)
    pcts = {pct: float(value) * _WRK_UNITS[unit] for pct, value, unit in re.findall(
        r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)}
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", text))
    if sock := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                         text):
        errors += sum(int(n) for n in sock.groups())
    return (float(rps.group(1)), pcts.get("50", float("nan")), pcts.get("99", float("nan")),
            int(total.group(1)), errors)


async def wrk_load(url: str, concurrency: int, seconds: float, scenario: str = "iv") -> Result:
    proc = await asyncio.create_subprocess_exec(
        "wrk", f"-t{min(concurrency, 2)}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
        "--latency", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    rps, p50, p99, total, errors = parse_wrk(out.decode())
    return Result(scenario, concurrency, seconds, total, errors, rps, p50, p99, "wrk")


async def upload_load(scenario: str, post: Callable[[], Awaitable[int]], files: int,
                      concurrency: int, seconds: float) -> Result:
    """`concurrency` workers POST uploads of `files` images each until time is up (the last
    ones finish after it); the rate is in files/s, latencies per request."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            if await post() != 201:
                errors += 1
            else:
                latencies.append((time.perf_counter() - begin) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    result = Result(scenario, concurrency, elapsed, len(latencies), errors,
                    len(latencies) / elapsed, percentile(latencies, 50),
                    percentile(latencies, 99), "aiohttp")
    result.files_per_s = len(latencies) * files / elapsed
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(pid: int, run: Callable[[], Awaitable[Result]]) -> Result:
    """`run()` with the server's peak RSS and CPU time per request recorded."""
    rss = RssSampler(pid)
    rss.reset()
    sampler = asyncio.get_running_loop().create_task(rss.run())
    cpu = cpu_seconds(pid)
    try:
        result = await run()
    finally:
        sampler.cancel()
    result.cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / max(1, result.requests)
    result.peak_rss_mb = rss.peak_mb()
    return result


async def repeated(pid: int, repeat: int, run: Callable[[], Awaitable[Result]]) -> Result:
    """The run with the median req/s of `repeat` runs (see `median`)."""
    return median([await measured(pid, run) for _ in range(repeat)])


def rate(r: Result) -> float:
    """What a row reports: files/s for uploads, req/s otherwise."""
    return r.files_per_s if r.files_per_s is not None else r.rps


def median(results: list[Result]) -> Result:
    """The run with the median rate; every run's rate kept (`runs_rps`); RSS the max."""
    chosen = sorted(results, key=rate)[(len(results) - 1) // 2]
    chosen.runs_rps = [round(rate(r), 1 if rate(r) >= 10 else 2) for r in results]
    chosen.peak_rss_mb = max(r.peak_rss_mb for r in results)
    chosen.errors = sum(r.errors for r in results)
    chosen.target_rps = TARGETS.get((chosen.scenario, chosen.concurrency))
    if chosen.target_rps:
        chosen.ratio = chosen.rps / chosen.target_rps
    return chosen


# --- libvips side by side (optional) -------------------------------------------------------

SHARP_JS = r"""
const [dir, big, small, name, conc, seconds] = process.argv.slice(2);
const sharp = require(require.resolve("sharp", {paths: [dir]}));
const fs = require("fs");
sharp.cache(false);
const src = {big: fs.readFileSync(big), small: fs.readFileSync(small)};
const jobs = {
  i: (w) => sharp(src.big).resize(w, 600, {fit: "cover"}).webp({quality: 80}),
  ii: (w) => sharp(src.big).resize(w, null, {fit: "inside"}).jpeg({quality: 80}),
  iii: (w) => sharp(src.small).resize(w).webp({quality: 80}),
};
const base = {i: 800, ii: 300, iii: 800}[name];
(async () => {
  await jobs[name](base).toBuffer();  // warm-up
  let n = 0, step = 0;
  const start = Date.now(), end = start + Number(seconds) * 1000;
  const next = () => base + (++step % 2 ? 1 : -1) * Math.ceil(step / 2);
  const worker = async () => {
    while (Date.now() < end) { await jobs[name](next()).toBuffer(); n++; }
  };
  await Promise.all(Array.from({length: Number(conc)}, worker));
  console.log(n / ((Date.now() - start) / 1000));
})();
"""


class Sharp:
    """sharp (libvips) on the same original files and machine, in-process (no HTTP): a
    reference for (i)-(iii) and (v) (jobs "i", "ii", "iii": (v) gives sharp the JPEG the user
    uploaded, where PicHub starts from the WebP it stored).

    Needs `node` and sharp installed under `directory` (`npm install sharp@0.35` there);
    the bench itself downloads nothing.
    """

    def __init__(self, directory: Path, workdir: Path, images: dict[str, bytes]) -> None:
        self.directory = directory.resolve()
        self.script, self.big, self.small = (workdir / n for n in ("sharp.js", "big.jpg",
                                                                   "small.jpg"))
        self.script.write_text(SHARP_JS)
        self.big.write_bytes(images["20MP"])
        self.small.write_bytes(images["3MP"])

    def rps(self, scenario: str, concurrency: int, seconds: float) -> float:
        proc = subprocess.run(
            ["node", str(self.script), str(self.directory), str(self.big), str(self.small),
             scenario, str(concurrency), str(seconds)],
            stdout=subprocess.PIPE, text=True, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"sharp run failed (node exit {proc.returncode})")
        return float(proc.stdout.strip().splitlines()[-1])


# --- orchestration -------------------------------------------------------------------------

def _form(files: list[tuple[str, bytes]], keep_jpeg: bool) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, data in files:
        kind = "image/heic" if name.endswith(".heic") else "image/jpeg"
        form.add_field("files[]", data, filename=name, content_type=kind)
    if keep_jpeg:
        form.add_field("convertToWebP", "false")
    return form


async def upload(session: aiohttp.ClientSession, base: str, token: str, name: str,
                 data: bytes, *, keep_jpeg: bool = True) -> str:
    """Upload `data`; returns the id. `keep_jpeg`: stored as sent (convertToWebP=false),
    else with the default options (converted to WebP)."""
    async with session.post(f"{base}/api/v1/upload", data=_form([(name, data)], keep_jpeg),
                            headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json()
        expected = ("jpeg", "jpg") if keep_jpeg else ("webp",)
        if resp.status != 201 or body["data"][0]["format"] not in expected:
            raise SystemExit(f"upload failed: {resp.status} {body}")
        return str(body["data"][0]["id"])


def make_images(only: list[str]) -> dict[str, bytes]:
    started = time.perf_counter()
    sizes = {"20MP": (BIG, SEED), "3MP": (SMALL, SEED + 1)}
    if "vi" in only or "vii" in only:
        sizes["12MP"] = (MID, SEED + 2)
    images = {name: camera_jpeg(size, seed) for name, (size, seed) in sizes.items()}
    if "vii" in only:
        images["12MP-heic"] = phone_heic(images["12MP"])
    for name, data in images.items():
        size = sizes[name.removesuffix("-heic")][0]
        kind = "HEIC q80 512px tiles" if name.endswith("-heic") else "JPEG q90 4:2:0"
        print(f"  {name}: {size[0]}x{size[1]} {kind}, {len(data) / 1e6:.2f} MB "
              f"({8 * len(data) / (size[0] * size[1]):.2f} bits/px), "
              f"sha256 {hashlib.sha256(data).hexdigest()[:12]}")
    print(f"  generated in {time.perf_counter() - started:.1f} s (seed {SEED})")
    return images


async def cold(session: aiohttp.ClientSession, server: Server, ids: dict[str, list[str]],
               args: argparse.Namespace, sharp: Sharp | None, prefix: str = "") -> list[Result]:
    """(i)-(iii) on the uploads in `ids`; `prefix` "v-" names them (v-i)-(v-iii)."""
    big = [f"/img/{i}" for i in ids["20MP"]]
    small = [f"/img/{i}" for i in ids["3MP"]]
    url_sets = {
        "i": cold_urls(server.base, [p + ".webp" for p in big], "w", 800,
                       "&h=600&fit=cover&q=80"),
        "ii": cold_urls(server.base, [p + ".jpg" for p in big], "w", 300, "&fit=inside&q=80"),
        "iii": cold_urls(server.base, [p + ".webp" for p in small], "w", 800, "&q=80"),
    }
    wanted = ("i", "ii", "iii") if prefix else [s for s in ("i", "ii", "iii") if s in args.only]
    results: list[Result] = []
    for shape in wanted:
        name, urls = prefix + shape, url_sets[shape]
        for _ in range(2):  # warm-up: imports, first-use allocations (not measured)
            async with session.get(next(urls)) as resp:
                await resp.read()
        for c in args.concurrency:
            def run(c: int = c, name: str = name, urls: Iterator[str] = urls
                    ) -> Awaitable[Result]:
                return aiohttp_load(session, name, urls, c, args.seconds)
            result = await repeated(server.proc.pid, args.repeat, run)
            if sharp is not None:  # right after, under the same machine load
                result.sharp_rps = await asyncio.to_thread(sharp.rps, shape, c, args.seconds)
            results.append(report(result))
    return results


async def cold_default(session: aiohttp.ClientSession, server: Server, token: str,
                       images: dict[str, bytes], args: argparse.Namespace,
                       sharp: Sharp | None) -> list[Result]:
    """(v): the photos uploaded as a default install stores them (WebP), then (i)-(iii)."""
    started = time.perf_counter()
    ids = {name: [await upload(session, server.base, token, f"{name}-d{n}.jpg", images[name],
                               keep_jpeg=False) for n in range(COPIES_DEFAULT)]
           for name in ("20MP", "3MP")}
    print(f"  (v) {COPIES_DEFAULT} + {COPIES_DEFAULT} uploads with default options (stored "
          f"as WebP) in {time.perf_counter() - started:.1f} s", flush=True)
    return await cold(session, server, ids, args, sharp, prefix="v-")


async def uploads(session: aiohttp.ClientSession, server: Server, token: str,
                  images: dict[str, bytes], args: argparse.Namespace) -> list[Result]:
    """(vi): uploads with default options, one file or ten per request.

    Ten per request at the first concurrency only (1 by default): four such requests in
    flight are forty 20 MP conversions, minutes per run.
    """
    results: list[Result] = []
    timeout = aiohttp.ClientTimeout(total=900)  # ten 20 MP conversions queue behind others
    for size in ("20MP", "12MP"):
        for files in (1, 10):
            payload = [(f"{size}-{n}.jpg", images[size]) for n in range(files)]

            async def post(payload: list[tuple[str, bytes]] = payload) -> int:
                async with session.post(f"{server.base}/api/v1/upload",
                                        data=_form(payload, keep_jpeg=False), timeout=timeout,
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
                    await resp.read()
                    return resp.status

            name = f"vi-{size}-{files}"
            for c in args.concurrency if files == 1 else args.concurrency[:1]:
                def run(c: int = c, name: str = name, files: int = files,
                        post: Callable[[], Awaitable[int]] = post) -> Awaitable[Result]:
                    return upload_load(name, post, files, c, args.seconds)
                results.append(report(await repeated(server.proc.pid, args.repeat, run)))
    return results


async def heic(session: aiohttp.ClientSession, server: Server, token: str,
               images: dict[str, bytes], args: argparse.Namespace) -> list[Result]:
    """(vii): a phone's HEIC uploaded with default options, then cold variants of it."""
    data = images["12MP-heic"]

    async def post() -> int:
        async with session.post(f"{server.base}/api/v1/upload",
                                data=_form([("phone.heic", data)], keep_jpeg=False),
                                headers={"Authorization": f"Bearer {token}"}) as resp:
            await resp.read()
            return resp.status

    c = args.concurrency[0]
    results = [report(await repeated(server.proc.pid, args.repeat,
                                     lambda: upload_load("vii-up", post, 1, c, args.seconds)))]
    ids = [await upload(session, server.base, token, f"heic-{n}.heic", data, keep_jpeg=False)
           for n in range(COPIES_DEFAULT)]
    urls = cold_urls(server.base, [f"/img/{i}.webp" for i in ids], "w", 800,
                     "&h=600&fit=cover&q=80")
    for _ in range(2):  # warm-up, as in cold()
        async with session.get(next(urls)) as resp:
            await resp.read()
    for c in args.concurrency:
        def run(c: int = c) -> Awaitable[Result]:
            return aiohttp_load(session, "vii-i", urls, c, args.seconds)
        results.append(report(await repeated(server.proc.pid, args.repeat, run)))
    return results


async def cached(session: aiohttp.ClientSession, server: Server, image_id: str,
                 args: argparse.Namespace) -> list[Result]:
    url = f"{server.base}/img/{image_id}.webp?w=800&h=600&fit=cover&q=80"
    async with session.get(url) as resp:
        await resp.read()  # make the variant
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    results: list[Result] = []
    for c in args.concurrency:
        def run(c: int = c) -> Awaitable[Result]:
            if use_wrk:
                return wrk_load(url, c, args.seconds)
            return aiohttp_load(session, "iv", itertools.repeat(url), c, args.seconds)
        result = await repeated(server.proc.pid, args.repeat, run)
        if not use_wrk:
            result.notes.append("no wrk: aiohttp client, itself the bottleneck here")
        results.append(report(result))
    return results


def _variant_file(data_dir: Path, image_id: str, content: bytes) -> Path:
    """The variant cache's file for `image_id` holding `content`."""
    for path in (data_dir / "cache" / image_id[:2] / image_id).iterdir():
        if path.read_bytes() == content:
            return path
    raise SystemExit(f"no cached variant of {image_id} found for the nginx scenario")


async def behind_nginx(session: aiohttp.ClientSession, server: Server, image_id: str,
                       workdir: Path, args: argparse.Namespace) -> list[Result]:
    """(iv) through docs/nginx.conf, then the same file as a static file of the same nginx.

    Both over the sample's TLS listener, with wrk, one nginx worker (nginx, not the load
    generator sharing its two cores, is then what is measured). The ratio is the cache
    hits' req/s over the static file's."""
    missing = [tool for tool, found in (("nginx", NGINX), ("openssl", OPENSSL),
                                        ("wrk", shutil.which("wrk"))) if found is None]
    if missing:
        print(f"(nginx) skipped: {' and '.join(missing)} not installed "
              "(apt-get install nginx openssl wrk)", flush=True)
        return []
    path = f"/img/{image_id}.webp?w=800&h=600&fit=cover&q=80"
    async with session.get(server.base + path) as resp:
        content = await resp.read()  # PicHub has the variant: nginx's first request is a hit
    static = workdir / "static"
    static.mkdir(exist_ok=True)
    shutil.copyfile(_variant_file(workdir / "data", image_id, content), static / "variant.webp")
    site = {"    location / {": f"    location /static/ {{\n        alias {static}/;\n    }}"
                                "\n\n    location / {"}
    nginx = await asyncio.to_thread(Nginx, workdir / "nginx", server.port, site)
    try:
        insecure = aiohttp.TCPConnector(ssl=False)
        async with aiohttp.ClientSession(connector=insecure) as tls:
            for _ in range(2):
                async with tls.get(nginx.https + path) as resp:
                    await resp.read()
                    status = resp.headers.get("X-Cache-Status")
            if status != "HIT":
                raise SystemExit(f"nginx does not cache the variant (X-Cache-Status {status})")
        [worker] = nginx.worker_pids()
        answered = server.answered()
        results: list[Result] = []
        urls = {"iv-n": nginx.https + path, "iv-s": nginx.https + "/static/variant.webp"}
        for c in args.concurrency:
            runs: dict[str, list[Result]] = {name: [] for name in urls}
            for _ in range(args.repeat):  # alternated, so drifting machine load hits both
                for name, url in urls.items():
                    def run(c: int = c, url: str = url, name: str = name) -> Awaitable[Result]:
                        return wrk_load(url, c, args.seconds, name)
                    runs[name].append(await measured(worker, run))
            hits, plain = median(runs["iv-n"]), median(runs["iv-s"])
            hits.target_rps, hits.ratio = plain.rps, hits.rps / plain.rps
            hits.notes.append(f"CPU/request vs static: {plain.cpu_ms / hits.cpu_ms:.2f}")
            results += [report(hits), report(plain)]
        reached = server.answered() - answered
        print("  nginx /img/ cache hits / static file, req/s: "
              + ", ".join(f"c={r.concurrency} {r.ratio:.2f}" for r in results if r.ratio)
              + f" (target >= 0.80); requests that reached PicHub meanwhile: {reached}",
              flush=True)
        return results
    finally:
        await asyncio.to_thread(nginx.stop)


HEADER = (f"{'scenario':<48} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'RSS MB':>7} {'CPU ms':>7} {'target':>7} {'ratio':>6} {'sharp':>6}  client")
LABELS = {
    "i": "(i) cold 20MP JPEG -> 800x600 cover WebP q80",
    "ii": "(ii) cold 20MP JPEG -> 300w JPEG q80 inside",
    "iii": "(iii) cold 3MP JPEG -> 800w WebP q80",
    "iv": "(iv) cached 800x600 WebP variant",
    "v-i": "(v-i) as (i), photo stored as WebP (default)",
    "v-ii": "(v-ii) as (ii), photo stored as WebP",
    "v-iii": "(v-iii) as (iii), photo stored as WebP",
    "vi-20MP-1": "(vi) upload 20MP JPEG -> WebP, 1/req: files/s",
    "vi-20MP-10": "(vi) upload 20MP JPEG -> WebP, 10/req: files/s",
    "vi-12MP-1": "(vi) upload 12MP JPEG -> WebP, 1/req: files/s",
    "vi-12MP-10": "(vi) upload 12MP JPEG -> WebP, 10/req: files/s",
    "vii-up": "(vii) upload 12MP HEIC -> WebP, 1/req: files/s",
    "vii-i": "(vii) as (i), from the uploaded HEIC",
    "iv-n": "(iv) via docs/nginx.conf cache (target: static)",
    "iv-s": "(iv) the same file, static from nginx",
}


def report(r: Result) -> Result:
    """Print one row: req/s (files/s for uploads), latencies, RSS, CPU, target and sharp."""
    target = f"{r.target_rps:g}" if r.target_rps else "-"
    ratio = f"{r.ratio:.2f}" if r.ratio else "-"
    sharp = f"{r.rps / r.sharp_rps:.2f}" if r.sharp_rps else "-"
    runs = f"  runs {r.runs_rps}" if len(r.runs_rps) > 1 else ""
    if r.sharp_rps:
        runs += f"  sharp {r.sharp_rps:.1f} req/s here"
    errors = f"  ERRORS {r.errors}" if r.errors else ""
    shown = f"{rate(r):.1f}" if rate(r) >= 10 else f"{rate(r):.2f}"
    print(f"{LABELS[r.scenario]:<48} {r.concurrency:>4} {shown:>8} {r.p50_ms:>8.1f} "
          f"{r.p99_ms:>8.1f} {r.peak_rss_mb:>7.0f} {r.cpu_ms:>7.2f} {target:>7} {ratio:>6} "
          f"{sharp:>6}  {r.client}{runs}{errors}"
          f"{''.join('  (' + n + ')' for n in r.notes)}", flush=True)
    return r


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (10)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per row; the median is shown (1)")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                        default=list(CONCURRENCIES), help="comma-separated (1,4)")
    parser.add_argument("--only", type=lambda s: s.split(","), default=list(SCENARIOS),
                        help=f"comma-separated scenarios ({','.join(SCENARIOS)}: all)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--no-wrk", action="store_true", help="use the aiohttp client for (iv)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra server environment, e.g. PICHUB_SERVER__LOG_LEVEL=warning")
    parser.add_argument("--sharp", type=Path, metavar="DIR",
                        help="also run sharp (libvips) in-process on the original JPEGs for "
                             "(i)-(iii) and (v); DIR holds node_modules/sharp")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(SCENARIOS)}")
    return args


async def bench(args: argparse.Namespace, workdir: Path) -> list[Result]:
    print(f"PicHub benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"Python {platform.python_version()}, Pillow {PIL.__version__}, "
          f"{args.seconds:g} s x {args.repeat} per row; data in {workdir}")
    images = make_images(args.only)
    server = Server(workdir, dict(item.split("=", 1) for item in args.env))
    results: list[Result] = []
    try:
        token = await asyncio.to_thread(server.wait_token)
        connector = aiohttp.TCPConnector(limit=max(args.concurrency))
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            as_jpeg = {"i", "ii", "iii", "iv", "nginx"} & set(args.only)
            ids = {name: [await upload(session, server.base, token, f"{name}-{n}.jpg",
                                       images[name]) for n in range(COPIES if as_jpeg else 0)]
                   for name in ("20MP", "3MP")}
            print(HEADER)
            sharp = Sharp(args.sharp, workdir, images) if args.sharp else None
            results += await cold(session, server, ids, args, sharp)
            if "iv" in args.only:
                results += await cached(session, server, ids["20MP"][0], args)
            if "nginx" in args.only:
                results += await behind_nginx(session, server, ids["20MP"][0], workdir, args)
            if "v" in args.only:
                results += await cold_default(session, server, token, images, args, sharp)
            if "vi" in args.only:
                results += await uploads(session, server, token, images, args)
            if "vii" in args.only:
                results += await heic(session, server, token, images, args)
    finally:
        server.stop()
    for r in results:
        if r.scenario == "i" and r.concurrency == 4:
            verdict = "ok" if r.peak_rss_mb < RSS_TARGET_MB else "OVER"
            print(f"peak RSS during (i) at concurrency 4: {r.peak_rss_mb:.0f} MB "
                  f"(target < {RSS_TARGET_MB:.0f} MB: {verdict})")
    print(f"load average now {os.getloadavg()[0]:.2f} (other work on the machine skews req/s; "
          "CPU ms = server CPU time per request, steadier)")
    return results


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pichub-bench-"))
    started = time.perf_counter()
    try:
        results = asyncio.run(bench(args, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        meta = {"cpus": os.cpu_count(), "python": platform.python_version(),
                "pillow": PIL.__version__, "seconds": args.seconds, "repeat": args.repeat,
                "seed": SEED, "argv": sys.argv[1:]}
        args.json.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]},
                                        indent=2) + "\n")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
