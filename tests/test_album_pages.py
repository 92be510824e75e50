"""Album pages `/a/{id}`: who sees them, what they show (never a private image, not even in
OpenGraph tags), the JSON twin, the streamed zip, and the album password (cookie scoped to
one album, images then only through signed links, wrong passwords rate limited)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pichub.keys import DB
from pichub.services import accounts, sessions
from tests import samples
from tests.conftest import make_settings
from tests.support.sharing import FakeClock, Sharing, start

VISIBILITIES = ("public", "unlisted", "private")
HTML = {"Accept": "text/html"}


@pytest.fixture
async def site(aiohttp_client: Any, tmp_path: Path) -> Sharing:
    return await start(aiohttp_client, make_settings(tmp_path), FakeClock())


async def album(site: Sharing, **body: Any) -> int:
    status, answer = await site.call("POST", "/api/v1/albums", json={"name": "Trip", **body})
    assert status == 201, answer
    assert "password" not in answer["data"]
    return int(answer["data"]["id"])


async def filled(site: Sharing, **body: Any) -> tuple[int, dict[str, dict[str, Any]]]:
    """An album with one image of each visibility (different bytes and names)."""
    album_id = await album(site, description="Summer by the sea", **body)
    images = {}
    for n, visibility in enumerate(VISIBILITIES):
        status, answer = await site.upload((f"{visibility}-shot.jpg",
                                            samples.jpeg((64 + n, 48))),
                                           convertToWebP="false", album_id=album_id,
                                           visibility=visibility)
        assert status == 201, answer
        images[visibility] = answer["data"][0]
    return album_id, images


def bob_cookie_headers(cookie: str) -> dict[str, str]:
    return {"Cookie": f"{sessions.COOKIE}={cookie}", **HTML}


async def bob_session(site: Sharing) -> str:
    db = site.app[DB]
    user = await accounts.actor_from_token(db, site.other)
    cookie, _ = await sessions.start(db, user.user_id, timedelta(hours=1))
    return cookie


@pytest.mark.parametrize("visibility", VISIBILITIES)
async def test_album_page_by_visibility_and_caller(site: Sharing, visibility: str) -> None:
    album_id, images = await filled(site, visibility=visibility)
    owner = {"Cookie": f"{sessions.COOKIE}={site.cookie}", **HTML}
    other = bob_cookie_headers(await bob_session(site))
    for headers, who in ((HTML, "anonymous"), (other, "other"), (owner, "owner")):
        status, _, body = await site.fetch(f"/a/{album_id}", **headers)
        page = body.decode()
        if visibility == "private" and who != "owner":
            assert status == 404, who
            assert "Trip" not in page and "Summer" not in page
            for image in images.values():
                assert image["id"] not in page
            for suffix in ("/album.json", "/album.zip"):
                status, _, body = await site.fetch(f"/a/{album_id}{suffix}")
                assert status == 404 and b"NOT_FOUND" in body
            continue
        assert status == 200, (who, page[:300])
        assert "Trip" in page
        assert images["public"]["id"] in page and images["unlisted"]["id"] in page
        assert images["private"]["id"] not in page and "private-shot" not in page
    # another user's album id does not exist for Bob's API either
    status, _ = await site.call("GET", f"/api/v1/albums/{album_id}", token=site.other)
    assert status == 404


async def test_open_graph_never_names_a_private_image(site: Sharing) -> None:
    album_id = await album(site, description="Summer by the sea")
    status, visible = await site.upload(("first.jpg", samples.jpeg((70, 50))),
                                        convertToWebP="false", album_id=album_id,
                                        visibility="unlisted")
    assert status == 201
    status, hidden = await site.upload(("secret.jpg", samples.jpeg((72, 50))),
                                       convertToWebP="false", album_id=album_id,
                                       visibility="private")  # the newest: the cover
    assert status == 201
    _, _, body = await site.fetch(f"/a/{album_id}", **HTML)
    page = body.decode()
    og_image = re.search(r'<meta property="og:image" content="([^"]+)"', page)
    assert og_image is not None and visible["data"][0]["id"] in og_image.group(1)
    assert '<meta property="og:title" content="Trip">' in page
    assert '<meta property="og:description" content="Summer by the sea">' in page
    assert 'name="twitter:card" content="summary_large_image"' in page
    assert hidden["data"][0]["id"] not in page and "secret" not in page


async def test_json_twin(site: Sharing) -> None:
    album_id, images = await filled(site, visibility="unlisted")
    status, headers, body = await site.fetch(f"/a/{album_id}/album.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    async with site.client.get(f"/a/{album_id}", headers={"Accept": "application/json"}) as r:
        same = await r.json()
    answer = json.loads(body)
    assert answer == same
    data = answer["data"]
    assert data["name"] == "Trip" and data["has_password"] is False
    assert data["image_count"] == 2 and answer["meta"]["total"] == 2
    assert [i["id"] for i in data["images"]] == [images["unlisted"]["id"],
                                                 images["public"]["id"]]
    assert images["private"]["id"] not in body.decode()
    for odd in ("²", "١٢", "99999999999999999999999", "-3", "x"):  # one parser: never a 500
        status, _, clamped = await site.fetch(f"/a/{album_id}/album.json?per_page={odd}")
        assert status == 200 and json.loads(clamped)["meta"]["per_page"] >= 1, odd
    for image in data["images"]:
        path = image["url"].split("://", 1)[1].split("/", 1)[1]
        status, _, got = await site.fetch("/" + path)
        assert status == 200 and got[:2] == b"\xff\xd8"


async def test_zip_holds_the_shown_images_byte_for_byte(site: Sharing) -> None:
    album_id, images = await filled(site)
    await site.upload(("public-shot.jpg", samples.jpeg((90, 60))), convertToWebP="false",
                      album_id=album_id)  # the same name again
    status, headers, body = await site.fetch(f"/a/{album_id}/album.zip")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert "attachment" in headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    names = archive.namelist()
    assert sorted(names) == ["public-shot (2).jpg", "public-shot.jpg", "unlisted-shot.jpg"]
    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    for visibility in ("public", "unlisted"):
        _, _, stored = await site.fetch(f"/img/{images[visibility]['id']}.jpg")
        assert stored in (archive.read(name) for name in names)
    _, _, private = await site.fetch(f"/img/{images['private']['id']}.jpg",
                                     Authorization=f"Bearer {site.token}")
    assert private[:2] == b"\xff\xd8" and private not in body


async def test_zip_of_many_files_streams_in_chunks(site: Sharing) -> None:
    album_id = await album(site)
    sizes = []
    for n in range(6):
        data = samples.jpeg((400 + n, 300))
        sizes.append(len(data))
        await site.upload((f"p{n}.jpg", data), convertToWebP="false", album_id=album_id)
    async with site.client.get(f"/a/{album_id}/album.zip") as resp:
        assert resp.status == 200
        assert "Content-Length" not in resp.headers  # streamed, not buffered
        body = await resp.read()
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert len(archive.namelist()) == 6 and archive.testzip() is None


async def test_password_is_write_only_and_fires_album_updated(site: Sharing) -> None:
    album_id = await album(site, password="sesame")
    status, answer = await site.call("GET", f"/api/v1/albums/{album_id}")
    assert answer["data"]["has_password"] is True and "sesame" not in str(answer)
    status, answer = await site.call("PATCH", f"/api/v1/albums/{album_id}",
                                     json={"password": None})
    assert status == 200 and answer["data"]["has_password"] is False
    status, answer = await site.call("PATCH", f"/api/v1/albums/{album_id}",
                                     json={"password": ""})
    assert status == 422
    rows = await site.app[DB].fetchall(
        "SELECT type, payload FROM events WHERE type LIKE 'album.%' ORDER BY seq")
    assert [row["type"] for row in rows] == ["album.created", "album.updated"]
    assert all("sesame" not in row["payload"] and "password_hash" not in row["payload"]
               for row in rows)
    stored = await site.app[DB].fetchval("SELECT password_hash FROM albums WHERE id = ?",
                                         (album_id,))
    assert stored is None


async def test_locked_album_without_password(site: Sharing) -> None:
    album_id, images = await filled(site, password="sesame", visibility="public")
    status, _, body = await site.fetch(f"/a/{album_id}", **HTML)
    page = body.decode()
    assert status == 200 and 'name="password"' in page
    assert "Trip" not in page and "Summer" not in page
    for image in images.values():
        assert image["id"] not in page
    for suffix in ("/album.json", "/album.zip"):
        status, _, body = await site.fetch(f"/a/{album_id}{suffix}")
        assert status == 401 and b"PK" not in body[:2]
    # its images are no longer served to anyone but the owner or a signed link
    for visibility in ("public", "unlisted"):
        path = f"/img/{images[visibility]['id']}.jpg"
        assert (await site.fetch(path))[0] == 404
        assert (await site.fetch(path, Authorization=f"Bearer {site.token}"))[0] == 200
        assert (await site.fetch(await site.link(images[visibility]["id"])))[0] == 200
    # the owner sees the page without the password
    status, _, body = await site.fetch(
        f"/a/{album_id}", Cookie=f"{sessions.COOKIE}={site.cookie}", Accept="text/html")
    assert status == 200 and images["public"]["id"] in body.decode()
    # removing the password frees its images again
    await site.call("PATCH", f"/api/v1/albums/{album_id}", json={"password": None})
    assert (await site.fetch(f"/img/{images['public']['id']}.jpg"))[0] == 200


async def csrf_form(site: Sharing, album_id: int) -> tuple[str, str]:
    async with site.client.get(f"/a/{album_id}", headers=HTML) as resp:
        page = await resp.text()
        cookie = resp.cookies[sessions.CSRF_COOKIE].value
    field = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert field is not None
    return cookie, field.group(1)


async def test_password_form_sets_a_cookie_for_that_album_only(site: Sharing) -> None:
    album_id, images = await filled(site, password="sesame")
    other_id, other_images = await filled(site, password="sesame")
    csrf_cookie, token = await csrf_form(site, album_id)
    cookies = {"Cookie": f"{sessions.CSRF_COOKIE}={csrf_cookie}"}
    async with site.client.post(f"/a/{album_id}/unlock", headers=cookies,
                                data={"password": "sesame"}, allow_redirects=False) as resp:
        assert resp.status == 403  # no CSRF field
    async with site.client.post(f"/a/{album_id}/unlock", headers=cookies,
                                data={"csrf_token": token, "password": "wrong"},
                                allow_redirects=False) as resp:
        assert resp.status == 403 and "Wrong password" in await resp.text()
    async with site.client.post(f"/a/{album_id}/unlock", headers=cookies,
                                data={"csrf_token": token, "password": "sesame"},
                                allow_redirects=False) as resp:
        assert resp.status in (302, 303) and resp.headers["Location"] == f"/a/{album_id}"
        header = resp.headers["Set-Cookie"]
    assert f"Path=/a/{album_id}" in header and "HttpOnly" in header
    assert "SameSite=Lax" in header and "Max-Age=" in header
    unlock = re.search(r"pichub_album=([^;]+)", header)
    assert unlock is not None
    opened = {"Cookie": f"pichub_album={unlock.group(1)}", **HTML}
    status, _, body = await site.fetch(f"/a/{album_id}", **opened)
    page = body.decode()
    assert status == 200 and images["public"]["id"] in page
    assert images["private"]["id"] not in page
    srcs = re.findall(r'<a href="(/img/[^"]+)"', page)
    assert srcs and all("sig=" in src for src in srcs)
    for src in srcs:
        assert (await site.fetch(src.replace("&amp;", "&")))[0] == 200
    assert "og:image" not in page
    # the same cookie does not open the other album (nor its JSON or zip)
    status, _, body = await site.fetch(f"/a/{other_id}", **opened)
    assert status == 200 and 'name="password"' in body.decode()
    assert other_images["public"]["id"] not in body.decode()
    assert (await site.fetch(f"/a/{other_id}/album.zip",
                             Cookie=opened["Cookie"]))[0] == 401
    status, _, body = await site.fetch(f"/a/{album_id}/album.zip", Cookie=opened["Cookie"])
    assert status == 200 and len(zipfile.ZipFile(io.BytesIO(body)).namelist()) == 2
    # a new password shuts the old cookie out
    await site.call("PATCH", f"/api/v1/albums/{album_id}", json={"password": "other"})
    status, _, body = await site.fetch(f"/a/{album_id}", **opened)
    assert 'name="password"' in body.decode()


async def test_wrong_passwords_are_rate_limited(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_limits={"enabled": True, "login": "3/minute"})
    site = await start(aiohttp_client, settings, FakeClock())
    album_id, _ = await filled(site, password="sesame")
    csrf_cookie, token = await csrf_form(site, album_id)
    statuses = []
    for _ in range(4):
        async with site.client.post(f"/a/{album_id}/unlock",
                                    headers={"Cookie": f"{sessions.CSRF_COOKIE}={csrf_cookie}"},
                                    data={"csrf_token": token, "password": "nope"},
                                    allow_redirects=False) as resp:
            statuses.append(resp.status)
            retry = resp.headers.get("Retry-After")
    assert statuses == [403, 403, 403, 429] and retry is not None
    async with site.client.post(f"/a/{album_id}/unlock",
                                headers={"Cookie": f"{sessions.CSRF_COOKIE}={csrf_cookie}"},
                                data={"csrf_token": token, "password": "sesame"},
                                allow_redirects=False) as resp:
        assert resp.status == 429  # even the right one, until the window passes


async def test_image_page_of_a_locked_album(site: Sharing) -> None:
    album_id, images = await filled(site, password="sesame")
    page = f"/i/{images['public']['id']}"
    status, _, body = await site.fetch(page, **HTML)
    assert status == 404 and images["public"]["id"] not in body.decode()
    status, _, body = await site.fetch(page, Cookie=f"{sessions.COOKIE}={site.cookie}")
    assert status == 200
    await site.call("PATCH", f"/api/v1/albums/{album_id}", json={"password": None})
    assert (await site.fetch(page, **HTML))[0] == 200
