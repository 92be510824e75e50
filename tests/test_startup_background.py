"""Start-up in constant time: the port opens at once; the orphan sweep and the variant
cache's index run in the background, in steps, while requests are served.

Real servers (a subprocess, or the app on aiohttp's test server), real SQLite, real files;
the background jobs are slowed down with their real settings (`storage.loader_files`,
`storage.loader_sleep_ms`), never by patching PicHub's code.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import signal
import sqlite3
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from pichub.app import create_app, data_paths
from pichub.blobs import TMP_PREFIX, BlobStore
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.keys import PIPELINE
from pichub.pacing import Pacing, Progress
from pichub.services import accounts
from pichub.services.sweep import SETTLE_S, OrphanSweep
from tests import samples
from tests.conftest import Api, make_settings
from tests.support import backends, library
from tests.support.server import Server

SLOW = {"PICHUB_STORAGE__LOADER_FILES": "10", "PICHUB_STORAGE__LOADER_SLEEP_MS": "100"}
STOPPED = {"PICHUB_STORAGE__LOADER_FILES": "1", "PICHUB_STORAGE__LOADER_SLEEP_MS": "600000"}


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


async def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {seconds} s")


def test_healthz_answers_while_the_sweep_still_runs_and_the_sweep_then_finishes(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = asyncio.run(library.build(data, 150, orphans=100, temps=3))
    time.sleep(SETTLE_S + 0.1)  # the crash left them before this start
    server = Server(data, env=SLOW)
    try:
        health = requests.get(server.base + "/healthz", timeout=5)
        assert health.status_code == 200
        assert "blob sweep done" not in server.output + server.logged
        assert any(path.exists() for path in made.orphans)  # the sweep is still under way
        image_id, variant = made.ids[0], made.variants[0]
        got = requests.get(f"{server.base}/img/{image_id}.jpg?w={library.VARIANT_W}", timeout=5)
        assert got.status_code == 200 and got.content == variant.read_bytes()
        server.wait_for_line("blob sweep done", timeout=60)
        server.wait_for_line("variant cache index done", timeout=60)
        assert not any(path.exists() for path in made.orphans + made.temps)
        assert all(path.exists() for path in made.blobs + made.variants)
        metrics = requests.get(server.base + "/metrics", timeout=5).text
        assert metric(metrics, "pichub_variant_cache_misses_total") == 0
        assert metric(metrics, "pichub_blob_sweep_files_seen_total") == 253
        assert metric(metrics, "pichub_blob_sweep_files_removed_total") == 103
        assert metric(metrics, "pichub_variant_cache_files") == 150
    finally:
        server.stop()
    summary = next(line for line in server.logged.splitlines() if "blob sweep done" in line)
    assert "253 files, 100 orphan and 3 temporary file(s) removed" in summary


def test_sigterm_while_both_jobs_run_exits_cleanly_and_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(library.build(data, 20, orphans=5))
    server = Server(data, env=STOPPED)  # one file a step, then ten minutes asleep
    assert requests.get(server.base + "/healthz", timeout=5).status_code == 200
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait(timeout=20) == 0
    assert time.monotonic() - signalled < 5
    log = server.output + server.logged
    assert "done in" not in log
    assert "Traceback" not in log and "failed" not in log and "ERROR" not in log, log


async def test_a_blob_written_after_the_sweep_began_stays_until_its_row_commits(
        tmp_path: Path) -> None:
    """What an upload does, cut in two by a whole sweep: its files, then (later) its row."""
    paths = data_paths(make_settings(tmp_path))
    db = await Database.open(paths["db"])
    try:
        blobs = BlobStore(paths["blobs"])
        user_id = await accounts.create_user(db, "alice", "password-alice")
        owned = await _image(db, blobs, user_id, "owned000001")
        orphan = blobs.put("orphan00001", "jpg", b"crash between the blob and its row")
        temp = orphan.parent / f"{TMP_PREFIX}crashed"
        temp.write_bytes(b"half")
        await asyncio.sleep(SETTLE_S + 0.1)
        sweep = OrphanSweep(db, blobs, asyncio.to_thread, Pacing(files=1, sleep_s=0),
                            Progress("blob sweep", logging.getLogger("test")))
        uploading = blobs.put("uploading01", "jpg", samples.jpeg())
        copy = blobs.put_working("uploading01", 1, "jpg", b"working copy")
        in_flight = uploading.parent / f"{TMP_PREFIX}being-written"
        in_flight.write_bytes(b"half")
        await sweep.run()
        assert not orphan.exists() and not temp.exists()
        assert owned.exists() and uploading.exists() and copy.exists() and in_flight.exists()
        assert (sweep.orphans, sweep.temps, sweep.progress.seen) == (1, 1, 6)
        await _image(db, blobs, user_id, "uploading01")  # the row commits after the sweep
    finally:
        await db.close()


async def _image(db: Database, blobs: BlobStore, user_id: int, image_id: str) -> Path:
    """A committed image (its blob first, then its row, as an upload does)."""
    path = blobs.path(image_id, "jpg")
    if not path.exists():
        blobs.put(image_id, "jpg", samples.jpeg())
    async with db.transaction() as conn:
        await images_db.insert(conn, images_db.NewImage(
            id=image_id, user_id=user_id, album_id=None, filename="a.jpg", original_name="a.jpg",
            description="", format="jpeg", width=64, height=48, frames=1,
            size=path.stat().st_size, sha256="0" * 64))
    return path


@pytest.mark.skipif(backends.SCALE, reason="holds SQLite's write lock to stall the sweep")
async def test_uploads_whose_rows_commit_during_the_sweep_keep_their_blobs(
        tmp_path: Path, aiohttp_client: Any) -> None:
    """Uploads through the API while the sweep runs; their rows cannot commit until it is
    done (another connection holds SQLite's write lock), so their blobs sit there without
    a row while it walks. Every top-level shard exists, so it walks into theirs."""
    settings = make_settings(tmp_path, storage={"loader_files": 10, "loader_sleep_ms": 100})
    data = Path(settings.storage.data_dir)
    made = await library.build(data, 100, variants=False, orphans=100)
    for a, b in itertools.product(string.ascii_letters + string.digits + "-_", repeat=2):
        (data / "blobs" / f"{a}{b}").mkdir(exist_ok=True)
    await asyncio.sleep(SETTLE_S + 0.1)
    client = await aiohttp_client(create_app(settings))
    api = Api(client, made.token)
    status, _ = await api.call("GET", "/api/v1/images")  # its first use is written down
    assert status == 200
    before = set(made.blobs + made.orphans)
    lock = sqlite3.connect(data / "pichub.db", isolation_level=None, check_same_thread=False)
    await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")  # the app may be writing
    locked = True
    try:
        uploads = [asyncio.create_task(api.upload((f"{n}.jpg", samples.jpeg((40 + n, 30))),
                                                  convertToWebP="false")) for n in range(3)]
        store = BlobStore(data / "blobs")
        await wait_until(lambda: len(set(store.walk()) - before) == 3)  # blobs, no rows
        await wait_until(lambda: not any(path.exists() for path in made.orphans))
        lock.execute("COMMIT")
        locked = False
        answers = await asyncio.gather(*uploads)
    finally:
        if locked:
            lock.execute("ROLLBACK")
        lock.close()
    for status, body in answers:
        assert status == 201, body
        image = body["data"][0]
        async with client.get(f"/img/{image['id']}") as resp:
            assert resp.status == 200
            assert library.hashlib.sha256(await resp.read()).hexdigest() == image["sha256"]
    assert all(path.exists() for path in made.blobs)


@pytest.mark.skipif(backends.SCALE,
                    reason="tests/support/library seeds the SQLite file the app then opens")
async def test_a_cached_variant_not_indexed_yet_is_served_as_it_is(
        tmp_path: Path, aiohttp_client: Any) -> None:
    settings = make_settings(tmp_path, storage={"loader_files": 1,
                                                "loader_sleep_ms": 600_000})
    made = await library.build(Path(settings.storage.data_dir), 5)
    inodes = [path.stat().st_ino for path in made.variants]
    client = await aiohttp_client(create_app(settings))
    pipeline = client.server.app[PIPELINE]
    for image_id, variant in zip(made.ids, made.variants, strict=True):
        async with client.get(f"/img/{image_id}.jpg?w={library.VARIANT_W}") as resp:
            assert resp.status == 200
            assert await resp.read() == variant.read_bytes()
    assert pipeline.cache.loading  # the loader is asleep after its first file
    assert pipeline.transforms_run == 0 and pipeline.cache_misses == 0
    assert pipeline.cache_hits == 5 and len(pipeline.cache) == 5
    assert [path.stat().st_ino for path in made.variants] == inodes
    async with client.get(f"/img/{made.ids[0]}.jpg?w={library.VARIANT_W + 1}") as resp:
        assert resp.status == 200  # a variant that is not on disk is made
    assert pipeline.transforms_run == 1 and pipeline.cache_misses == 1
    closing = time.monotonic()
    await client.close()  # the loader is cancelled in its sleep
    assert time.monotonic() - closing < 5


async def test_the_loader_keeps_the_newest_max_files_and_deletes_the_rest(
        tmp_path: Path, aiohttp_client: Any) -> None:
    settings = make_settings(tmp_path, images={"cache_max_files": 10},
                             storage={"loader_files": 7, "loader_sleep_ms": 0})
    made = await library.build(Path(settings.storage.data_dir), 30)
    for n, path in enumerate(made.variants):
        library.age([path], 10_000 - n)  # the first is the oldest
    client = await aiohttp_client(create_app(settings))
    pipeline = client.server.app[PIPELINE]
    await wait_until(lambda: not pipeline.cache.loading)
    await pipeline.drain()
    assert [path.exists() for path in made.variants] == [False] * 20 + [True] * 10
    assert len(pipeline.cache) == 10
    async with client.get("/metrics") as resp:
        text = await resp.text()
    assert metric(text, "pichub_variant_cache_files") == 10
    assert metric(text, "pichub_variant_cache_index_files_removed_total") == 20


def test_a_failing_job_is_logged_and_the_server_keeps_serving(tmp_path: Path) -> None:
    """A file where the variant cache's directory should be: its index cannot load."""
    data = tmp_path / "data"
    made = asyncio.run(library.build(data, 3, variants=False))
    (data / "cache").write_text("in the way")
    server = Server(data)
    try:
        server.wait_for_line("variant cache index failed")
        assert requests.get(server.base + "/healthz", timeout=5).status_code == 200
        original = requests.get(f"{server.base}/img/{made.ids[0]}", timeout=5)
        assert original.status_code == 200
        server.wait_for_line("blob sweep done")  # the other job is not affected
    finally:
        server.stop()
    assert "NotADirectoryError" in server.output + server.logged


def test_progress_is_logged_every_few_seconds(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("blob sweep", logging.getLogger("pichub.test"), every_s=0.0)
    with caplog.at_level(logging.INFO, "pichub.test"):
        progress.update(500, 2)
        progress.finish("%d files", 500)
    first, last = caplog.messages
    assert re.fullmatch(r"blob sweep: 500 files seen, 2 removed, \d+ files/s", first)
    assert re.fullmatch(r"blob sweep done in \d+\.\ds \(\d+ files/s\): 500 files", last)
    assert progress.done
