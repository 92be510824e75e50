"""`pichub migrate` and backup/restore across engines, on a real PostgreSQL and SeaweedFS.

A populated single-box instance (SQLite and blobs/, with albums, webhooks, a second token,
a deleted image) is copied while it serves; PicHub started on PostgreSQL and the bucket
then answers the same tokens with the same bytes. A run that fails on the way (bucket
unreachable) says so in one line and the next run completes; a run after changes copies
them, deletions included. An instance on PostgreSQL and S3 is backed up into the usual
backup layout and restored both to a single box and to another PostgreSQL and bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pichub.app import create_app
from pichub.config import Settings
from tests import samples
from tests.conftest import Api, ApiFactory
from tests.support import postgres
from tests.support.seaweed import Seaweed

ROOT = Path(__file__).resolve().parent.parent


def local_settings(data: Path, **sections: dict[str, Any]) -> Settings:
    """A single box: SQLite and blobs/ in `data` (whatever PICHUB_TEST_BACKEND says)."""
    return Settings(storage={"data_dir": data, "min_free_mb": 0},
                    rate_limits={"enabled": False},
                    webhooks={"allow_private_networks": True}, **sections)


def engine_settings(data: Path, url: str, s3: dict[str, Any], key: str) -> Settings:
    return Settings(storage={"data_dir": data, "min_free_mb": 0, "backend": "s3", "s3": s3},
                    database={"url": url}, auth={"secret_key": key},
                    rate_limits={"enabled": False},
                    webhooks={"allow_private_networks": True})


def s3_env(s3: dict[str, Any]) -> dict[str, str]:
    return {f"PICHUB_STORAGE__S3__{name.upper()}": str(value).lower()
            if isinstance(value, bool) else str(value) for name, value in s3.items()}


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`pichub …` as a user runs it (no terminal: progress comes as lines)."""
    return subprocess.run([sys.executable, "-m", "pichub", *argv], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PICHUB_RATE_LIMITS__ENABLED": "false",
                               **(env or {})})


async def populate(api: Api) -> dict[str, Any]:
    """Images (one in an album, one deleted again), a webhook, a second token."""
    status, body = await api.call("POST", "/api/v1/albums", json={"name": "Trip"})
    assert status == 201, body
    album = body["data"]["id"]
    ids = []
    files = (("a.jpg", samples.jpeg((640, 480))), ("b.png", samples.png_alpha((300, 200))),
             ("c.jpg", samples.jpeg((1800, 1200))), ("gone.png", samples.png_alpha((50, 50))))
    for name, data in files:
        status, body = await api.upload((name, data), album_id=album)
        assert status == 201, body
        ids.append(body["data"][0]["id"])
    status, _ = await api.call("DELETE", f"/api/v1/images/{ids.pop()}")
    assert status in (200, 204)
    status, body = await api.call("POST", "/api/v1/webhooks", json={
        "url": "http://127.0.0.1:9/pichub", "events": ["image.uploaded"]})
    assert status == 201, body
    second = await api.new_user("bob")
    status, body = await api.upload(("bob.png", samples.png_alpha((120, 90))), token=second)
    assert status == 201, body
    return {"ids": ids, "album": album, "bob": second, "bob_image": body["data"][0]["id"]}


async def originals(client: TestClient[Any, Any], token: str, ids: list[str]) -> dict[str, str]:
    """The sha256 of each image's original as the API serves it."""
    found = {}
    for image_id in ids:
        async with client.get(f"/api/v1/images/{image_id}/original",
                              headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, image_id
            found[image_id] = hashlib.sha256(await resp.read()).hexdigest()
    return found


async def listing(client: TestClient[Any, Any], token: str, path: str) -> list[Any]:
    async with client.get(path, headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200, path
        return sorted(item["id"] for item in (await resp.json())["data"])


@pytest.fixture
def weed() -> Seaweed:
    return Seaweed.shared()


async def test_migrate_moves_a_serving_instance_and_serves_the_same_bytes_and_tokens(
        make_api: ApiFactory, aiohttp_client: Any, tmp_path: Path, weed: Seaweed) -> None:
    data = tmp_path / "data"
    api = await make_api(local_settings(data))
    made = await populate(api)
    before = await originals(api.client, api.token, made["ids"])
    albums = await listing(api.client, api.token, "/api/v1/albums")
    hooks = await listing(api.client, api.token, "/api/v1/webhooks")
    url = postgres.empty_url()
    s3 = weed.settings(weed.fresh_bucket(), prefix="moved")

    # The bucket cannot be reached: the rows are copied, the files fail in one line.
    down = {**s3, "endpoint_url": "http://127.0.0.1:9"}
    failed = await asyncio.to_thread(cli, "migrate", "--data-dir", str(data), "--to-database",
                                     url, "--to-storage", "s3", env=s3_env(down))
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("error: Object storage")
    assert "Traceback" not in failed.stderr

    # Run again (the instance still serving): it continues and verifies.
    done = await asyncio.to_thread(cli, "migrate", "--data-dir", str(data), "--to-database",
                                   url, "--to-storage", "s3", env=s3_env(s3))
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout and 'backend = "s3"' in done.stdout
    assert "auth.secret_key" in done.stdout  # the key is a file here: say where it goes
    steps = done.stderr.splitlines()
    assert any(line.startswith("migrate: rows: ") and " rows/s" in line for line in steps)
    files_line = [line for line in steps if line.startswith("migrate: files: ")][-1]
    assert " MB" in files_line and " files/s" in files_line

    key = (data / "secret.key").read_text().strip()
    moved = await aiohttp_client(create_app(engine_settings(tmp_path / "elsewhere", url, s3, key)))
    assert await originals(moved, api.token, made["ids"]) == before
    assert await listing(moved, api.token, "/api/v1/albums") == albums
    assert await listing(moved, api.token, "/api/v1/webhooks") == hooks
    assert await listing(moved, made["bob"], "/api/v1/images") == [made["bob_image"]]
    async with moved.get(f"/img/{made['ids'][2]}.webp?w=200") as resp:  # a transform works
        assert resp.status == 200
        assert (await resp.read())[8:12] == b"WEBP"
    # Uploads go on numbering after the copied rows.
    status, body = await Api(moved, api.token).upload(("new.png", samples.png_alpha((64, 64))))
    assert status == 201, body

    # A change at the source (a delete), then a last run: the copy follows it exactly.
    status, _ = await api.call("DELETE", f"/api/v1/images/{made['ids'][0]}")
    assert status in (200, 204)
    again = await asyncio.to_thread(cli, "migrate", "--data-dir", str(data), "--to-database",
                                    url, "--to-storage", "s3", env=s3_env(s3))
    assert again.returncode == 0, again.stderr
    left = await listing(moved, api.token, "/api/v1/images")
    assert made["ids"][0] not in left and made["ids"][1] in left


def test_migrate_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    no_db = cli("migrate", "--data-dir", str(data), "--to-database", "postgresql://x@127.0.0.1:1/x")
    assert no_db.returncode == 1 and "no PicHub database" in no_db.stderr
    not_pg = cli("migrate", "--data-dir", str(data), "--to-database", "sqlite:///x.db")
    assert not_pg.returncode == 2 and "postgresql://" in not_pg.stderr
    data.mkdir()
    (data / "pichub.db").touch()
    no_bucket = cli("migrate", "--data-dir", str(data), "--to-database",
                    "postgresql://x@127.0.0.1:1/x", "--to-storage", "s3")
    assert no_bucket.returncode == 2 and "[storage.s3]" in no_bucket.stderr


async def test_backup_and_restore_of_an_instance_on_postgresql_and_s3(
        make_api: ApiFactory, aiohttp_client: Any, tmp_path: Path, weed: Seaweed) -> None:
    key = "k" * 64
    url, s3 = postgres.fresh_url(), weed.settings(weed.fresh_bucket(), prefix="live")
    settings = engine_settings(tmp_path / "live", url, s3, key)
    api = await make_api(settings)
    made = await populate(api)
    before = await originals(api.client, api.token, made["ids"])
    env = {"PICHUB_DATABASE__URL": url, "PICHUB_STORAGE__BACKEND": "s3",
           "PICHUB_AUTH__SECRET_KEY": key, **s3_env(s3)}

    dest = tmp_path / "backup"
    backup = await asyncio.to_thread(cli, "backup", str(dest), "--data-dir",
                                     str(tmp_path / "live"), env=env)
    assert backup.returncode == 0, backup.stderr
    assert (dest / "manifest.json").is_file() and (dest / "pichub.db").is_file()
    assert not (dest / ".backup-in-progress").exists()

    # Back onto a single box, with the everyday restore.
    box = tmp_path / "box"
    restored = await asyncio.to_thread(cli, "restore", str(dest), "--data-dir", str(box),
                                       env={"PICHUB_AUTH__SECRET_KEY": key})
    assert restored.returncode == 0, restored.stderr
    single = await aiohttp_client(create_app(local_settings(box, auth={"secret_key": key})))
    assert await originals(single, api.token, made["ids"]) == before

    # And into another PostgreSQL database and bucket prefix.
    url2, s3_2 = postgres.fresh_url(), weed.settings(weed.fresh_bucket(), prefix="again")
    env2 = {"PICHUB_DATABASE__URL": url2, "PICHUB_STORAGE__BACKEND": "s3",
            "PICHUB_AUTH__SECRET_KEY": key, **s3_env(s3_2)}
    into = await asyncio.to_thread(cli, "restore", str(dest), "--data-dir",
                                   str(tmp_path / "other"), env=env2)
    assert into.returncode == 0, into.stderr
    other = await aiohttp_client(create_app(engine_settings(tmp_path / "other", url2, s3_2,
                                                            key)))
    assert await originals(other, api.token, made["ids"]) == before
    assert await listing(other, made["bob"], "/api/v1/images") == [made["bob_image"]]
    # A second restore into the same, now populated, database is refused.
    twice = await asyncio.to_thread(cli, "restore", str(dest), "--data-dir",
                                    str(tmp_path / "other2"), env=env2)
    assert twice.returncode == 1 and "not empty" in twice.stderr


def test_the_copy_knows_every_table_and_copies_parents_first(tmp_path: Path) -> None:
    """A table added by a migration must be added to TABLES too, after its parents."""
    import sqlite3

    from pichub.db.transfer import TABLES

    async def make() -> None:
        from pichub.db.database import Database

        await (await Database.open(tmp_path / "x.db")).close()

    asyncio.run(make())
    with sqlite3.connect(tmp_path / "x.db") as conn:
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        order = [name for name, _key in TABLES]
        assert set(order) == tables
        for position, table in enumerate(order):
            parents = {row[2] for row in conn.execute(f"PRAGMA foreign_key_list({table})")}
            assert parents <= set(order[:position]), table
            key = [row[1] for row in sorted(conn.execute(f"PRAGMA table_info({table})"),
                                            key=lambda r: r[5]) if row[5]]
            assert tuple(key) == dict(TABLES)[table], table


async def test_file_copy_verifies_skips_what_is_verified_and_reports_what_vanished(
        tmp_path: Path) -> None:
    """Directory to directory: every file of the images asked for is copied and read back;
    a second run sends nothing again; an image without files is reported, not failed."""
    from pichub.services.transfer import Directory, copy_files

    src, dst = tmp_path / "src", tmp_path / "dst"
    for name, data in (("ab/cd/abcd1.jpg", b"one"), ("ab/cd/abcd1.w512.jpg", b"copy"),
                       ("ef/gh/efgh2.png", b"two"), ("ij/kl/ijkl3.png", b"not asked")):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    seen: list[int] = []
    ids = {"abcd1", "efgh2", "gone4"}
    first = await copy_files(ids, Directory(src), Directory(dst), tmp_path / "work",
                             lambda p: seen.append(p.done), working=False)
    assert (first.total, first.vanished) == (2, {"gone4"})
    assert (dst / "ab/cd/abcd1.jpg").read_bytes() == b"one"
    assert not (dst / "ab/cd/abcd1.w512.jpg").exists()  # working copies left out
    assert not (dst / "ij/kl/ijkl3.png").exists()
    # A second run trusts what it verified before (same size): the journal spares the
    # download, so a file changed behind its back since is not looked at again.
    (dst / "ef/gh/efgh2.png").write_bytes(b"TWO")
    again = await copy_files(ids, Directory(src), Directory(dst), tmp_path / "work",
                             lambda p: None, working=False)
    assert again.done == 2
    assert (dst / "ef/gh/efgh2.png").read_bytes() == b"TWO"
    fresh = await copy_files(ids, Directory(src), Directory(tmp_path / "dst2"), tmp_path / "work",
                             lambda p: None, working=True)
    assert fresh.total == 3 and (tmp_path / "dst2/ab/cd/abcd1.w512.jpg").read_bytes() == b"copy"
    # A file of the same size that was never verified is read back, found wrong, replaced.
    (tmp_path / "dst3/ab/cd").mkdir(parents=True)
    (tmp_path / "dst3/ab/cd/abcd1.jpg").write_bytes(b"ONE")
    await copy_files({"abcd1"}, Directory(src), Directory(tmp_path / "dst3"), tmp_path / "work",
                     lambda p: None, working=False)
    assert (tmp_path / "dst3/ab/cd/abcd1.jpg").read_bytes() == b"one"
