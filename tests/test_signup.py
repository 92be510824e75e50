"""Sign-up and invites over real HTTP (real SQLite, real files): each `auth.registration`
mode, invites used once (also when two sign-ups race on one), expired and revoked invites,
the invite routes hidden from non-admins, the open sign-up rate limit, and CSRF."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser import PASSWORD, FormClient, csrf_from, form_client

from pichub.errors import Forbidden
from pichub.keys import DB
from pichub.models.invites import InviteCreate
from pichub.services import accounts, registration
from pichub.timeutil import now

A = "/api/v1/admin/invites"


async def site(aiohttp_client: Any, tmp_path: Path, mode: str,
               **sections: dict[str, Any]) -> tuple[FormClient, str]:
    """PicHub in `mode` with alice (a plain user, signed in) and an admin's token."""
    ui = await form_client(aiohttp_client, tmp_path, auth={"registration": mode}, **sections)
    await accounts.create_user(ui.app[DB], "root", PASSWORD, is_admin=True)
    return ui, await accounts.create_token(ui.app[DB], "root")


async def call(ui: FormClient, method: str, path: str, token: str | None,
               **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with ui.client.request(method, path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


async def invite(ui: FormClient, token: str, **body: Any) -> str:
    """A new invite's link, as a path (`/signup?invite=…`)."""
    status, answer = await call(ui, "POST", A, token, json={"expires_in": 3600, **body})
    assert status == 201, answer
    url = urllib.parse.urlsplit(answer["data"]["url"])
    assert url.path == "/signup" and answer["data"]["expires_at"].endswith("Z")
    return f"{url.path}?{url.query}"


def secret_of(link: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["invite"][0]


@asynccontextmanager
async def new_browser(ui: FormClient) -> AsyncIterator[aiohttp.ClientSession]:
    """Another browser: its own cookie jar, nobody signed in."""
    async with aiohttp.ClientSession(base_url=str(ui.client.make_url("/")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        yield browser


async def sign_up(browser: aiohttp.ClientSession, username: str, link: str = "/signup", *,
                  password: str = PASSWORD, confirm: str | None = None,
                  csrf: bool = True) -> tuple[int, str, aiohttp.ClientResponse]:
    """Open the sign-up page like a browser, then post its form."""
    async with browser.get(link, allow_redirects=False) as page:
        html = await page.text()
        assert page.status == 200, (page.status, html)
    form = {"username": username, "password": password,
            "confirm_password": password if confirm is None else confirm,
            "invite": urllib.parse.parse_qs(urllib.parse.urlsplit(link).query).get(
                "invite", [""])[0]}
    if csrf:
        form["csrf_token"] = csrf_from(html)
    async with browser.post("/signup", data=form, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp


async def status_of(browser: aiohttp.ClientSession, path: str) -> int:
    async with browser.get(path, allow_redirects=False) as resp:
        return resp.status


async def users(ui: FormClient) -> set[str]:
    return {row["username"] for row in await ui.app[DB].fetchall("SELECT username FROM users")}


async def test_closed_registration_has_no_signup_page(aiohttp_client: Any,
                                                      tmp_path: Path) -> None:
    ui, root = await site(aiohttp_client, tmp_path, "closed")
    link = await invite(ui, root)  # admins may prepare invites; they work once it opens
    async with new_browser(ui) as browser:
        assert await status_of(browser, "/signup") == 404
        assert await status_of(browser, link) == 404
        async with browser.post("/signup", data={"username": "eve", "password": PASSWORD,
                                                 "invite": secret_of(link)}) as resp:
            assert resp.status == 404
        async with browser.get("/login") as resp:
            assert 'href="/signup"' not in await resp.text()
    assert await users(ui) == {"alice", "root"}


async def test_open_registration_signs_the_new_user_in(aiohttp_client: Any,
                                                       tmp_path: Path) -> None:
    ui, _ = await site(aiohttp_client, tmp_path, "open")
    async with new_browser(ui) as browser:
        async with browser.get("/login") as resp:
            assert 'id="signup-link"' in await resp.text()
        for name, password, confirm, expected in (
                ("bad name!", PASSWORD, None, "username"),
                ("dora", "short", None, "at least 8 characters"),
                ("dora", PASSWORD, "something else", "differ"),
                ("alice", PASSWORD, None, "already taken")):
            status, html, _ = await sign_up(browser, name, password=password, confirm=confirm)
            assert status == 422 and expected in html, (name, html)
        status, _, resp = await sign_up(browser, "dora")
        assert status == 303 and resp.headers["Location"] == "/dashboard"
        async with browser.get("/dashboard", allow_redirects=False) as page:
            assert page.status == 200 and "dora" in await page.text()
    dora = await accounts.get_user(ui.app[DB], "dora")
    assert dora is not None and not dora["is_admin"] and dora["quota_mb"] is None


async def test_invite_registration_needs_a_usable_invite_used_once(aiohttp_client: Any,
                                                                   tmp_path: Path) -> None:
    ui, root = await site(aiohttp_client, tmp_path, "invite")
    link = await invite(ui, root, note="for dora", quota_mb=50)
    async with new_browser(ui) as browser:
        assert await status_of(browser, "/signup") == 404  # no invite: no page
        assert await status_of(browser, "/signup?invite=made-up") == 403
        async with browser.get("/login") as resp:
            assert "invite link" in await resp.text()
        status, _, _ = await sign_up(browser, "dora", link)
        assert status == 303
    dora = await accounts.get_user(ui.app[DB], "dora")
    assert dora is not None and dora["quota_mb"] == 50
    async with new_browser(ui) as browser:  # the same link again
        assert await status_of(browser, link) == 403
        async with browser.post("/signup", data={"username": "eve", "password": PASSWORD,
                                                 "confirm_password": PASSWORD,
                                                 "invite": secret_of(link)}) as resp:
            assert resp.status == 403  # (the CSRF cookie is missing too: refused either way)
    status, listed = await call(ui, "GET", A, root)
    assert status == 200
    [used] = listed["data"]
    assert (used["status"], used["used_by"], used["note"], used["created_by"]) == (
        "used", "dora", "for dora", "root")
    assert (await call(ui, "DELETE", f"{A}/{used['id']}", root))[0] == 404  # used: not revocable
    assert "eve" not in await users(ui)
    stored = await ui.app[DB].fetchval("SELECT token_hash FROM invites")
    assert secret_of(link) not in stored and len(stored) == 64  # only the SHA-256 is kept


async def test_two_sign_ups_racing_on_one_invite_make_one_account(aiohttp_client: Any,
                                                                   tmp_path: Path) -> None:
    ui, root = await site(aiohttp_client, tmp_path, "invite")
    link = await invite(ui, root)
    async with new_browser(ui) as first, new_browser(ui) as second:
        results = await asyncio.gather(sign_up(first, "dora", link),
                                       sign_up(second, "erin", link))
    assert sorted(status for status, _, _ in results) == [303, 403]
    assert len((await users(ui)) & {"dora", "erin"}) == 1
    # And straight at the service, many at once: exactly one wins.
    other = await invite(ui, root)
    tried = await asyncio.gather(*(
        registration.sign_up(ui.app[DB], "invite", f"racer{n}", PASSWORD, secret_of(other),
                             now()) for n in range(6)), return_exceptions=True)
    assert sum(isinstance(result, int) for result in tried) == 1
    assert sum(isinstance(result, Forbidden) for result in tried) == 5
    assert len({name for name in await users(ui) if name.startswith("racer")}) == 1


async def test_expired_and_revoked_invites_are_refused(aiohttp_client: Any,
                                                       tmp_path: Path) -> None:
    ui, root = await site(aiohttp_client, tmp_path, "invite")
    old = await registration.create_invite(ui.app[DB], InviteCreate(expires_in=3600),
                                           created_by=None, base_url="http://x",
                                           at=now() - timedelta(hours=2))
    expired = "/signup?invite=" + urllib.parse.quote(secret_of(old.url))
    revoked = await invite(ui, root)
    status, listed = await call(ui, "GET", A, root)
    by_status = {item["status"]: item["id"] for item in listed["data"]}
    assert set(by_status) == {"expired", "unused"}
    status, body = await call(ui, "DELETE", f"{A}/{by_status['unused']}", root)
    assert status == 200 and body["data"] == {"id": by_status["unused"], "deleted": True}
    async with new_browser(ui) as browser:
        for link in (expired, revoked):
            async with browser.get(link, allow_redirects=False) as resp:
                assert resp.status == 403 and "expired" in await resp.text()
    with pytest.raises(Forbidden):
        await registration.sign_up(ui.app[DB], "invite", "late", PASSWORD, secret_of(expired),
                                   now())
    assert (await call(ui, "GET", A, root))[1]["data"][0]["status"] == "expired"
    assert await users(ui) == {"alice", "root"}


async def test_invite_routes_are_404_for_everyone_but_admins(aiohttp_client: Any,
                                                             tmp_path: Path) -> None:
    ui, root = await site(aiohttp_client, tmp_path, "invite")
    alice = await accounts.create_token(ui.app[DB], "alice")
    status, unknown = await call(ui, "GET", "/api/v1/no-such-route", None)
    for method, path in (("POST", A), ("GET", A), ("DELETE", f"{A}/1"),
                         ("GET", "/v1/admin/invites")):
        for token in (alice, None):
            status, body = await call(ui, method, path, token, json={"expires_in": 3600})
            assert (status, body) == (404, unknown), (method, path, token)
    assert (await call(ui, "POST", A, root, json={"expires_in": 1}))[0] == 422
    assert (await call(ui, "POST", A, root, json={"quota_mb": -1}))[0] == 422
    assert (await call(ui, "DELETE", f"{A}/999", root))[0] == 404
    await ui.login("alice")  # a signed-in non-admin: the page does not exist either
    assert (await ui.text("/admin/invites"))[0] == 404
    assert (await ui.post("/admin/invites", {"expires_in": "3600"}))[0] == 404
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM invites") == 0


async def test_open_sign_ups_are_rate_limited_per_ip(aiohttp_client: Any,
                                                     tmp_path: Path) -> None:
    ui, root = await site(aiohttp_client, tmp_path, "open",
                          rate_limits={"enabled": True, "signup": "2/hour"})
    link = await invite(ui, root)
    async with new_browser(ui) as browser:
        assert (await sign_up(browser, "bad name!"))[0] == 422  # failed attempts count too
        assert (await sign_up(browser, "dora"))[0] == 303
    async with new_browser(ui) as browser:
        status, html, resp = await sign_up(browser, "erin")
        assert status == 429 and "Too many sign-ups" in html
        assert int(resp.headers["Retry-After"]) > 0
        assert (await sign_up(browser, "erin", link))[0] == 303  # an invite is its own limit
    assert {"dora", "erin"} <= await users(ui)


async def test_the_signup_form_needs_its_csrf_token(aiohttp_client: Any,
                                                    tmp_path: Path) -> None:
    ui, root = await site(aiohttp_client, tmp_path, "invite")
    link = await invite(ui, root)
    async with new_browser(ui) as browser:
        status, html, _ = await sign_up(browser, "dora", link, csrf=False)
        assert status == 403 and "expired" in html
    assert "dora" not in await users(ui)
    await ui.login("root")
    status, _, _ = await ui.post("/admin/invites", {"expires_in": "3600"}, csrf=False)
    assert status == 403
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM invites") == 1
