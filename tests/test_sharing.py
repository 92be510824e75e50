"""Visibility and signed links: who gets an image's bytes at `/img` and its JSON at the API.

Each visibility (public, unlisted, private) is asked for by each way in: nobody, the
owner's token, the owner's signed-in browser, another user's token, a signed link, an
expired link, a tampered link. Refusals are 404 with the JSON envelope and not one byte
of the image; the square lists public images only and its stored counter stays exact.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from pichub.keys import DB
from pichub.services import sessions
from tests import samples
from tests.conftest import make_settings
from tests.support.sharing import FakeClock, Sharing, start, upload

VISIBILITIES = ("public", "unlisted", "private")


@pytest.fixture
async def site(aiohttp_client: Any, tmp_path: Path) -> Sharing:
    return await start(aiohttp_client, make_settings(tmp_path), FakeClock())


def tampered(link: str) -> str:
    """The link with its variant changed (w=80 → w=81) or, without one, its expiry moved."""
    path, _, query = link.partition("?")
    params = dict(parse_qsl(query))
    if "w" in params:
        params["w"] = str(int(params["w"]) + 1)
    else:
        params["exp"] = str(int(params["exp"]) + 86400)
    return f"{path}?{urlencode(params)}"


def refused(answer: tuple[int, dict[str, str], bytes], stored: bytes) -> None:
    """A 404 with the JSON envelope and none of the image's bytes."""
    status, headers, body = answer
    assert status == 404, (status, headers)
    assert headers["Content-Type"].startswith("application/json")
    assert stored[:64] not in body and b"NOT_FOUND" in body


@pytest.mark.parametrize("visibility", VISIBILITIES)
async def test_img_each_visibility_by_each_way_in(site: Sharing, visibility: str) -> None:
    data = samples.jpeg((320, 240))
    image = await upload(site, data, visibility=visibility)
    assert image["visibility"] == visibility
    assert image["is_public"] is (visibility == "public")
    path = f"/img/{image['id']}.jpg"
    link, variant_link = await site.link(image["id"]), await site.link(image["id"], w=80)
    site.clock.advance(1)
    short = await site.link(image["id"], expires_in=5)
    site.clock.advance(10)  # `short` has expired, the others have not
    bearer = {"Authorization": f"Bearer {site.token}"}
    other = {"Authorization": f"Bearer {site.other}"}
    session = {"Cookie": f"{sessions.COOKIE}={site.cookie}"}
    allowed = {
        "owner token": await site.fetch(path, **bearer),
        "owner session": await site.fetch(path, **session),
        "signed link": await site.fetch(link),
    }
    for way, (status, _, body) in allowed.items():
        assert (status, body) == (200, data), way
    status, headers, body = await site.fetch(variant_link)
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert body[:2] == b"\xff\xd8" and body != data
    others = {
        "anonymous": await site.fetch(path),
        "other user's token": await site.fetch(path, **other),
        "expired link": await site.fetch(short),
        "tampered link": await site.fetch(tampered(link)),
        "tampered variant link": await site.fetch(tampered(variant_link)),
    }
    for way, answer in others.items():
        if visibility == "private":
            refused(answer, data)
        else:  # anyone with the URL may see it: link parameters change nothing
            assert answer[0] == 200, way
    _, owner_headers, _ = allowed["owner token"]
    if visibility == "private":
        assert owner_headers["Cache-Control"] == "private, no-cache"
        assert owner_headers["X-Accel-Expires"] == "0"
    else:
        assert owner_headers["Cache-Control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("visibility", VISIBILITIES)
async def test_api_image_only_to_its_owner(site: Sharing, visibility: str) -> None:
    image = await upload(site, visibility=visibility)
    path = f"/api/v1/images/{image['id']}"
    status, body = await site.call("GET", path)
    assert status == 200 and body["data"]["visibility"] == visibility
    status, body = await site.call("GET", path, token=site.other)
    assert status == 404 and image["sha256"] not in str(body)
    async with site.client.get(path) as resp:
        assert resp.status == 401 and image["sha256"] not in await resp.text()
    link = await site.link(image["id"])
    async with site.client.get(f"{path}?{link.partition('?')[2]}") as resp:
        assert resp.status == 401  # a link opens the image's bytes, not the API
    status, _ = await site.call("POST", f"{path}/links", json={"expires_in": 60},
                                token=site.other)
    assert status == 404


async def test_links_are_checked_and_bounded(site: Sharing) -> None:
    image = await upload(site, visibility="private")
    links = f"/api/v1/images/{image['id']}/links"
    for body in ({}, {"expires_in": 0}, {"expires_in": "soon"}, {"expires_in": 10**9}):
        status, answer = await site.call("POST", links, json=body)
        assert status == 422, (body, answer)
    status, answer = await site.call("POST", links, json={"expires_in": 60, "fit": "bogus"})
    assert status == 400
    status, answer = await site.call("POST", links, json={"expires_in": 60, "fm": "webp",
                                                          "w": 40})
    assert status == 201
    url = answer["data"]["url"]
    assert f"/img/{image['id']}.webp?" in url and "fm=" not in url
    expected = site.clock() + timedelta(seconds=60)
    assert answer["data"]["expires_at"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    link = "/" + url.split("/", 3)[3]
    status, headers, body = await site.fetch(link)
    assert status == 200 and headers["Content-Type"] == "image/webp"
    assert headers["Cache-Control"] == "private, no-cache"
    other_path = link.replace(f"/img/{image['id']}.webp", f"/{image['id']}.webp")
    refused(await site.fetch(other_path), body)  # the link names one path
    signature = dict(parse_qsl(link.partition("?")[2]))["sig"]
    forged = link.replace(signature, signature[:-1] + ("A" if signature[-1] != "A" else "B"))
    refused(await site.fetch(forged), body)


async def test_square_and_counter_follow_visibility(site: Sharing) -> None:
    images = {v: await upload(site, visibility=v) for v in VISIBILITIES}
    legacy = await upload(site, is_public="0")
    assert legacy["visibility"] == "unlisted" and legacy["is_public"] is False

    async def square() -> tuple[list[str], int, int]:
        async with site.client.get("/api/v1/square") as resp:
            body = await resp.json()
        counter = await site.app[DB].fetchval(
            "SELECT value FROM counters WHERE name = 'public_images'")
        actual = await site.app[DB].fetchval("SELECT COUNT(*) FROM images WHERE is_public = 1")
        assert counter == actual
        return [item["id"] for item in body["data"]], body["meta"]["total"], counter

    assert await square() == ([images["public"]["id"]], 1, 1)
    patch = f"/api/v1/images/{images['private']['id']}"
    status, body = await site.call("PATCH", patch, json={"is_public": True})
    assert status == 200 and body["data"]["visibility"] == "public"
    assert body["data"]["is_public"] is True
    ids, total, _ = await square()
    assert total == 2 and ids == [images["private"]["id"], images["public"]["id"]]
    status, body = await site.call("PATCH", patch, json={"visibility": "private",
                                                         "is_public": True})
    assert status == 200 and body["data"]["visibility"] == "private"  # visibility wins
    assert body["data"]["is_public"] is False
    assert (await square())[1:] == (1, 1)
    status, body = await site.call("PATCH", patch, json={"visibility": "secret"})
    assert status == 422 and body["error"]["details"][0]["field"] == "visibility"
    status, _ = await site.call("DELETE", f"/api/v1/images/{images['public']['id']}")
    assert status == 200 and (await square())[1:] == (0, 0)


async def test_a_private_image_is_refused_at_once_after_the_change(site: Sharing) -> None:
    data = samples.jpeg((320, 240))
    image = await upload(site, data)
    path = f"/img/{image['id']}.jpg?w=60"
    assert (await site.fetch(path))[0] == 200  # its facts are now remembered by /img
    status, _ = await site.call("PATCH", f"/api/v1/images/{image['id']}",
                                json={"visibility": "private"})
    assert status == 200
    refused(await site.fetch(path), data)
    status, _ = await site.call("PATCH", f"/api/v1/images/{image['id']}",
                                json={"visibility": "unlisted"})
    assert (await site.fetch(path))[0] == 200


async def test_image_page_of_a_private_image(site: Sharing) -> None:
    image = await upload(site, visibility="private")
    async with site.client.get(f"/i/{image['id']}") as resp:
        assert resp.status == 404 and image["id"] not in await resp.text()
    async with site.client.get(f"/i/{image['id']}",
                               headers={"Cookie": f"{sessions.COOKIE}={site.cookie}"}) as resp:
        assert resp.status == 200 and image["id"] in await resp.text()


async def test_album_visibility_and_its_alias(site: Sharing) -> None:
    status, body = await site.call("POST", "/api/v1/albums", json={"name": "A",
                                                                   "is_public": False})
    assert status == 201 and body["data"]["visibility"] == "unlisted"
    album = body["data"]["id"]
    status, body = await site.call("PATCH", f"/api/v1/albums/{album}",
                                   json={"visibility": "private"})
    assert status == 200 and body["data"]["visibility"] == "private"
    assert body["data"]["is_public"] is False
    status, body = await site.call("POST", "/api/v1/albums", json={"name": "B"})
    assert body["data"]["visibility"] == "public" and body["data"]["is_public"] is True
