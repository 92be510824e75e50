"""BlobStore and the start-up sweep: atomic writes, sharding, no orphans after a crash.

The sweep itself (in the background, in steps) is tested in test_startup_background.py."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from pichub.app import create_app
from pichub.blobs import TMP_PREFIX, BlobStore, owner, unchanged_since
from pichub.config import Settings
from pichub.services.sweep import SETTLE_S
from tests import samples
from tests.conftest import ApiFactory
from tests.support import backends


def test_put_is_sharded_and_checked(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    path = store.put("abcdefgh12", "webp", b"data")
    assert path == (tmp_path / "blobs" / "ab" / "cd" / "abcdefgh12.webp").resolve()
    assert path.read_bytes() == b"data"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(TMP_PREFIX)]
    for bad_id, ext in [("../../etc", "jpg"), ("abcd/../x", "jpg"), ("abcdefgh", "../x")]:
        with pytest.raises(ValueError):
            store.path(bad_id, ext)


def test_batches_list_every_file_a_few_at_a_time(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    stored = {store.put(f"img{i:05d}", "png", b"x") for i in range(12)}
    temp = next(iter(stored)).parent / f"{TMP_PREFIX}123-img00000.png"
    temp.write_bytes(b"half")
    batches = list(store.batches(5))
    assert [len(batch) for batch in batches] == [5, 5, 3]
    assert {path for batch in batches for path in batch} == stored | {temp}
    assert list(BlobStore(tmp_path / "empty").batches(5)) == []


def test_a_file_belongs_to_the_id_before_its_first_dot(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    original = store.put("keepkeep01", "png", b"k")
    copy = store.put_working("keepkeep01", 1, "jpg", b"w")
    assert owner(original) == owner(copy) == "keepkeep01"


def test_unchanged_since_looks_at_writes_and_moves(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    written = store.put("written001", "png", b"w")
    received = tmp_path / "upload-1"
    received.write_bytes(b"m")
    os.utime(received, (1_000_000, 1_000_000))  # its body arrived long ago...
    moved = store.put_file("moved00001", "png", received)  # ...but it is moved in now
    assert moved.stat().st_mtime == 1_000_000
    later = time.time() + 60
    assert unchanged_since([written, moved, tmp_path / "gone"], later) == [written, moved]
    assert unchanged_since([written, moved], time.time() - 60) == []


@pytest.mark.skipif(backends.SCALE, reason="inspects the SQLite file (WAL mode)")
async def test_startup_sweeps_orphans_and_upload_temps(make_api: ApiFactory,
                                                       aiohttp_client: Any,
                                                       settings: Settings) -> None:
    api = await make_api(settings)
    status, body = await api.upload(("a.jpg", samples.jpeg()))
    image = body["data"][0]
    data_dir = Path(settings.storage.data_dir)
    # What a crash between blob rename and DB commit, or mid-upload, leaves behind:
    orphan = BlobStore(data_dir / "blobs").put("crashedxyz1", "webp", b"orphan")
    upload_temp = data_dir / "tmp" / "upload-deadbeef"
    upload_temp.write_bytes(b"partial")
    await api.client.close()
    await asyncio.sleep(SETTLE_S + 0.1)  # the crash happened before the next start
    client = await aiohttp_client(create_app(settings))
    assert not upload_temp.exists()  # tmp/ is emptied before the port opens
    for _ in range(200):  # the sweep runs in the background
        if not orphan.exists():
            break
        await asyncio.sleep(0.05)
    assert not orphan.exists()
    async with client.get(f"/img/{image['id']}.webp") as resp:
        assert resp.status == 200
    db = sqlite3.connect(data_dir / "pichub.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
    db.close()
