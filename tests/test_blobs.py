"""BlobStore and the startup sweep: atomic writes, sharding, no orphans after a crash."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pichub.app import create_app
from pichub.blobs import TMP_PREFIX, BlobStore
from pichub.config import Settings
from tests import samples
from tests.conftest import ApiFactory


def test_put_is_sharded_and_checked(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    path = store.put("abcdefgh12", "webp", b"data")
    assert path == (tmp_path / "blobs" / "ab" / "cd" / "abcdefgh12.webp").resolve()
    assert path.read_bytes() == b"data"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(TMP_PREFIX)]
    for bad_id, ext in [("../../etc", "jpg"), ("abcd/../x", "jpg"), ("abcdefgh", "../x")]:
        with pytest.raises(ValueError):
            store.path(bad_id, ext)


def test_sweep_removes_temp_and_orphans_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    keep = store.put("keepkeep01", "png", b"k")
    orphan = store.put("orphan0001", "png", b"o")
    temp = keep.parent / f"{TMP_PREFIX}123-keepkeep01.png"
    temp.write_bytes(b"half")
    removed = store.sweep({"keepkeep01"})
    assert set(removed) == {orphan, temp}
    assert keep.exists() and not orphan.exists() and not temp.exists()


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
    client = await aiohttp_client(create_app(settings))
    assert not orphan.exists() and not upload_temp.exists()
    async with client.get(f"/img/{image['id']}.webp") as resp:
        assert resp.status == 200
    db = sqlite3.connect(data_dir / "pichub.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
    db.close()
