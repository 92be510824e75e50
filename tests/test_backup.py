"""`pichub backup` / `pichub restore`: real data directories, real servers.

The functions of pichub/services/backup.py are tested against an in-process app
(its database open, as in a running server); the commands end to end against a
`pichub serve` subprocess that keeps taking uploads while it is backed up.
Libraries of thousands of small real images check that backups are byte-exact
and resume after kill -9: a blob replaced by a FIFO makes the copy hang in the
middle of a file, at a known place, without any timing.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from pichub.app import create_app, data_paths
from pichub.blobs import BlobStore
from pichub.config import Settings
from pichub.db.database import Database
from pichub.db.snapshot import latest_schema
from pichub.imaging.formats import ext_of
from pichub.services import backup, backup_copy
from pichub.services.backup import BackupError, Manifest
from tests import samples
from tests.conftest import ApiFactory, make_settings
from tests.support import backends
from tests.support.server import Server
from tests.support.server import pichub as cli

pytestmark = pytest.mark.skipif(
    backends.SCALE, reason="backup and restore copy the SQLite file (PostgreSQL: not yet)")

# --- helpers --------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)) as conn:
        return list(conn.execute(sql).fetchall())


def blob_path(data_dir: Path, image_id: str, fmt: str) -> Path:
    return BlobStore(data_dir / backup.BLOBS_DIR).path(image_id, ext_of(fmt))


def image_files(data_dir: Path) -> dict[str, str]:
    """id -> sha256 of the blob on disk, for every image row."""
    found = {}
    for image_id, fmt in rows(data_dir / backup.DB_FILE, "SELECT id, format FROM images"):
        found[image_id] = sha256(blob_path(data_dir, image_id, fmt).read_bytes())
    return found


async def instance(make_api: ApiFactory, settings: Settings) -> tuple[Path, list[dict[str, Any]]]:
    """A running in-process instance: an album holding three uploaded images (and their
    events). Returns its data dir and the image objects."""
    api = await make_api(settings)
    status, album = await api.call("POST", "/api/v1/albums", json={"name": "trip"})
    assert status == 201
    status, body = await api.upload(("a.jpg", samples.jpeg((80, 60))),
                                    ("b.png", samples.png_alpha()),
                                    ("c.gif", samples.animated_gif()),
                                    album_id=album["data"]["id"])
    assert status == 201, body
    return settings.storage.data_dir, body["data"]


async def run(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


# --- the functions --------------------------------------------------------------------------


def test_backup_layout_is_the_data_dir_layout(settings: Settings) -> None:
    paths = data_paths(settings)
    assert paths["db"] == settings.storage.data_dir / backup.DB_FILE
    assert paths["blobs"] == settings.storage.data_dir / backup.BLOBS_DIR


async def test_round_trip_of_a_running_instance(make_api: ApiFactory, settings: Settings,
                                               tmp_path: Path) -> None:
    data_dir, images = await instance(make_api, settings)
    (data_dir / "cache" / "ab").mkdir(parents=True)
    (data_dir / "cache" / "ab" / "variant.webp").write_bytes(b"cached variant")
    dest = tmp_path / "backup"

    manifest: Manifest = await run(backup.backup, data_dir, dest)

    assert manifest.images == 3 and manifest.bytes == sum(i["size"] for i in images)
    assert manifest.dropped == [] and manifest.damaged == [] and manifest.schema_version >= 1
    assert sorted(p.name for p in dest.iterdir()) == ["blobs", "manifest.json", "pichub.db",
                                                      "secret.key"]
    assert json.loads((dest / "manifest.json").read_text())["format"] == "pichub-backup"
    assert not list(dest.glob("pichub.db-*"))  # self-contained: no -wal / -shm beside it

    target = tmp_path / "restored"
    restored: Manifest = await run(backup.restore, dest, target)

    assert restored == manifest
    assert sorted(p.name for p in target.iterdir()) == ["blobs", "pichub.db", "secret.key"]
    # The server key (two-factor secrets) travels along, still readable by its owner only.
    assert (target / "secret.key").read_bytes() == (data_dir / "secret.key").read_bytes()
    assert (target / "secret.key").stat().st_mode & 0o777 == 0o600
    assert image_files(target) == {i["id"]: i["sha256"] for i in images}
    # What the running server may still change after the snapshot is left out of the comparison.
    for sql in ("SELECT * FROM users", "SELECT * FROM albums", "SELECT * FROM images",
                "SELECT id, user_id, name, token_hash, scope, created_at, revoked_at FROM tokens",
                "SELECT seq, id, user_id, type, payload, created_at FROM events"):
        assert rows(target / "pichub.db", sql) == rows(data_dir / "pichub.db", sql), sql


async def test_restored_instance_serves_the_same_bytes_to_old_tokens(
        make_api: ApiFactory, settings: Settings, tmp_path: Path, aiohttp_client: Any) -> None:
    api = await make_api(settings)
    status, body = await api.upload(("a.jpg", samples.jpeg((80, 60))),
                                    ("b.gif", samples.animated_gif()))
    assert status == 201
    images = body["data"]
    await run(backup.backup, settings.storage.data_dir, tmp_path / "backup")
    await run(backup.restore, tmp_path / "backup", tmp_path / "restored")

    restored = make_settings(tmp_path / "r", storage={"data_dir": tmp_path / "restored"})
    client = await aiohttp_client(create_app(restored))
    async with client.get("/api/v1/images", headers=api.headers()) as resp:
        assert resp.status == 200
        listed = (await resp.json())["data"]
    assert [i["id"] for i in listed] == [i["id"] for i in reversed(images)]
    for image in images:
        async with client.get(f"/img/{image['id']}") as resp:
            assert resp.status == 200
            assert sha256(await resp.read()) == image["sha256"]


async def test_blob_deleted_after_the_snapshot_drops_its_row(
        make_api: ApiFactory, settings: Settings, tmp_path: Path) -> None:
    """A row in the snapshot whose blob is gone when copied: deleted meanwhile (the delete
    commits first, then unlinks). Here the blob is removed by hand to get that state."""
    data_dir, images = await instance(make_api, settings)
    gone = images[1]
    blob_path(data_dir, gone["id"], gone["format"]).unlink()

    manifest: Manifest = await run(backup.backup, data_dir, tmp_path / "backup")

    assert manifest.dropped == [gone["id"]]
    assert manifest.images == 2
    assert manifest.bytes == sum(i["size"] for i in images if i is not gone)
    kept = {row[0] for row in rows(tmp_path / "backup" / "pichub.db", "SELECT id FROM images")}
    assert kept == {images[0]["id"], images[2]["id"]}
    await run(backup.restore, tmp_path / "backup", tmp_path / "restored")
    assert set(image_files(tmp_path / "restored")) == kept


async def test_blob_damaged_at_the_source_is_copied_and_reported(
        make_api: ApiFactory, settings: Settings, tmp_path: Path) -> None:
    data_dir, images = await instance(make_api, settings)
    bad = images[0]
    blob_path(data_dir, bad["id"], bad["format"]).write_bytes(b"bit rot")

    manifest: Manifest = await run(backup.backup, data_dir, tmp_path / "backup")

    assert manifest.damaged == [bad["id"]] and manifest.images == 3
    await run(backup.restore, tmp_path / "backup", tmp_path / "restored")  # as it was
    assert image_files(tmp_path / "restored")[bad["id"]] == sha256(b"bit rot")


async def test_backup_into_an_existing_empty_dir(make_api: ApiFactory, settings: Settings,
                                                 tmp_path: Path) -> None:
    data_dir, _ = await instance(make_api, settings)
    dest = tmp_path / "mnt"
    dest.mkdir()
    manifest: Manifest = await run(backup.backup, data_dir, dest)
    assert manifest.images == 3 and (dest / "manifest.json").is_file()


async def test_backup_refusals(make_api: ApiFactory, settings: Settings, tmp_path: Path) -> None:
    data_dir, _ = await instance(make_api, settings)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="is not empty"):
        await run(backup.backup, data_dir, busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(BackupError, match="is not a directory"):
        await run(backup.backup, data_dir, busy / "keep.txt")
    with pytest.raises(BackupError, match="no PicHub database"):
        await run(backup.backup, tmp_path / "nothing-here", tmp_path / "b2")


async def test_failed_backup_leaves_dest_empty(make_api: ApiFactory, settings: Settings,
                                               tmp_path: Path) -> None:
    data_dir, images = await instance(make_api, settings)
    with closing(sqlite3.connect(data_dir / "pichub.db")) as conn, conn:  # no blob name fits
        conn.execute("UPDATE images SET id = '../../etc' WHERE id = ?", (images[2]["id"],))
    dest = tmp_path / "backup"
    with pytest.raises(BackupError, match="cannot name a blob"):
        await run(backup.backup, data_dir, dest)
    assert dest.is_dir() and list(dest.iterdir()) == []


# --- restore refusals -----------------------------------------------------------------------


@pytest.fixture
async def made(make_api: ApiFactory, settings: Settings, tmp_path: Path) -> Path:
    """A complete backup of a three-image instance."""
    data_dir, _ = await instance(make_api, settings)
    await run(backup.backup, data_dir, tmp_path / "backup")
    return tmp_path / "backup"


def edit_manifest(src: Path, **changes: Any) -> None:
    data = json.loads((src / "manifest.json").read_text())
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    (src / "manifest.json").write_text(json.dumps(data))


def assert_nothing_restored(target: Path) -> None:
    assert not target.exists() or list(target.iterdir()) == []


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "tarball"}, "not a PicHub backup manifest"),
    ({"format_version": 2}, "unsupported format_version"),
    ({"images": None}, "images must be int"),
    ({"bytes": "12"}, "bytes must be int"),
    ({"images": 4}, "the manifest says 4 images, the database has 3"),
    ({"bytes": 1}, "manifest says 1"),
    ({"schema_version": 99}, "database schema"),
])
async def test_restore_refuses_a_bad_manifest(made: Path, tmp_path: Path,
                                              change: dict[str, Any], message: str) -> None:
    edit_manifest(made, **change)
    with pytest.raises(BackupError, match=message):
        await run(backup.restore, made, tmp_path / "target")
    assert_nothing_restored(tmp_path / "target")


async def test_restore_refuses_a_missing_or_unreadable_manifest(made: Path,
                                                                tmp_path: Path) -> None:
    (made / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="bad manifest"):
        await run(backup.restore, made, tmp_path / "target")
    (made / "manifest.json").unlink()
    with pytest.raises(BackupError, match="not a complete PicHub backup"):
        await run(backup.restore, made, tmp_path / "target")
    with pytest.raises(BackupError, match="no backup at"):
        await run(backup.restore, tmp_path / "absent", tmp_path / "target")


async def test_restore_refuses_a_backup_from_a_newer_schema(made: Path, tmp_path: Path) -> None:
    newer = latest_schema() + 1
    with closing(sqlite3.connect(made / "pichub.db")) as conn, conn:
        conn.execute(f"PRAGMA user_version = {newer}")
    edit_manifest(made, schema_version=newer)
    with pytest.raises(BackupError, match="newer PicHub"):
        await run(backup.restore, made, tmp_path / "target")


async def test_restore_refuses_damaged_blobs_and_database(made: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    blob = next(p for p in (made / "blobs").rglob("*") if p.is_file())
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(BackupError, match="does not match its sha256"):
        await run(backup.restore, made, target)
    assert_nothing_restored(target)
    blob.unlink()
    with pytest.raises(BackupError, match="is missing"):
        await run(backup.restore, made, target)
    assert_nothing_restored(target)
    blob.write_bytes(original)
    (made / "pichub.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    with pytest.raises(BackupError, match="backup is damaged"):
        await run(backup.restore, made, target)
    assert_nothing_restored(target)


async def test_restore_refuses_a_database_that_is_not_pichubs(made: Path,
                                                              tmp_path: Path) -> None:
    (made / "pichub.db").unlink()
    with closing(sqlite3.connect(made / "pichub.db")) as conn, conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute(f"PRAGMA user_version = {latest_schema()}")
    with pytest.raises(BackupError, match="not a PicHub database"):
        await run(backup.restore, made, tmp_path / "target")
    assert_nothing_restored(tmp_path / "target")


async def test_restore_target_must_be_empty(made: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "pichub.db").write_bytes(b"someone's data")
    with pytest.raises(BackupError, match="is not empty"):
        await run(backup.restore, made, target)
    assert (target / "pichub.db").read_bytes() == b"someone's data"


async def test_restore_clears_what_an_interrupted_restore_left(made: Path,
                                                               tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / backup.RESTORE_TMP / "blobs").mkdir(parents=True)
    (target / backup.RESTORE_TMP / "pichub.db").write_bytes(b"half")
    manifest: Manifest = await run(backup.restore, made, target)
    assert manifest.images == 3
    assert sorted(p.name for p in target.iterdir()) == ["blobs", "pichub.db", "secret.key"]


# --- the commands, against a server that keeps working --------------------------------------


def pichub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pichub", *args], capture_output=True,
                          text=True, timeout=120)


def upload(base: str, token: str, name: str, data: bytes) -> dict[str, Any]:
    resp = requests.post(f"{base}/api/v1/upload", headers={"Authorization": f"Bearer {token}"},
                         files={"files[]": (name, data)}, data={"convertToWebP": "false"},
                         timeout=30)
    assert resp.status_code == 201, resp.text
    image: dict[str, Any] = resp.json()["data"][0]
    return image


def test_backup_of_a_live_server_restores_to_a_working_instance(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        token = server.token
        before = [upload(server.base, token, f"{n}.jpg", samples.jpeg((40 + n, 30)))
                  for n in range(3)]
        deleted = before.pop()
        assert requests.delete(f"{server.base}/api/v1/images/{deleted['id']}", timeout=10,
                               headers={"Authorization": f"Bearer {token}"}).ok
        during: list[dict[str, Any]] = []
        writer = threading.Thread(target=lambda: during.extend(
            upload(server.base, token, f"d{n}.png", samples.png_alpha((20 + n, 20)))
            for n in range(5)))
        writer.start()
        made = pichub("backup", str(tmp_path / "backup"), "--data-dir", str(server.data_dir))
        writer.join()
    finally:
        server.stop()
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("backed up ")

    restored = pichub("restore", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "new"))
    assert restored.returncode == 0, restored.stderr
    again = Server(tmp_path / "new")
    try:
        assert "API token" not in again.output  # not a first start: the users came back
        listed = requests.get(f"{again.base}/api/v1/images?per_page=100", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
        ids = {i["id"] for i in listed.json()["data"]}
        uploaded = {i["id"]: i for i in before + during}
        assert {i["id"] for i in before} <= ids <= set(uploaded)
        for image_id in ids:
            got = requests.get(f"{again.base}/img/{image_id}", timeout=10)
            assert got.status_code == 200
            assert sha256(got.content) == uploaded[image_id]["sha256"]
        assert requests.get(f"{again.base}/img/{deleted['id']}", timeout=10).status_code == 404
    finally:
        again.stop()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


async def test_commands_refuse_with_one_clear_line(made: Path, tmp_path: Path,
                                                   settings: Settings) -> None:
    data = str(settings.storage.data_dir)
    line = one_error_line(await run(pichub, "backup", str(made), "--data-dir", data))
    assert "backup destination" in line and "is not empty" in line
    line = one_error_line(await run(pichub, "restore", str(made), "--data-dir", data))
    assert "restore target" in line and "is not empty" in line
    edit_manifest(made, format="zip")
    line = one_error_line(await run(pichub, "restore", str(made), "--data-dir",
                                    str(tmp_path / "fresh")))
    assert "bad manifest" in line


# --- libraries of thousands of images: byte-exact, resumable --------------------------------

LIBRARY_SIZE = 2000


async def _new_database(path: Path) -> None:
    db = await Database.open(path)  # the schema, by PicHub's own migrations
    await db.close()


def library(data_dir: Path, count: int) -> Path:
    """A stopped instance holding `count` small real images (JPEG and PNG of many sizes),
    stored as PicHub stores them: each blob through `BlobStore.put`, the rows inserted on
    the schema."""
    asyncio.run(_new_database(data_dir / backup.DB_FILE))
    store = BlobStore(data_dir / backup.BLOBS_DIR)

    def one(n: int) -> tuple[str, str, int, int, int, str]:
        size = (8 + n % 41, 6 + n % 29)
        fmt, data = ("png", samples.png_alpha(size)) if n % 3 == 0 else \
            ("jpeg", samples.jpeg(size))
        image_id = secrets.token_urlsafe(9)
        store.put(image_id, ext_of(fmt), data)
        return image_id, fmt, size[0], size[1], len(data), sha256(data)

    with ThreadPoolExecutor(8) as pool:
        images = list(pool.map(one, range(count)))
    with closing(sqlite3.connect(data_dir / backup.DB_FILE)) as conn, conn:
        conn.execute("INSERT INTO users (username, password_hash, created_at)"
                     " VALUES ('alice', 'x', '2026-01-01T00:00:00Z')")
        conn.executemany(
            "INSERT INTO images (id, user_id, filename, original_name, format, width, height,"
            " size, sha256, created_at) VALUES (?, 1, 'x', 'x', ?, ?, ?, ?, ?,"
            " '2026-01-01T00:00:00Z')", images)
    return data_dir


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return library(tmp_path_factory.mktemp("library") / "data", LIBRARY_SIZE)


@pytest.fixture
def big(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of a library of LIBRARY_SIZE images, for one test to change."""
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def blob_files(root: Path) -> dict[str, Path]:
    """Every file under a blob root, by its path relative to the root."""
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}


def assert_same_blobs(source: Path, copy: Path) -> None:
    """`copy` holds exactly the files of `source`, byte for byte."""
    files, copied = blob_files(source), blob_files(copy)
    assert sorted(copied) == sorted(files)
    for rel, path in files.items():
        assert copied[rel].read_bytes() == path.read_bytes(), rel


def same_rows(a: Path, b: Path) -> None:
    for sql in ("SELECT * FROM users", "SELECT * FROM images ORDER BY seq"):
        assert rows(a, sql) == rows(b, sql), sql


def stamps(root: Path, only: set[str] | None = None) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of the files under `root`: unchanged means not written again."""
    return {rel: (st.st_ino, st.st_mtime_ns) for rel, path in blob_files(root).items()
            if only is None or rel in only for st in [path.stat()]}


def complete_copies(source: Path, copy: Path) -> set[str]:
    """The files under `copy` that equal their original under `source`."""
    return {rel for rel, path in blob_files(copy).items()
            if path.read_bytes() == (source / rel).read_bytes()}


def test_thousands_of_images_round_trip_byte_exact(big: Path, tmp_path: Path) -> None:
    data_dir = big
    reports: list[tuple[int, int, int, int]] = []

    made = backup.backup(data_dir, tmp_path / "backup",
                         lambda p: reports.append((p.files, p.files_total, p.bytes, p.kept)),
                         workers=3)

    assert made.images == LIBRARY_SIZE and made.dropped == [] and made.damaged == []
    assert made.bytes == sum(p.stat().st_size for p in blob_files(data_dir / "blobs").values())
    assert reports[0] == (0, LIBRARY_SIZE, 0, 0)
    assert reports[-1] == (LIBRARY_SIZE, LIBRARY_SIZE, made.bytes, 0)
    assert [r[0] for r in reports] == sorted(r[0] for r in reports)  # in order, as they come
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "blobs", "manifest.json", "pichub.db"]
    assert_same_blobs(data_dir / "blobs", tmp_path / "backup" / "blobs")
    same_rows(data_dir / "pichub.db", tmp_path / "backup" / "pichub.db")

    restored = backup.restore(tmp_path / "backup", tmp_path / "restored", workers=3)

    assert restored == made
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == ["blobs", "pichub.db"]
    assert_same_blobs(data_dir / "blobs", tmp_path / "restored" / "blobs")
    same_rows(data_dir / "pichub.db", tmp_path / "restored" / "pichub.db")


class Stall:
    """A blob of a library replaced by a FIFO: a copy that opens it waits until `feed`, which
    lets half of its bytes through and holds the rest, so the copy hangs mid-file;
    `unstall` puts the real file back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        path.unlink()
        os.mkfifo(path)
        self.fd: int | None = None

    def feed(self, timeout: float = 60) -> None:
        """Wait for a reader, then write the first half (once)."""
        if self.fd is not None:
            return
        deadline = time.monotonic() + timeout
        while self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: nobody reads it yet
                assert exc.errno == errno.ENXIO and time.monotonic() < deadline, exc
                time.sleep(0.01)
        os.write(self.fd, self.data[: len(self.data) // 2])

    def finish(self) -> None:
        """Let the rest through."""
        assert self.fd is not None
        os.write(self.fd, self.data[len(self.data) // 2:])
        os.close(self.fd)
        self.fd = None

    def unstall(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.path.unlink()
        self.path.write_bytes(self.data)


def nth_blob(data_dir: Path, n: int) -> str:
    """The path under the blob root of the image inserted `n`th."""
    image_id, fmt = rows(data_dir / "pichub.db",
                         f"SELECT id, format FROM images ORDER BY seq LIMIT 1 OFFSET {n}")[0]
    return str(blob_path(data_dir, image_id, fmt).relative_to(data_dir / "blobs"))


def wait_for_size(path: Path, size: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_size == size):
        assert time.monotonic() < deadline, f"{path} never reached {size} bytes"
        time.sleep(0.01)


@contextmanager
def running(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`pichub ARGS` in a subprocess, killed at the end if still running (or after two
    minutes, so that a test waiting on its output cannot hang)."""
    proc = subprocess.Popen([sys.executable, "-m", "pichub", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        yield proc
    finally:
        watchdog.cancel()
        proc.kill()
        proc.communicate(timeout=30)


def kill_mid_copy(proc: subprocess.Popen[str], stall: Stall, partial: Path) -> None:
    """Once the copy hangs in the middle of the stalled blob, kill -9."""
    stall.feed()
    wait_for_size(partial, len(stall.data) // 2)
    proc.kill()
    proc.communicate(timeout=30)


def test_backup_killed_mid_copy_continues_where_it_stopped(big: Path, tmp_path: Path) -> None:
    data_dir, dest = big, tmp_path / "backup"
    rel = nth_blob(data_dir, 700)
    stall = Stall(data_dir / "blobs" / rel)
    args = ("backup", str(dest), "--data-dir", str(data_dir), "--jobs", "2")
    with running(*args) as first:
        stall.feed()
        second = cli(*args)  # the same backup again while the first runs: refused
        assert second.returncode == 1 and "by another process" in second.stderr
        kill_mid_copy(first, stall, dest / "blobs" / rel)
    stall.unstall()

    assert not (dest / "manifest.json").exists() and (dest / ".backup-in-progress").is_file()
    done = complete_copies(data_dir / "blobs", dest / "blobs")
    assert len(done) >= 600 and rel not in done  # the half-written blob is not complete
    before = stamps(dest / "blobs", done)

    again = cli(*args)

    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"backed up {LIBRARY_SIZE} image(s)")
    assert f"{len(done):,} kept" in again.stderr  # the progress line says what was verified
    assert stamps(dest / "blobs", done) == before  # verified in place, not copied again
    assert_same_blobs(data_dir / "blobs", dest / "blobs")
    same_rows(data_dir / "pichub.db", dest / "pichub.db")
    assert sorted(p.name for p in dest.iterdir()) == ["blobs", "manifest.json", "pichub.db"]
    assert backup.read_manifest(dest).images == LIBRARY_SIZE


def test_restore_killed_mid_copy_continues_where_it_stopped(big: Path, tmp_path: Path) -> None:
    data_dir, src, target = big, tmp_path / "backup", tmp_path / "new"
    backup.backup(data_dir, src)
    rel = nth_blob(data_dir, 700)
    stall = Stall(src / "blobs" / rel)
    args = ("restore", str(src), "--data-dir", str(target), "--jobs", "2")
    with running(*args) as proc:
        kill_mid_copy(proc, stall, target / backup.RESTORE_TMP / "blobs" / rel)
    stall.unstall()

    assert sorted(p.name for p in target.iterdir()) == [backup.RESTORE_TMP]  # no instance yet
    done = complete_copies(src / "blobs", target / backup.RESTORE_TMP / "blobs")
    assert len(done) >= 600 and rel not in done
    before = stamps(target / backup.RESTORE_TMP / "blobs", done)

    again = cli(*args)

    assert again.returncode == 0, again.stderr
    assert f"{len(done):,} kept" in again.stderr
    assert sorted(p.name for p in target.iterdir()) == ["blobs", "pichub.db"]
    assert stamps(target / "blobs", done) == before  # moved into place, never copied again
    assert_same_blobs(data_dir / "blobs", target / "blobs")
    same_rows(data_dir / "pichub.db", target / "pichub.db")


def test_ctrl_c_stops_a_backup_and_keeps_its_work(big: Path, tmp_path: Path) -> None:
    data_dir, dest = big, tmp_path / "backup"
    stall = Stall(data_dir / "blobs" / nth_blob(data_dir, 300))
    with running("backup", str(dest), "--data-dir", str(data_dir)) as proc:
        stall.feed()
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        lines = iter(proc.stderr.readline, "")
        assert any(line.startswith("interrupted: run the same command again") for line in lines)
        stall.finish()  # the copy threads finish what they hold, then stop
        assert proc.wait(timeout=60) == 130
    stall.unstall()
    assert not (dest / "manifest.json").exists() and (dest / ".backup-in-progress").is_file()
    again = cli("backup", str(dest), "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr
    assert_same_blobs(data_dir / "blobs", dest / "blobs")


def interrupted_after(files: int) -> tuple[Callable[[backup.Progress], None], threading.Event]:
    """A progress callback that asks the copy to stop once `files` are done."""
    stop = threading.Event()

    def report(progress: backup.Progress) -> None:
        if progress.files >= files:
            stop.set()
    return report, stop


def test_interrupted_backup_recopies_damaged_blobs_and_keeps_the_rest(big: Path,
                                                                     tmp_path: Path) -> None:
    data_dir, dest = big, tmp_path / "backup"
    report, stop = interrupted_after(500)
    with pytest.raises(backup.Interrupted):
        backup.backup(data_dir, dest, report, stop=stop)
    copied = blob_files(dest / "blobs")
    assert len(copied) >= 500
    flipped, cut, *rest = sorted(copied)
    data = copied[flipped].read_bytes()
    copied[flipped].write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other bytes
    copied[cut].write_bytes(copied[cut].read_bytes()[:10])  # a partial write
    before = stamps(dest / "blobs", set(rest))

    manifest = backup.backup(data_dir, dest)

    assert manifest.images == LIBRARY_SIZE and manifest.damaged == []
    assert stamps(dest / "blobs", set(rest)) == before
    assert_same_blobs(data_dir / "blobs", dest / "blobs")


def test_finished_backup_is_refused_not_resumed(tmp_path: Path) -> None:
    data_dir, dest = library(tmp_path / "data", 50), tmp_path / "backup"
    backup.backup(data_dir, dest)
    (dest / ".backup-in-progress").write_text("{}")  # even beside a stray marker
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    with pytest.raises(BackupError, match="is not empty: it holds a finished backup"):
        backup.backup(data_dir, dest)
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before
    line = one_error_line(cli("backup", str(dest), "--data-dir", str(data_dir)))
    assert "finished backup" in line


def test_unfinished_backup_of_another_instance_is_refused(tmp_path: Path) -> None:
    data_dir, dest = library(tmp_path / "data", 200), tmp_path / "backup"
    report, stop = interrupted_after(64)
    with pytest.raises(backup.Interrupted):
        backup.backup(data_dir, dest, report, stop=stop)
    other = library(tmp_path / "other", 10)
    with pytest.raises(BackupError, match="holds an unfinished backup of"):
        backup.backup(other, dest)
    assert (dest / ".backup-in-progress").is_file()  # left for the instance it belongs to
    assert backup.backup(data_dir, dest).images == 200


def test_resumed_backup_takes_a_new_snapshot_when_its_own_changed(tmp_path: Path) -> None:
    """A snapshot in DEST that is not byte for byte the one its marker names (damaged, or
    written over) is taken again; blobs copied for rows the new one lacks are removed."""
    data_dir, dest = library(tmp_path / "data", 300), tmp_path / "backup"
    report, stop = interrupted_after(128)
    with pytest.raises(backup.Interrupted):
        backup.backup(data_dir, dest, report, stop=stop)
    gone_rel = nth_blob(data_dir, 0)  # copied already, then deleted at the source
    assert (dest / "blobs" / gone_rel).is_file()
    with closing(sqlite3.connect(data_dir / "pichub.db")) as conn, conn:
        conn.execute("DELETE FROM images WHERE seq = (SELECT min(seq) FROM images)")
    (data_dir / "blobs" / gone_rel).unlink()
    with open(dest / "pichub.db", "ab") as db:
        db.write(b"\0")

    manifest = backup.backup(data_dir, dest)

    assert manifest.images == 299 and manifest.dropped == []
    assert not (dest / "blobs" / gone_rel).exists()
    assert_same_blobs(data_dir / "blobs", dest / "blobs")
    same_rows(data_dir / "pichub.db", dest / "pichub.db")


def test_restore_stopped_between_its_renames_continues(tmp_path: Path) -> None:
    data_dir, src, target = library(tmp_path / "data", 300), tmp_path / "backup", tmp_path / "t"
    backup.backup(data_dir, src)
    report, stop = interrupted_after(128)
    with pytest.raises(backup.Interrupted):
        backup.restore(src, target, report, stop=stop)
    (target / backup.RESTORE_TMP / "blobs").rename(target / "blobs")  # as after the first

    assert backup.restore(src, target).images == 300

    assert sorted(p.name for p in target.iterdir()) == ["blobs", "pichub.db"]
    assert_same_blobs(data_dir / "blobs", target / "blobs")


def test_interrupted_restore_of_another_backup_starts_over(tmp_path: Path) -> None:
    first = library(tmp_path / "first", 200)
    second = library(tmp_path / "second", 20)
    backup.backup(first, tmp_path / "b1")
    backup.backup(second, tmp_path / "b2")
    target = tmp_path / "target"
    report, stop = interrupted_after(64)
    with pytest.raises(backup.Interrupted):
        backup.restore(tmp_path / "b1", target, report, stop=stop)

    assert backup.restore(tmp_path / "b2", target).images == 20

    assert_same_blobs(second / "blobs", target / "blobs")
    same_rows(second / "pichub.db", target / "pichub.db")


def test_restore_never_follows_a_blob_that_is_a_link(tmp_path: Path) -> None:
    """Even for an image the manifest lists as damaged (whose bytes are not checked)."""
    data_dir, src = library(tmp_path / "data", 20), tmp_path / "backup"
    backup.backup(data_dir, src)
    rel = nth_blob(data_dir, 5)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the backup")
    (src / "blobs" / rel).unlink()
    (src / "blobs" / rel).symlink_to(secret)
    image_id = Path(rel).name.split(".")[0]
    edit_manifest(src, damaged=[image_id])
    with pytest.raises(BackupError, match=f"blob of image {image_id} is a symbolic link"):
        backup.restore(src, tmp_path / "target")
    assert_nothing_restored(tmp_path / "target")


async def test_shared_blobs_stay_one_file_in_the_backup_and_after_restore(
        make_api: ApiFactory, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads of the same bytes share one file (hard links); a backup and a restore keep
    them one file, also when the backup was interrupted and resumed."""
    api = await make_api(settings)
    photo, other = samples.jpeg((90, 70)), samples.jpeg((70, 90))
    ids = []
    for data in (photo, other, photo, photo):
        status, body = await api.upload(("p.jpg", data), convertToWebP="false")
        assert status == 201
        ids.append(body["data"][0]["id"])
    data_dir = settings.storage.data_dir

    def inodes(root: Path) -> list[int]:
        return [blob_path(root, image_id, "jpeg").stat().st_ino for image_id in ids]

    source = inodes(data_dir)
    assert source[0] == source[2] == source[3] != source[1]
    dest = tmp_path / "backup"
    monkeypatch.setattr(backup_copy, "CHUNK", 1)  # stopped after a blob or two
    report, stop = interrupted_after(1)
    with pytest.raises(backup.Interrupted):
        await run(lambda: backup.backup(data_dir, dest, report, workers=1, stop=stop))

    manifest: Manifest = await run(backup.backup, data_dir, dest)

    assert manifest.images == 4 and manifest.bytes == 3 * len(photo) + len(other)
    copied = inodes(dest)
    assert copied[0] == copied[2] == copied[3] != copied[1]
    assert blob_path(dest, ids[0], "jpeg").stat().st_nlink == 3
    assert blob_path(dest, ids[0], "jpeg").read_bytes() == photo
    target = tmp_path / "restored"
    await run(backup.restore, dest, target)
    restored = inodes(target)
    assert restored[0] == restored[2] == restored[3] != restored[1]
    assert image_files(target) == {i: sha256(d) for i, d in zip(ids, (photo, other, photo,
                                                                      photo), strict=True)}
