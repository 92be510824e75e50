"""Expiring images: `expires_in` / `expires_at` / `max_views`, 410 once expired, and the
sweep that deletes them (rows, blobs with their working copies and kept originals,
variants) with `image.deleted` (`reason: expired`), by a clock the test moves.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pichub.app import create_app
from pichub.config import Settings
from pichub.keys import BLOBS, CLOCK, DB, EXPIRY, PIPELINE
from pichub.timeutil import iso
from tests import samples
from tests.conftest import make_settings
from tests.support import heic
from tests.support.sharing import FakeClock, Sharing, events, settle, start, upload


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def site(aiohttp_client: Any, tmp_path: Path, clock: FakeClock) -> Sharing:
    return await start(aiohttp_client, make_settings(tmp_path), clock)


def files_of(site: Sharing, image_id: str) -> list[Path]:
    root = site.app[BLOBS].root
    return [path for path in root.rglob(f"{image_id}*") if path.is_file()]


async def gone(site: Sharing, left: int = 0) -> None:
    """Wait (up to 4 s) until the background sweep has left `left` images."""
    for _ in range(200):
        if await site.app[DB].fetchval("SELECT COUNT(*) FROM images") == left:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the expiry sweep did not run")


async def test_expires_in_then_410_then_swept_with_its_files(site: Sharing,
                                                             clock: FakeClock) -> None:
    image = await upload(site, samples.jpeg((2400, 1800)), expires_in="60")
    image_id = image["id"]
    assert image["expires_at"] == iso(clock() + timedelta(seconds=60))
    uploaded = (await events(site, "image.uploaded"))[0]
    assert uploaded["visibility"] == "public" and uploaded["expires_at"] == image["expires_at"]
    status, headers, _ = await site.fetch(f"/img/{image_id}.jpg?w=100")
    assert status == 200 and headers["Cache-Control"] == "public, max-age=60"
    assert headers["X-Accel-Expires"] == "0"
    names = {path.name for path in files_of(site, image_id)}
    assert f"{image_id}.jpg" in names and any(".w" in name for name in names), names
    assert len(site.app[PIPELINE].cache) == 1
    clock.advance(61)
    for path in (f"/img/{image_id}.jpg", f"/img/{image_id}.jpg?w=100"):
        status, headers, body = await site.fetch(path)
        assert status == 410 and b"GONE" in body and body[:2] != b"\xff\xd8"
    assert await site.app[EXPIRY].sweep_due() == 1
    assert await site.app[DB].fetchval("SELECT COUNT(*) FROM images") == 0
    assert files_of(site, image_id) == [] and len(site.app[PIPELINE].cache) == 0
    deleted = await events(site, "image.deleted")
    assert [(e["id"], e["reason"], e["expires_at"]) for e in deleted] == [
        (image_id, "expired", image["expires_at"])]
    assert (await site.fetch(f"/img/{image_id}.jpg"))[0] == 404
    assert await site.app[EXPIRY].sweep_due() == 0


async def test_a_kept_heic_original_goes_with_its_image(site: Sharing, clock: FakeClock) -> None:
    status, body = await site.upload(("phone.heic", heic.small()), expires_in="5")
    assert status == 201, body
    await settle()
    image_id = body["data"][0]["id"]
    assert any(path.name.endswith(".orig.heic") for path in files_of(site, image_id))
    clock.advance(5)
    assert await site.app[EXPIRY].sweep_due() == 1
    assert files_of(site, image_id) == []


async def test_a_duplicate_expiring_leaves_the_other_image_whole(site: Sharing,
                                                                 clock: FakeClock) -> None:
    data = samples.jpeg((320, 240))
    keeper = await upload(site, data)
    short = await upload(site, data, expires_in="5")
    assert short["duplicate_of"] == keeper["id"]
    clock.advance(6)
    assert await site.app[EXPIRY].sweep_due() == 1
    assert (await site.fetch(f"/img/{keeper['id']}.jpg"))[2] == data
    assert files_of(site, short["id"]) == []


async def test_expires_at_and_patch(site: Sharing, clock: FakeClock) -> None:
    later = clock() + timedelta(hours=2)
    offset = (later + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    image = await upload(site, expires_at=offset)
    assert image["expires_at"] == iso(later)
    path = f"/api/v1/images/{image['id']}"
    past = iso(clock() - timedelta(seconds=1))
    for body in ({"expires_at": past}, {"expires_at": "tomorrow"},
                 {"expires_at": "2030-01-01T00:00:00"}, {"expires_in": 0},
                 {"expires_in": 60, "expires_at": iso(later)}, {"max_views": 0}):
        status, answer = await site.call("PATCH", path, json=body)
        assert status == 422, (body, answer)
    status, _ = await site.upload(("a.jpg", samples.jpeg()), expires_at=past)
    assert status == 422
    status, answer = await site.call("PATCH", path, json={"expires_at": None})
    assert status == 200 and answer["data"]["expires_at"] is None
    clock.advance(3 * 3600)
    assert await site.app[EXPIRY].sweep_due() == 0
    status, answer = await site.call("PATCH", path, json={"expires_in": 30})
    assert answer["data"]["expires_at"] == iso(clock() + timedelta(seconds=30))
    await settle()
    clock.advance(30)
    assert (await site.fetch(f"/img/{image['id']}.jpg"))[0] == 410
    status, answer = await site.call("PATCH", path, json={"expires_in": None})
    assert status == 200 and (await site.fetch(f"/img/{image['id']}.jpg"))[0] == 200


async def test_a_private_expired_image_leaks_nothing_to_strangers(site: Sharing,
                                                                  clock: FakeClock) -> None:
    image = await upload(site, visibility="private", expires_in="10")
    link = await site.link(image["id"])
    clock.advance(11)
    path = f"/img/{image['id']}.jpg"
    assert (await site.fetch(path))[0] == 404  # nobody: as if it never was
    assert (await site.fetch(link))[0] == 410  # the link's holder may know it expired
    assert (await site.fetch(path, Authorization=f"Bearer {site.token}"))[0] == 410


async def test_max_views(site: Sharing) -> None:
    data = samples.jpeg((320, 240))
    image = await upload(site, data, max_views="2")
    path = f"/img/{image['id']}.jpg"
    owner = {"Authorization": f"Bearer {site.token}"}
    for _ in range(3):  # the owner's own views are not counted
        assert (await site.fetch(path, **owner))[0] == 200
    async with site.client.head(path) as resp:  # nor a HEAD
        assert resp.status == 200
    status, headers, body = await site.fetch(path)
    assert (status, body) == (200, data) and headers["Cache-Control"] == "no-store"
    status, _, body = await site.fetch(f"{path}?w=50")  # a variant is a view too
    assert status == 200 and body[:2] == b"\xff\xd8"
    status, _, body = await site.fetch(path)
    assert status == 410 and data[:64] not in body
    await gone(site)  # the last view woke the background sweep (it may have run already)
    deleted = await events(site, "image.deleted")
    assert deleted[0]["reason"] == "expired" and deleted[0]["max_views"] == 2
    assert deleted[0]["views"] == 2 and deleted[0]["expires_at"] is not None  # stamped


async def test_the_background_sweep_is_woken_and_survives_a_restart(
        aiohttp_client: Any, tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path)
    site = await start(aiohttp_client, settings, clock)
    soon = await upload(site, expires_in="1")
    later = await upload(site, expires_in="3600")
    clock.advance(2)
    site.app[EXPIRY].wake()  # as an upload or a PATCH with an expiry does
    await gone(site, left=1)
    assert [row[0] for row in await site.app[DB].fetchall("SELECT id FROM images")] == [
        later["id"]]
    await site.client.close()  # the server stops; the expiry is only in the database
    clock.advance(3600)
    again = await start_again(aiohttp_client, settings, clock)
    await gone(again)  # the sweep runs at start-up, no wake needed
    reasons = [(e["id"], e["reason"]) for e in await events(again, "image.deleted")]
    assert reasons == [(soon["id"], "expired"), (later["id"], "expired")]


async def start_again(aiohttp_client: Any, settings: Settings, clock: FakeClock) -> Sharing:
    """The same data directory served anew (its users exist already)."""
    app = create_app(settings)
    app[CLOCK] = clock
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return Sharing(client, "", "", "", clock)
