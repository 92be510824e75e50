#!/usr/bin/env python3
"""Large-library benchmark (issue 15): `scripts/bench-scale [--sizes 10000,100000,1000000]`.

For each size N it builds (or reuses) a synthetic library of N images with `scale_gen`, in
PicHub's storage layout and through PicHub's own code, then measures against a real
`python -m pichub serve` on 127.0.0.1:

  start-up       process start to the first `/healthz` 200: warm (the second start of the
                 run), and with a cold page cache where this machine lets us drop it
  idle RSS       VmRSS once it has stopped moving (start-up background work done)
  lists          median of `--requests` (30) GETs of page 1 and of the last page by `page`
                 (`/images`, `/square`), `/albums` (100 albums of N/100 images),
                 `/images?album_id=`; and, where the API answers `meta.next_cursor`,
                 a walk of every page by cursor, timing the first and the last pages
  variant hits   `/img/{id}.webp?w=160` of images whose variant the generator cached
  upload         a ~1 MP JPEG through `POST /upload` (`convertToWebP=false`: kept as
                 sent), alternately without and with a quota on the user
  backup         `pichub backup` and `pichub restore` (into a fresh directory)

then prints a markdown table (rows = metrics, columns = sizes) and writes it, with every
raw value, to a JSON file. Libraries are cached (see scale_gen) under `--data-root`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from contextlib import closing
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from scale_http import ROOT, Api, Server, StartupTimeout, metric_value, pichub_env
from scale_report import SizeResult, markdown_table

sys.path.insert(0, str(ROOT))  # this checkout's pichub, before any installed one

import scale_gen  # noqa: E402 - needs ROOT on sys.path (imports pichub)
from bench import camera_jpeg  # noqa: E402 - scripts/bench.py's camera-like test photos

API = "/api/v1"
PER_PAGE = 100
ALBUMS = 100
UPLOAD_SIZE = (1155, 866)  # 1.0 MP
UPLOAD_SEED = 15
QUOTA_MB = 10**9  # a quota that is checked on every upload but never reached
#: Stored as sent (no WebP re-encode, which would bury the quota's cost in its noise).
UPLOAD_FIELDS = {"convertToWebP": "false"}
CURSOR_PAGES = 5  # first and last pages timed after a cursor walk
CURSOR_REPEAT = 6


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- while the server runs ----------------------------------------------------------------

def measure_lists(api: Api, album_id: int | None, count: int, out: SizeResult) -> None:
    """Page 1 and the last page by `page` of each list, median of `count` requests."""
    m = out.metrics
    m["images_first_request_ms"] = api.json("GET", f"{API}/images?per_page={PER_PAGE}")[1] * 1e3
    for name, path in (("images", f"{API}/images"), ("square", f"{API}/square")):
        first = f"{path}?per_page={PER_PAGE}&page=1"
        m[f"{name}_p1_ms"] = api.median_ms(first, count)
        last = int(api.json("GET", first)[0]["meta"]["total_pages"])
        m[f"{name}_last_ms"] = api.median_ms(f"{path}?per_page={PER_PAGE}&page={last}", count)
    m["albums_p1_ms"] = api.median_ms(f"{API}/albums?per_page={PER_PAGE}", count)
    if album_id is not None:
        m["album_images_p1_ms"] = api.median_ms(
            f"{API}/images?album_id={album_id}&per_page={PER_PAGE}", count)


def walk_by_cursor(api: Api, path: str) -> tuple[list[str | None], int, int | None] | None:
    """Every page of `path` by cursor: (the cursor of each page, None for the first; images
    seen, distinct; `meta.total`), or None when the API has no cursors."""
    answer, _ = api.json("GET", f"{path}?per_page={PER_PAGE}")
    if "next_cursor" not in answer["meta"]:
        return None
    cursors: list[str | None] = [None]
    seen = {image["id"] for image in answer["data"]}
    while (cursor := answer["meta"].get("next_cursor")) is not None:
        cursors.append(cursor)
        answer, _ = api.json("GET", _cursor_url(path, cursor))
        seen.update(image["id"] for image in answer["data"])
    return cursors, len(seen), answer["meta"].get("total")


def _cursor_url(path: str, cursor: str | None) -> str:
    query = {"per_page": str(PER_PAGE)} | ({"cursor": cursor} if cursor is not None else {})
    return f"{path}?{urllib.parse.urlencode(query)}"


def measure_cursors(api: Api, out: SizeResult) -> None:
    """Median latency of the first and the last CURSOR_PAGES pages, each CURSOR_REPEAT
    times, after walking every page (which checks each image comes once)."""
    for name, path in (("images", f"{API}/images"), ("square", f"{API}/square")):
        started = time.monotonic()
        walked = walk_by_cursor(api, path)
        out.metrics["cursor_api"] = float(walked is not None)
        if walked is None:
            out.notes.append(f"cursor: `{path}` answers no `meta.next_cursor`; not measured")
            continue
        cursors, seen, total = walked
        out.metrics[f"cursor_{name}_walk_s"] = time.monotonic() - started
        out.metrics[f"cursor_{name}_pages"] = len(cursors)
        if total is not None and seen != total:
            out.notes.append(f"cursor walk of `{path}` saw {seen} distinct images of {total}")
        for which, chosen in (("first", cursors[:CURSOR_PAGES]), ("last", cursors[-CURSOR_PAGES:])):
            urls = [_cursor_url(path, c) for c in chosen] * CURSOR_REPEAT
            out.metrics[f"cursor_{name}_{which}_ms"] = api.median_ms_over(urls)


def measure_variants(api: Api, image_ids: list[str], out: SizeResult) -> None:
    """Cached variants the generator wrote: latency, and whether the server found them."""
    query = urllib.parse.urlencode(scale_gen.VARIANT_QUERY)
    before = _cache_counts(api)
    times = []
    for image_id in image_ids:
        status, _, seconds = api.request(
            "GET", f"/img/{image_id}.{scale_gen.VARIANT_EXT}?{query}")
        if status != 200:
            raise SystemExit(f"variant of {image_id}: {status}")
        times.append(seconds)
    after = _cache_counts(api)
    out.metrics["variant_hit_ms"] = statistics.median(times) * 1000
    out.metrics["variant_misses"] = after[1] - before[1]
    if after[1] > before[1]:
        out.notes.append(f"{after[1] - before[1]:.0f} of {len(image_ids)} generated variants "
                         "were cache misses (recomputed)")


def _cache_counts(api: Api) -> tuple[float, float]:
    _, text, _ = api.request("GET", "/metrics")
    page = text.decode()
    return (metric_value(page, "pichub_variant_cache_hits") or 0.0,
            metric_value(page, "pichub_variant_cache_misses") or 0.0)


def set_quota(db_path: Path, user_id: int, quota_mb: int | None) -> None:
    """What an operator would do by hand (the CLI sets quotas only at `user create`)."""
    with closing(sqlite3.connect(db_path, timeout=30)) as conn, conn:
        conn.execute("UPDATE users SET quota_mb = ? WHERE id = ?", (quota_mb, user_id))


def measure_uploads(api: Api, library: scale_gen.Library, count: int, out: SizeResult) -> None:
    """`count` uploads each without and with a quota, alternating (the machine's noise
    hits both alike); the uploaded images are deleted again."""
    photo = camera_jpeg(UPLOAD_SIZE, UPLOAD_SEED)
    uploaded: list[str] = []
    timings: dict[bool, list[float]] = {False: [], True: []}
    try:
        for k in range(2):  # warm-up: first-use costs are not the quota's
            uploaded.append(api.upload(f"warmup_{k}.jpg", photo, UPLOAD_FIELDS)[0])
        for k in range(2 * count):
            with_quota = k % 2 == 1
            set_quota(library.db_path, library.user_id, QUOTA_MB if with_quota else None)
            image_id, seconds = api.upload(f"photo_{k}.jpg", photo, UPLOAD_FIELDS)
            uploaded.append(image_id)
            timings[with_quota].append(seconds)
    finally:
        set_quota(library.db_path, library.user_id, None)
        for image_id in uploaded:
            api.json("DELETE", f"{API}/images/{image_id}")
    for with_quota, key in ((False, "upload_ms"), (True, "upload_quota_ms")):
        out.metrics[key] = statistics.median(timings[with_quota]) * 1000


def run_server_part(library: scale_gen.Library, folder: Path, args: argparse.Namespace,
                    out: SizeResult) -> None:
    server = Server(Path(library.data_dir), folder / "server.log")
    try:
        out.metrics["startup_first_s"] = server.start(args.startup_timeout)
        log(f"  first start: {out.metrics['startup_first_s']:.2f} s; waiting for RSS to settle")
        rss, waited = server.settled_rss_mb(args.settle_s)
        out.metrics["idle_rss_mb"], out.metrics["rss_settle_s"] = rss, waited
        if waited >= args.settle_s:
            out.notes.append(f"RSS still moving after {args.settle_s:.0f} s")
        api = Api(server.port, library.token)
        measure_lists(api, library.album_ids[0] if library.album_ids else None,
                      args.requests, out)
        measure_cursors(api, out)
        measure_variants(api, library.sample_ids[: args.requests], out)
        log_metrics("  lists and variants:", out)
        measure_uploads(api, library, args.uploads, out)
        log_metrics("  uploads:", out, "upload")
        api.close()
    except StartupTimeout as exc:
        out.metrics["startup_first_over_s"] = args.startup_timeout
        out.notes.append(f"first start: {exc}; nothing measured over HTTP")
    finally:
        server.stop()


def log_metrics(title: str, out: SizeResult, prefix: str = "") -> None:
    """The metrics so far (those starting with `prefix`), as they come: a long run that
    stops early still leaves its numbers in the log."""
    log(title + " " + ", ".join(f"{key}={value:.1f}" for key, value in out.metrics.items()
                                if key.startswith(prefix) and value is not None))


# --- start-ups, backup, restore -----------------------------------------------------------

def drop_page_cache() -> str | None:
    """Empty the kernel's page, dentry and inode caches; None when done, else why not."""
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return None
    except OSError as exc:
        reason = f"/proc/sys/vm/drop_caches: {exc.strerror}"
    if shutil.which("sudo"):
        done = subprocess.run(["sudo", "-n", "sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"],
                              capture_output=True, check=False)
        if done.returncode == 0:
            return None
        reason += "; sudo -n refused"
    return reason


def measure_startups(library: scale_gen.Library, folder: Path, args: argparse.Namespace,
                     out: SizeResult) -> None:
    """The warm start (the first one of the run has read everything already), then a cold one
    if the page cache can be dropped here."""
    for key in ("startup_warm_s", "startup_cold_s"):
        if key == "startup_cold_s":
            if not args.cold:
                out.notes.append("cold: skipped (--no-cold)")
                continue
            if (why := drop_page_cache()) is not None:
                out.notes.append(f"cold: not measurable here ({why})")
                continue
        server = Server(Path(library.data_dir), folder / "server.log")
        try:
            out.metrics[key] = server.start(args.startup_timeout)
            log(f"  {key}: {out.metrics[key]:.2f} s")
        except StartupTimeout as exc:
            out.metrics[key.removesuffix("_s") + "_over_s"] = args.startup_timeout
            out.notes.append(f"{key}: {exc}")
        finally:
            server.stop()


def run_pichub(args: list[str], timeout_s: float) -> float | None:
    """Seconds a `pichub` command took, or None when it ran past `timeout_s` (killed)."""
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pichub", *args], env=pichub_env(),
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"pichub {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return time.monotonic() - started


def measure_backup(library: scale_gen.Library, folder: Path, timeout_s: float,
                   out: SizeResult) -> None:
    """`pichub backup` of the library, then `pichub restore` of it into a fresh directory."""
    backup, restored = folder / "bench-backup", folder / "bench-restore"
    for path in (backup, restored):
        shutil.rmtree(path, ignore_errors=True)
    try:
        steps = (("backup", ["backup", str(backup), "--data-dir", library.data_dir]),
                 ("restore", ["restore", str(backup), "--data-dir", str(restored)]))
        for name, command in steps:
            seconds = run_pichub(command, timeout_s)
            log(f"  {name}: {seconds if seconds is None else round(seconds, 1)} s")
            if seconds is None:
                out.notes.append(f"{name}: stopped after {timeout_s:.0f} s")
                break
            out.metrics[f"{name}_s"] = seconds
            out.metrics[f"{name}_images_per_s"] = library.n / seconds
    finally:
        for path in (backup, restored):
            shutil.rmtree(path, ignore_errors=True)


def bench_size(n: int, args: argparse.Namespace) -> SizeResult:
    folder = scale_gen.library_dir(args.data_root, n)
    log(f"== {n:,} images ({folder})")
    with scale_gen.locked(folder):
        library, built = scale_gen.ensure_library(
            folder, n, albums=min(ALBUMS, n), workers=args.workers, rebuild=args.rebuild,
            seed=args.seed)
        log(f"  library {'built' if built else 'reused'}: {library.images_per_s:,.0f} images/s "
            f"({library.build_s:.0f} s)")
        out = SizeResult(n, {k: v for k, v in asdict(library).items() if k != "token"}
                         | {"built_now": built}, load_average=[os.getloadavg()[0]])
        run_server_part(library, folder, args, out)
        measure_startups(library, folder, args, out)
        if not args.skip_backup:
            measure_backup(library, folder, args.cli_timeout, out)
        out.load_average.append(os.getloadavg()[0])
        if args.delete_after:
            shutil.rmtree(folder)
    return out


def _commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "pichub"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return done.stdout.strip() + ("+dirty" if dirty else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000",
                        type=lambda text: [int(part) for part in text.split(",")],
                        help="library sizes, comma-separated (default 10000)")
    parser.add_argument("--data-root", type=Path, default=default_data_root(),
                        help="where libraries are cached (default $BENCH_SCALE_DATA, else "
                             "~/.cache/pichub-bench-scale)")
    parser.add_argument("--rebuild", action="store_true", help="build libraries anew")
    parser.add_argument("--delete-after", action="store_true",
                        help="remove each library once measured")
    parser.add_argument("--workers", type=int, default=max(2, cpu_count()),
                        help="generator processes writing files (default: one per core)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--requests", type=int, default=30, help="per latency median")
    parser.add_argument("--uploads", type=int, default=20, help="per upload median")
    parser.add_argument("--settle-s", type=float, default=120.0,
                        help="longest wait for the idle RSS to settle")
    parser.add_argument("--startup-timeout", type=float, default=1200.0)
    parser.add_argument("--cli-timeout", type=float, default=1800.0,
                        help="longest wait for `pichub backup` and for `restore`")
    parser.add_argument("--skip-backup", action="store_true")
    parser.add_argument("--no-cold", dest="cold", action="store_false",
                        help="skip the cold start (dropping the page cache slows the whole "
                             "machine for a while)")
    parser.add_argument("--json", type=Path, help="where to write the results (default: "
                                                  "DATA_ROOT/results-<time>.json)")
    return parser.parse_args(argv)


def default_data_root() -> Path:
    return Path(os.environ.get("BENCH_SCALE_DATA", Path.home() / ".cache/pichub-bench-scale"))


def cpu_count() -> int:
    return os.cpu_count() or 1


def write_results(path: Path, started: datetime, results: list[SizeResult]) -> str:
    """The table of `results` in a JSON file with every raw value; returns the table."""
    table = markdown_table(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "command": " ".join(["scripts/bench-scale", *sys.argv[1:]]),
        "started_at": started.isoformat(), "commit": _commit(),
        "machine": {"cpus": cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "table": table, "results": [asdict(r) for r in results],
    }, indent=2) + "\n")
    return table


def main() -> None:
    args = parse_args()
    started = datetime.now(UTC)
    path = args.json or args.data_root / f"results-{started:%Y%m%dT%H%M%SZ}.json"
    results: list[SizeResult] = []
    for n in args.sizes:  # written after each size: the big ones take long
        results.append(bench_size(n, args))
        table = write_results(path, started, results)
    print(table)
    log(f"results: {path}")


if __name__ == "__main__":
    main()
