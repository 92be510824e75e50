"""The S3 backend against a real SeaweedFS: the bucket holds every file before the row
commits, deletes reach it, local copies are a cache that is refilled, originals can be
redirected to presigned URLs, a bucket that is down is a clean 503, and the bucket sweep
removes only old orphans."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pichub.config import Settings
from pichub.keys import BLOBS, DB, STORAGE
from pichub.pacing import Progress
from pichub.services.sweep import BucketSweep
from pichub.storage.s3 import S3Storage
from tests import samples
from tests.conftest import ApiFactory, make_settings
from tests.support.seaweed import Seaweed


@pytest.fixture
def weed() -> Seaweed:
    return Seaweed.shared()


def s3_settings(tmp_path: Path, server: Seaweed, bucket: str | None = None,
                **s3: Any) -> Settings:
    section = server.settings(bucket or server.fresh_bucket(), prefix="pics", **s3)
    return make_settings(tmp_path, storage={"backend": "s3", "s3": section})


@contextlib.asynccontextmanager
async def reader(server: Seaweed) -> AsyncIterator[Any]:
    """A client of its own, to look into the bucket behind PicHub's back."""
    from aiobotocore.session import get_session

    async with get_session().create_client("s3", **server.client_args()) as client:
        yield client


async def bucket_files(server: Seaweed, bucket: str) -> dict[str, bytes]:
    async with reader(server) as client:
        listed = await client.list_objects_v2(Bucket=bucket)
        found = {}
        for item in listed.get("Contents", []):
            answer = await client.get_object(Bucket=bucket, Key=item["Key"])
            async with answer["Body"] as body:
                found[item["Key"]] = await body.read()
        return found


def local_files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]


def key_of(image_id: str, name: str) -> str:
    return f"pics/{image_id[:2]}/{image_id[2:4]}/{name}"


async def upload(api: Any, data: bytes) -> dict[str, Any]:
    status, body = await api.upload(("photo.jpg", data))
    assert status == 201, body
    return dict(body["data"][0])


async def test_an_upload_puts_every_file_in_the_bucket(make_api: ApiFactory, tmp_path: Path,
                                                      weed: Seaweed) -> None:
    bucket = weed.fresh_bucket()
    api = await make_api(s3_settings(tmp_path, weed, bucket))
    image = await upload(api, samples.jpeg((2400, 1600)))
    files = await bucket_files(weed, bucket)
    stored = files[key_of(image["id"], f"{image['id']}.webp")]
    assert hashlib.sha256(stored).hexdigest() == image["sha256"]
    assert {key_of(image["id"], f"{image['id']}.w{level}.jpg") for level in (1600, 512)} \
        <= set(files)
    status, body = await api.call("DELETE", f"/api/v1/images/{image['id']}")
    assert status == 200, body
    assert await bucket_files(weed, bucket) == {}
    assert local_files(api.app[BLOBS].root) == []


async def test_a_bucket_refusing_writes_is_503_and_leaves_nothing(
        make_api: ApiFactory, tmp_path: Path, weed: Seaweed) -> None:
    bucket = weed.fresh_bucket()
    api = await make_api(s3_settings(tmp_path, weed, bucket, secret_access_key="wrong"))
    status, body = await api.upload(("photo.jpg", samples.jpeg((800, 600))))
    assert status == 503, body
    assert body["success"] is False
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    status, listed = await api.call("GET", "/api/v1/images")
    assert status == 200 and listed["data"] == []
    assert local_files(api.app[BLOBS].root) == []
    assert await bucket_files(weed, bucket) == {}


async def test_evicted_copies_come_back_from_the_bucket_once(
        make_api: ApiFactory, tmp_path: Path, weed: Seaweed) -> None:
    api = await make_api(s3_settings(tmp_path, weed, local_cache_mb=0))
    image = await upload(api, samples.jpeg((2400, 1600)))
    blobs = api.app[BLOBS]
    assert local_files(blobs.root) == []  # a cache of 0 MB keeps nothing it need not
    async with api.client.get(f"/img/{image['id']}.webp?w=300") as resp:
        assert resp.status == 200, await resp.text()
    async with api.client.get(f"/img/{image['id']}.webp") as resp:  # proxied original
        assert resp.status == 200
        assert hashlib.sha256(await resp.read()).hexdigest() == image["sha256"]
    storage: S3Storage = api.app[STORAGE]
    path = blobs.path(image["id"], "webp")
    storage.cache.discard(path)
    path.unlink(missing_ok=True)
    fetched = 0
    get_file = storage.objects.get_file

    async def counting(key: str, target: Path) -> bool:
        nonlocal fetched
        fetched += 1
        return await get_file(key, target)

    storage.objects.get_file = counting  # type: ignore[method-assign]
    assert set(await asyncio.gather(*(storage.local(path) for _ in range(10)))) == {path}
    assert fetched == 1


async def test_redirect_mode_answers_presigned_urls(make_api: ApiFactory, tmp_path: Path,
                                                   weed: Seaweed) -> None:
    api = await make_api(s3_settings(tmp_path, weed, serve="redirect", presign_ttl_s=60))
    image = await upload(api, samples.jpeg((800, 600)))
    async with api.client.get(f"/img/{image['id']}.webp", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Cache-Control"] == "private, no-store"
        location = resp.headers["Location"]
    async with aiohttp.ClientSession() as session, session.get(location) as resp:
        assert resp.status == 200
        assert hashlib.sha256(await resp.read()).hexdigest() == image["sha256"]
    async with api.client.get(f"/api/v1/images/{image['id']}/original",
                              headers=api.headers(), allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    async with aiohttp.ClientSession() as session, session.get(location) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Disposition"].startswith("attachment")


async def test_a_stopped_bucket_is_503_then_uploads_work_again(
        make_api: ApiFactory, tmp_path: Path) -> None:
    own = Seaweed()  # stopped and started here: not the shared one
    try:
        bucket = own.fresh_bucket()
        api = await make_api(s3_settings(tmp_path, own, bucket))
        first = await upload(api, samples.jpeg((640, 480)))
        before = sorted(local_files(api.app[BLOBS].root))
        await asyncio.to_thread(own.stop)
        assert (await api.app[STORAGE].check())["ok"] is False
        status, body = await api.upload(("photo.jpg", samples.jpeg((640, 480), quality=80)))
        assert status == 503, body
        assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
        status, listed = await api.call("GET", "/api/v1/images")
        assert len(listed["data"]) == 1
        assert listed["data"][0]["id"] == first["id"]
        assert sorted(local_files(api.app[BLOBS].root)) == before  # nothing of the second
        await asyncio.to_thread(own.start)
        assert (await api.app[STORAGE].check())["ok"] is True
        third = await upload(api, samples.jpeg((640, 480), quality=70))
        assert {key.rsplit("/", 1)[1].split(".")[0] for key in await bucket_files(own, bucket)} \
            == {first["id"], third["id"]}
    finally:
        await asyncio.to_thread(own.close)


async def test_the_bucket_sweep_removes_old_orphans_only(make_api: ApiFactory, tmp_path: Path,
                                                        weed: Seaweed) -> None:
    bucket = weed.fresh_bucket()
    api = await make_api(s3_settings(tmp_path, weed, bucket))
    image = await upload(api, samples.jpeg((640, 480)))
    old, fresh = "orphanOld0", "orphanNew0"
    async with reader(weed) as client:
        await client.put_object(Bucket=bucket, Key=key_of(old, f"{old}.webp"), Body=b"x")
        await asyncio.sleep(3)
        await client.put_object(Bucket=bucket, Key=key_of(fresh, f"{fresh}.webp"), Body=b"y")
    sweep = BucketSweep(api.app[DB], api.app[STORAGE], Progress("t", logging.getLogger()),
                        grace_s=1.5, clock=time.time)
    await sweep.run()
    keys = set(await bucket_files(weed, bucket))
    assert key_of(old, f"{old}.webp") not in keys
    assert key_of(fresh, f"{fresh}.webp") in keys
    assert key_of(image["id"], f"{image['id']}.webp") in keys
    assert sweep.orphans == 1


async def test_the_filesystem_backend_needs_no_aiobotocore(
        make_api: ApiFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("aiobotocore", "aiobotocore.session", "aiobotocore.config"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    api = await make_api(make_settings(tmp_path, storage={"backend": "filesystem"}))
    image = await upload(api, samples.jpeg((640, 480)))
    assert api.app[BLOBS].path(image["id"], "webp").is_file()
    assert (await api.app[STORAGE].check()) == {"ok": True, "backend": "filesystem"}


async def test_big_files_go_up_in_parts_and_come_back_whole(tmp_path: Path,
                                                           weed: Seaweed) -> None:
    from pichub.config import S3Settings
    from pichub.storage.objects import PART, ObjectStore

    store = ObjectStore(S3Settings(**weed.settings(weed.fresh_bucket(), prefix="big")))
    await store.open()
    try:
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(PART + 12345))
        await store.put_file(store.key("ab/cd/big.bin"), source)
        assert await store.head(store.key("ab/cd/big.bin")) == PART + 12345
        assert await store.head(store.key("ab/cd/none.bin")) is None
        back = tmp_path / "back" / "big.bin"
        assert await store.get_file(store.key("ab/cd/big.bin"), back)
        assert back.read_bytes() == source.read_bytes()
        assert not await store.get_file(store.key("ab/cd/none.bin"), tmp_path / "none.bin")
        assert sorted(os.listdir(tmp_path)) == ["back", "big.bin"]  # no temp file left
        assert await store.keys("big/") == ["big/ab/cd/big.bin"]
        await store.delete(["big/ab/cd/big.bin"])
        assert await store.keys("big/") == []
    finally:
        await store.close()


async def test_readers_fetch_from_the_bucket_what_is_not_here(
        make_api: ApiFactory, tmp_path: Path, weed: Seaweed) -> None:
    """With no room for local copies, the album zip and the original download still have
    every byte (fetched back), and a file gone from the bucket is left out of the zip."""
    api = await make_api(s3_settings(tmp_path, weed, local_cache_mb=0))
    status, answer = await api.call("POST", "/api/v1/albums", json={"name": "Trip"})
    assert status == 201, answer
    album_id = answer["data"]["id"]
    images = []
    for quality in (90, 80, 70):
        status, body = await api.upload(("a.jpg", samples.jpeg((320, 240), quality=quality)),
                                        convertToWebP="false", album_id=album_id)
        assert status == 201, body
        images.append(body["data"][0])
    assert local_files(api.app[BLOBS].root) == []
    storage: S3Storage = api.app[STORAGE]
    gone = images[2]
    await storage.objects.delete(await storage.objects.keys(storage._image_prefix(gone["id"])))
    async with api.client.get(f"/a/{album_id}/album.zip") as resp:
        assert resp.status == 200
        archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    digests = {hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}
    assert digests == {images[0]["sha256"], images[1]["sha256"]}
    async with api.client.get(f"/api/v1/images/{images[1]['id']}/original",
                              headers=api.headers()) as resp:
        assert resp.status == 200
        assert hashlib.sha256(await resp.read()).hexdigest() == images[1]["sha256"]
