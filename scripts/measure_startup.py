#!/usr/bin/env python3
"""Start-up time and idle memory of a big library: `scripts/measure_startup.py N [options]`.

Builds (once; `--data DIR` keeps it for the next run) a library of N images in PicHub's
storage layout through PicHub's own code (tests/support/library.py: rows with
`db.images.insert`, blobs where `BlobStore` puts them, one cached variant each where
`DiskCache` puts it, tiny real JPEGs whose sha256 matches), then runs
`python -m pichub serve` on it and reports:

  ready     seconds from exec to the first `GET /healthz` 200
  loading   median and worst of 50 `GET /healthz` and 50 cached variants (each of another
            image, not indexed yet: found on disk) while the background jobs run
  blob      when the orphan sweep's summary line came, and its rate
  variant   when the variant cache index's summary line came
  RSS       VmRSS once both are done and the process is idle; VmHWM (peak)
  idle      the same 50 + 50 requests once the jobs are done (the variants now indexed)

`--cold` drops the page cache first (`sync; echo 3 > /proc/sys/vm/drop_caches`, root
only). `--pichub DIR` serves with the PicHub checkout in DIR instead (to compare with
another commit); the library is still built with this one. Examples:

  .venv/bin/python scripts/measure_startup.py 100000 --data /work/lib-100k
  .venv/bin/python scripts/measure_startup.py 100000 --data /work/lib-100k --cold
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tests.support import library  # noqa: E402
from tests.support.server import free_port  # noqa: E402

DONE = ("blob sweep done", "variant cache index done")


def drop_caches() -> str:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "page cache dropped"
    except OSError as exc:
        return f"could not drop the page cache ({exc.strerror}): warm"


def cpu_seconds(pid: int) -> float:
    """User + system time of the process so far (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(pid: int, field: str) -> float:
    """A VmRSS/VmHWM-like field of /proc/PID/status, in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


def serve(data: Path, pichub: Path, env: dict[str, str]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pichub", "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=pichub,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pichub),
             "PICHUB_RATE_LIMITS__ENABLED": "false", "PICHUB_STORAGE__MIN_FREE_MB": "0", **env})

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic() - started, line.rstrip()))

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        ready = _first_200(base + "/healthz", proc, started)
        cpu_at_ready = cpu_seconds(proc.pid)
        print(f"ready     first /healthz 200 after {ready:.2f} s")
        ids = _some_ids(data, 50)
        _latencies("loading", base, ids)
        while not all(any(done in line for _, line in lines) for done in DONE):
            jobs = [at for at, line in lines if "blob sweep" in line or "cache index" in line]
            if proc.poll() is not None or time.monotonic() - started > max(jobs, default=0) + 20:
                break  # no progress line for a while: older code, or a job failed
            time.sleep(0.2)
        busy = cpu_seconds(proc.pid) - cpu_at_ready
        wall = time.monotonic() - started - ready
        print(f"CPU       {busy:.1f} s in the {wall:.1f} s after ready "
              f"({busy / wall:.0%} of a core)")
        for done in DONE:
            seen = [(at, line) for at, line in lines if done in line]
            if seen:
                print(f"{done.split()[0]:9} at {seen[0][0]:.1f} s: {seen[0][1].split(done)[1]}")
            else:
                print(f"{done!r} never came (the server may only serve older code)")
        time.sleep(3)
        print(f"RSS       idle {status(proc.pid, 'VmRSS'):.0f} MiB, "
              f"peak {status(proc.pid, 'VmHWM'):.0f} MiB")
        _latencies("idle", base, ids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=5)
    for at, line in lines:
        if any(word in line for word in ("files seen", "done in", "ERROR", "WARNING")):
            print(f"  {at:7.1f} s  {line[line.find('pichub'):]}")


def _first_200(url: str, proc: subprocess.Popen[str], started: float) -> float:
    while True:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        time.sleep(0.01)


def _some_ids(data: Path, count: int) -> list[str]:
    """Ids of images with a cached variant (the cache has a directory per image)."""
    ids: list[str] = []
    for shard in sorted((data / "cache").iterdir())[-count:]:  # the loader comes late
        ids.extend(entry.name for entry in os.scandir(shard))
    return ids[:count]


def _latencies(when: str, base: str, ids: list[str]) -> None:
    http = requests.Session()
    for what, urls in (("/healthz", [base + "/healthz"] * len(ids)),
                       ("variant", [f"{base}/img/{i}.jpg?w={library.VARIANT_W}" for i in ids])):
        took, statuses = [], set()
        for url in urls:
            began = time.perf_counter()
            statuses.add(http.get(url, timeout=30).status_code)
            took.append((time.perf_counter() - began) * 1000)
        if took:
            print(f"{when:9} {what:8} median {statistics.median(took):5.1f} ms, "
                  f"max {max(took):6.1f} ms, statuses {sorted(statuses)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", type=int)
    parser.add_argument("--data", type=Path, help="data dir: built if absent, kept")
    parser.add_argument("--cold", action="store_true", help="drop the page cache first")
    parser.add_argument("--durable", action="store_true",
                        help="build with BlobStore.put/DiskCache.put (fsync each file)")
    parser.add_argument("--pichub", type=Path, default=ROOT, help="checkout that serves")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the server (PICHUB_...)")
    args = parser.parse_args()
    scratch = None
    data = args.data
    if data is None:
        scratch = Path(tempfile.mkdtemp(prefix="pichub-startup-", dir="/work"))
        data = scratch / "data"
    try:
        if not (data / "pichub.db").exists():
            began = time.monotonic()
            print(f"building {args.images} images in {data} ...", flush=True)
            asyncio.run(library.build(data, args.images, durable=args.durable,
                                      progress=True, remember=False))
            print(f"built in {time.monotonic() - began:.0f} s")
        if args.cold:
            print(drop_caches())
        serve(data, args.pichub.resolve(), dict(kv.split("=", 1) for kv in args.env))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
