"""Expiring albums: `expires_in` / `expires_at` on create and PATCH, 410 at `/a/{id}` once
expired, and the sweep that deletes the album (not its images: they leave it) with
`album.deleted` (`reason: expired`) in the same transaction, by a clock the test moves.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pichub.keys import DB, EXPIRY
from pichub.services import sessions
from pichub.timeutil import iso
from tests.conftest import make_settings
from tests.support.sharing import FakeClock, Sharing, events, settle, start, upload
from tests.test_album_pages import bob_session

HTML = {"Accept": "text/html"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def site(aiohttp_client: Any, tmp_path: Path, clock: FakeClock) -> Sharing:
    return await start(aiohttp_client, make_settings(tmp_path), clock)


async def album(site: Sharing, **body: Any) -> dict[str, Any]:
    """A new album; with an expiry, once the sweep it woke has gone back to sleep (so a
    clock moved next is seen only by the requests, or by a sweep the test wakes)."""
    status, answer = await site.call("POST", "/api/v1/albums", json={"name": "trip", **body})
    assert status == 201, answer
    await settle()
    created: dict[str, Any] = answer["data"]
    return created


async def test_expires_in_then_410_then_swept_leaving_its_images(site: Sharing,
                                                                 clock: FakeClock) -> None:
    made = await album(site, expires_in=60)
    album_id = made["id"]
    assert made["expires_at"] == iso(clock() + timedelta(seconds=60))
    assert (await events(site, "album.created"))[0]["expires_at"] == made["expires_at"]
    image = await upload(site, album_id=str(album_id))
    assert (await site.fetch(f"/a/{album_id}", **HTML))[0] == 200
    clock.advance(60)
    for suffix in ("", "/album.json", "/album.zip"):
        status, _, body = await site.fetch(f"/a/{album_id}{suffix}", **HTML)
        assert status == 410, (suffix, status)
        assert b"PK\x03\x04" not in body and image["id"].encode() not in body
    assert (await site.fetch(f"/img/{image['id']}.jpg"))[0] == 200  # the image has no expiry
    assert await site.app[EXPIRY].sweep_due() == 1
    assert await site.app[DB].fetchval("SELECT COUNT(*) FROM albums") == 0
    status, answer = await site.call("GET", f"/api/v1/images/{image['id']}")
    assert status == 200 and answer["data"]["album_id"] is None  # it left the album
    assert (await site.fetch(f"/img/{image['id']}.jpg"))[0] == 200
    deleted = await events(site, "album.deleted")
    assert [(e["id"], e["reason"], e["expires_at"]) for e in deleted] == [
        (album_id, "expired", made["expires_at"])]
    assert (await site.fetch(f"/a/{album_id}", **HTML))[0] == 404
    assert (await site.call("GET", f"/api/v1/albums/{album_id}"))[0] == 404
    assert await site.app[EXPIRY].sweep_due() == 0


async def test_the_event_is_in_the_transaction_of_the_removal(site: Sharing,
                                                              clock: FakeClock) -> None:
    """A sweep that finds the album's expiry moved meanwhile deletes nothing, records
    nothing; an owner's DELETE records `reason: deleted`."""
    made = await album(site, expires_in=10)
    clock.advance(10)
    status, _ = await site.call("PATCH", f"/api/v1/albums/{made['id']}",
                                json={"expires_at": None})
    assert status == 200
    albums = site.app[EXPIRY].albums
    assert albums is not None and not await albums.expire(made["id"], "http://x")
    assert await site.app[EXPIRY].sweep_due() == 0
    assert await events(site, "album.deleted") == []
    status, _ = await site.call("DELETE", f"/api/v1/albums/{made['id']}")
    assert status == 200
    assert [e["reason"] for e in await events(site, "album.deleted")] == ["deleted"]


async def test_expires_at_and_patch(site: Sharing, clock: FakeClock) -> None:
    later = clock() + timedelta(hours=2)
    offset = (later + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    made = await album(site, expires_at=offset)
    assert made["expires_at"] == iso(later)
    path = f"/api/v1/albums/{made['id']}"
    past = iso(clock() - timedelta(seconds=1))
    for body in ({"expires_at": past}, {"expires_at": "tomorrow"},
                 {"expires_at": "2030-01-01T00:00:00"}, {"expires_in": 0},
                 {"expires_in": 60, "expires_at": iso(later)}):
        status, answer = await site.call("PATCH", path, json=body)
        assert status == 422, (body, answer)
        status, answer = await site.call("POST", "/api/v1/albums", json={"name": "x", **body})
        assert status == 422, (body, answer)
    status, answer = await site.call("PATCH", path, json={"expires_in": None})
    assert status == 200 and answer["data"]["expires_at"] is None
    updated = await events(site, "album.updated")
    assert updated[-1]["expires_at"] is None
    clock.advance(3 * 3600)
    assert await site.app[EXPIRY].sweep_due() == 0
    status, answer = await site.call("PATCH", path, json={"expires_in": 30})
    assert answer["data"]["expires_at"] == iso(clock() + timedelta(seconds=30))
    status, answer = await site.call("GET", path)
    assert answer["data"]["expires_at"] == iso(clock() + timedelta(seconds=30))
    clock.advance(30)
    assert (await site.fetch(f"/a/{made['id']}", **HTML))[0] == 410
    status, answer = await site.call("PATCH", path, json={"expires_in": None})
    assert status == 200 and (await site.fetch(f"/a/{made['id']}", **HTML))[0] == 200


async def test_a_private_expired_album_is_404_to_strangers(site: Sharing,
                                                           clock: FakeClock) -> None:
    made = await album(site, visibility="private", expires_in=10)
    clock.advance(10)
    path = f"/a/{made['id']}"
    other = {"Cookie": f"{sessions.COOKIE}={await bob_session(site)}", **HTML}
    owner = {"Cookie": f"{sessions.COOKIE}={site.cookie}", **HTML}
    assert (await site.fetch(path, **owner))[0] == 410
    assert (await site.fetch(path, **HTML))[0] == 404
    assert (await site.fetch(path, **other))[0] == 404


async def test_the_background_sweep_is_woken_by_an_album_expiry(site: Sharing,
                                                                clock: FakeClock) -> None:
    made = await album(site, expires_in=1)  # wakes the sweep; it sleeps until then
    await album(site, name="kept")
    clock.advance(2)
    site.app[EXPIRY].wake()
    for _ in range(200):
        if await site.app[DB].fetchval("SELECT COUNT(*) FROM albums") == 1:
            break
        await asyncio.sleep(0.02)
    assert [row[0] for row in await site.app[DB].fetchall("SELECT name FROM albums")] == [
        "kept"]
    assert [e["id"] for e in await events(site, "album.deleted")] == [made["id"]]
