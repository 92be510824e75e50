"""The account page's self-service over real HTTP: change the password, see and end sessions."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
from browser import PASSWORD, FormClient, form_client

from pichub.keys import DB
from pichub.services import accounts, sessions

NEW = "a brand new passphrase"


def cookie_of(ui: FormClient) -> str:
    return ui.client.session.cookie_jar.filter_cookies(
        ui.client.make_url("/"))[sessions.COOKIE].value


async def two_sessions(ui: FormClient) -> tuple[str, str]:
    """Sign alice in twice (two browsers); the client keeps the second."""
    await ui.login("alice", headers={"User-Agent": "Firefox on the laptop"})
    first = cookie_of(ui)
    ui.client.session.cookie_jar.clear()
    await ui.login("alice", headers={"User-Agent": "Chromium on the phone"})
    return first, cookie_of(ui)


async def works(ui: FormClient, cookie: str) -> bool:
    """Whether this session cookie still signs a browser in (sent alone, no cookie jar)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as browser:
        async with browser.get(ui.client.make_url("/dashboard"), allow_redirects=False,
                               headers={"Cookie": f"{sessions.COOKIE}={cookie}"}) as resp:
            return resp.status == 200


def flashed(resp: Any) -> str:
    return urllib.parse.unquote(resp.cookies["pichub_flash"].value)


async def test_changing_the_password_ends_the_other_sessions(aiohttp_client: Any,
                                                             tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    other, mine = await two_sessions(ui)
    token = await accounts.create_token(ui.app[DB], "alice")
    for form in ({"current_password": "wrong", "new_password": NEW, "confirm_password": NEW},
                 {"current_password": PASSWORD, "new_password": NEW, "confirm_password": "x"},
                 {"current_password": PASSWORD, "new_password": "short",
                  "confirm_password": "short"}):
        status, _, resp = await ui.post("/account/password", form)
        assert status == 303 and "pichub_flash" in resp.cookies
        assert await works(ui, other)  # nothing changed
    status, _, resp = await ui.post("/account/password", {
        "current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW})
    assert status == 303 and "1 other session signed out" in flashed(resp)
    assert not await works(ui, other)
    assert await works(ui, mine)
    async with ui.client.get("/api/v1/images",
                             headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.status == 200  # API tokens are not sessions
    ui.client.session.cookie_jar.clear()
    assert (await ui.login("alice")).status == 200  # the old password: refused
    assert (await ui.login("alice", NEW)).headers["Location"] == "/dashboard"


async def test_own_sessions_are_listed_and_can_be_ended(aiohttp_client: Any,
                                                        tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await accounts.create_user(ui.app[DB], "bob", PASSWORD)
    other, mine = await two_sessions(ui)
    status, html = await ui.text("/account")
    assert status == 200
    assert "Firefox on the laptop" in html and "Chromium on the phone" in html
    assert "this browser" in html and "127.0.0.1" in html
    rows = await ui.app[DB].fetchall("SELECT id, user_agent FROM sessions")
    laptop = next(r["id"] for r in rows if r["user_agent"].startswith("Firefox"))
    status, _, resp = await ui.post(f"/account/sessions/{laptop}/end")
    assert status == 303 and resp.headers["Location"] == "/account#sessions"
    assert not await works(ui, other)
    assert await works(ui, mine)
    assert "Firefox on the laptop" not in (await ui.text("/account"))[1]


async def test_another_users_session_cannot_be_ended(aiohttp_client: Any,
                                                     tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await accounts.create_user(ui.app[DB], "bob", PASSWORD)
    await ui.login("bob")
    bobs = cookie_of(ui)
    bob_id = await ui.app[DB].fetchval("SELECT id FROM sessions")
    ui.client.session.cookie_jar.clear()
    await ui.login("alice")
    for target in (str(bob_id), "999999", "0", "x"):
        status, _, resp = await ui.post(f"/account/sessions/{target}/end")
        assert status in (303, 404), target
    assert await works(ui, bobs)
    assert (await ui.text("/account"))[0] == 200


async def test_ending_this_session_signs_out(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    mine = cookie_of(ui)
    session_id = await ui.app[DB].fetchval("SELECT id FROM sessions")
    status, _, resp = await ui.post(f"/account/sessions/{session_id}/end")
    assert status == 303 and resp.headers["Location"] == "/login"
    assert not await works(ui, mine)


async def test_the_self_service_forms_need_the_csrf_token(aiohttp_client: Any,
                                                         tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    other, mine = await two_sessions(ui)
    other_id = await ui.app[DB].fetchval("SELECT MIN(id) FROM sessions")
    form = {"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW}
    for path in ("/account/password", f"/account/sessions/{other_id}/end"):
        for token in (None, "forged"):
            data = form | ({"csrf_token": token} if token else {})
            async with ui.client.post(path, data=data, allow_redirects=False) as resp:
                assert resp.status == 403, path
    assert await works(ui, other) and await works(ui, mine)
    ui.client.session.cookie_jar.clear()
    assert (await ui.login("alice", PASSWORD)).status == 303  # password unchanged
