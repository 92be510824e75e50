"""`pichub backup` / `pichub restore`: real data directories, real servers.

The functions of pichub/backup.py are tested against an in-process app (its
database open, as in a running server); the commands end to end against a
`pichub serve` subprocess that keeps taking uploads while it is backed up.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from pichub.app import create_app, data_paths
from pichub.blobs import BlobStore
from pichub.config import Settings
from pichub.db.snapshot import latest_schema
from pichub.imaging.formats import ext_of
from pichub.services import backup
from pichub.services.backup import BackupError, Manifest
from tests import samples
from tests.conftest import ApiFactory, make_settings
from tests.support.server import Server

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
    assert sorted(p.name for p in dest.iterdir()) == ["blobs", "manifest.json", "pichub.db"]
    assert json.loads((dest / "manifest.json").read_text())["format"] == "pichub-backup"
    assert not list(dest.glob("pichub.db-*"))  # self-contained: no -wal / -shm beside it

    target = tmp_path / "restored"
    restored: Manifest = await run(backup.restore, dest, target)

    assert restored == manifest
    assert sorted(p.name for p in target.iterdir()) == ["blobs", "pichub.db"]
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
    assert sorted(p.name for p in target.iterdir()) == ["blobs", "pichub.db"]


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
        match = re.search(r"API token: (\S+)", server.output)
        assert match
        token = match.group(1)
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
