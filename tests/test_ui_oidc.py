"""Single sign-on against a real OpenID provider on 127.0.0.1 (oidc-provider from npm),
driven with plain HTTP: PKCE, state and nonce, the ID token check, and the account rules."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pichub.app import create_app
from pichub.keys import DB
from pichub.services import accounts, sessions
from tests.conftest import make_settings
from tests.support import backends
from tests.support.oidc import (
    PUBLIC_URL,
    Browser,
    oidc_section,
    provider,
    replace_param,
    requires_provider,
)

pytestmark = requires_provider

ACCOUNTS = {
    "sub-alice": {"email": "alice@example.org", "email_verified": True,
                  "preferred_username": "alice", "groups": ["staff"]},
    "sub-root": {"email": "root@example.org", "email_verified": True,
                 "preferred_username": "root", "groups": ["staff", "pichub-admins"]},
    "sub-bob": {"email": "bob@example.org", "email_verified": False,
                "preferred_username": "bob", "groups": []},
}


@pytest.fixture
async def issuer() -> AsyncIterator[str]:
    async with provider(ACCOUNTS) as url:
        yield url


@pytest.fixture
async def at_provider() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _browser(aiohttp_client: Any, tmp_path: Path, at_provider: aiohttp.ClientSession,
                   issuer: str, **oidc: Any) -> Browser:
    settings = make_settings(tmp_path, oidc=oidc_section(issuer, **oidc), server={
        "public_url": PUBLIC_URL, "allowed_hosts": ["pichub.test", "127.0.0.1"]})
    return Browser(await aiohttp_client(create_app(settings)), at_provider)


async def _user(browser: Browser, name: str) -> Any:
    return await browser.pichub.server.app[DB].fetchone(
        "SELECT * FROM users WHERE username = ?", (name,))


async def test_first_sign_in_creates_the_account_and_the_second_finds_it(
        aiohttp_client: Any, tmp_path: Path, issuer: str,
        at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer,
                             admin_group="pichub-admins")
    await accounts.create_user(browser.pichub.server.app[DB], "alice", "password-1234")
    url = await browser.start()
    assert "code_challenge_method=S256" in url and "nonce=" in url and "state=" in url
    status, location, _ = await browser.callback(await browser.at_the_provider(url, "sub-alice"))
    assert (status, location) == (303, "/dashboard")
    user = await _user(browser, "alice-2")  # "alice" was taken by a password account
    assert user is not None and not user["is_admin"] and user["email"] == "alice@example.org"
    page = await browser.pichub.get("/dashboard")
    assert page.status == 200 and "alice-2" in await page.text()
    async with browser.pichub.post("/logout", data={
            "csrf_token": await _csrf(browser)}, allow_redirects=False) as resp:
        assert resp.status == 303
    assert (await browser.sign_in("sub-alice"))[:2] == (303, "/dashboard")
    rows = await browser.pichub.server.app[DB].fetchall("SELECT * FROM oidc_identities")
    assert [(r["subject"], r["user_id"]) for r in rows] == [("sub-alice", user["id"])]
    assert await browser.pichub.server.app[DB].fetchval("SELECT COUNT(*) FROM users") == 2
    assert user["password_hash"] == "!sso"
    assert await sessions.authenticate(browser.pichub.server.app[DB], "alice-2", "!sso") is None


async def _csrf(browser: Browser) -> str:
    db = browser.pichub.server.app[DB]
    return str(await db.fetchval("SELECT csrf_token FROM sessions ORDER BY id DESC LIMIT 1"))


async def test_admin_follows_the_group_claim(aiohttp_client: Any, tmp_path: Path, issuer: str,
                                             at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer,
                             admin_group="pichub-admins")
    assert (await browser.sign_in("sub-root"))[0] == 303
    root = await _user(browser, "root")
    assert root is not None and root["is_admin"] == 1
    assert (await browser.pichub.get("/admin")).status == 200
    browser.new_browser()
    assert (await browser.sign_in("sub-alice"))[0] == 303
    assert (await _user(browser, "alice"))["is_admin"] == 0
    assert (await browser.pichub.get("/admin")).status == 404


async def test_required_totp_does_not_stop_an_admin_signed_in_through_the_provider(
        aiohttp_client: Any, tmp_path: Path, issuer: str,
        at_provider: aiohttp.ClientSession) -> None:
    settings = make_settings(tmp_path, oidc=oidc_section(issuer, admin_group="pichub-admins"),
                             auth={"require_totp_for_admins": True}, server={
        "public_url": PUBLIC_URL, "allowed_hosts": ["pichub.test", "127.0.0.1"]})
    browser = Browser(await aiohttp_client(create_app(settings)), at_provider)
    assert (await browser.sign_in("sub-root"))[:2] == (303, "/dashboard")
    assert await browser.pichub.server.app[DB].fetchval("SELECT method FROM sessions") == "sso"
    assert (await browser.pichub.get("/admin", allow_redirects=False)).status == 200


async def test_group_removed_at_the_provider_takes_admin_away(
        aiohttp_client: Any, tmp_path: Path, issuer: str,
        at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer,
                             admin_group="staff-admins")
    db = browser.pichub.server.app[DB]
    assert (await browser.sign_in("sub-root"))[0] == 303
    async with db.transaction() as conn:
        await conn.execute("UPDATE users SET is_admin = 1 WHERE username = 'root'")
    browser.new_browser()
    assert (await browser.sign_in("sub-root"))[0] == 303
    assert (await _user(browser, "root"))["is_admin"] == 0  # not in staff-admins


async def test_no_account_page_without_auto_create(aiohttp_client: Any, tmp_path: Path,
                                                   issuer: str,
                                                   at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer, auto_create=False)
    status, _, html = await browser.sign_in("sub-alice")
    assert status == 403 and "There is no PicHub account for you yet" in html
    assert sessions.COOKIE not in {c.key for c in browser.pichub.session.cookie_jar}
    assert await browser.pichub.server.app[DB].fetchval("SELECT COUNT(*) FROM users") == 0


async def test_link_by_verified_email_only_when_allowed(
        aiohttp_client: Any, tmp_path: Path, issuer: str,
        at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer, auto_create=False,
                             link_by_email=True)
    db = browser.pichub.server.app[DB]
    alice = await accounts.create_user(db, "al", "password-1234")
    bob = await accounts.create_user(db, "bobby", "password-1234")
    async with db.transaction() as conn:
        await conn.execute("UPDATE users SET email = 'ALICE@example.org' WHERE id = ?", (alice,))
        await conn.execute("UPDATE users SET email = 'bob@example.org' WHERE id = ?", (bob,))
    assert (await browser.sign_in("sub-alice"))[0] == 303  # verified: linked
    browser.new_browser()
    assert (await browser.sign_in("sub-bob"))[0] == 403  # unverified e-mail: no link
    rows = await db.fetchall("SELECT subject, user_id FROM oidc_identities")
    assert [(r["subject"], r["user_id"]) for r in rows] == [("sub-alice", alice)]


async def test_tampered_state_is_refused(aiohttp_client: Any, tmp_path: Path, issuer: str,
                                         at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer)
    back = await browser.at_the_provider(await browser.start(), "sub-alice")
    status, _, html = await browser.callback(replace_param(back, state="forged"))
    assert status == 400 and "state mismatch" in html
    assert await browser.pichub.server.app[DB].fetchval("SELECT COUNT(*) FROM users") == 0


async def test_callback_from_another_browser_is_refused(
        aiohttp_client: Any, tmp_path: Path, issuer: str,
        at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer)
    back = await browser.at_the_provider(await browser.start(), "sub-alice")
    browser.pichub.session.cookie_jar.clear()  # the flow cookie is this browser's only
    status, _, html = await browser.callback(back)
    assert status == 400 and "another browser" in html


async def test_wrong_nonce_is_refused(aiohttp_client: Any, tmp_path: Path, issuer: str,
                                      at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer)
    url = replace_param(await browser.start(), nonce="not-the-one-pichub-drew")
    status, _, html = await browser.callback(await browser.at_the_provider(url, "sub-alice"))
    assert status == 400 and "ID token does not check out" in html and "nonce" in html
    assert await browser.pichub.server.app[DB].fetchval("SELECT COUNT(*) FROM users") == 0


async def test_wrong_code_verifier_is_refused(aiohttp_client: Any, tmp_path: Path,
                                              issuer: str,
                                              at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer)
    url = replace_param(await browser.start(), code_challenge="A" * 43)  # not our verifier's
    status, _, html = await browser.callback(await browser.at_the_provider(url, "sub-alice"))
    assert status == 502 and "token endpoint answered 400" in html
    assert "Traceback" not in html


async def test_disabled_user_is_refused(aiohttp_client: Any, tmp_path: Path, issuer: str,
                                        at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider, issuer)
    assert (await browser.sign_in("sub-alice"))[0] == 303
    db = browser.pichub.server.app[DB]
    async with db.transaction() as conn:
        await conn.execute("UPDATE users SET is_active = 0 WHERE username = 'alice'")
    browser.new_browser()
    status, _, html = await browser.sign_in("sub-alice")
    assert status == 403 and "This account is disabled" in html


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_provider_down_shows_a_clear_page(aiohttp_client: Any, tmp_path: Path,
                                                at_provider: aiohttp.ClientSession) -> None:
    browser = await _browser(aiohttp_client, tmp_path, at_provider,
                             f"http://127.0.0.1:{_closed_port()}", timeout_s=2)
    async with browser.pichub.get("/login/oidc", allow_redirects=False) as resp:
        html = await resp.text()
        assert resp.status == 502
    assert "Single sign-on is not available right now" in html and "Traceback" not in html


async def test_login_page_button_and_password_form_switch(
        aiohttp_client: Any, tmp_path: Path, issuer: str,
        at_provider: aiohttp.ClientSession) -> None:
    both = await _browser(aiohttp_client, tmp_path / "a", at_provider, issuer)
    html = await (await both.pichub.get("/login")).text()
    assert "Sign in with TestID" in html and 'name="password"' in html
    only = await _browser(aiohttp_client, tmp_path / "b", at_provider, issuer,
                          password_login=False)
    html = await (await only.pichub.get("/login")).text()
    assert "Sign in with TestID" in html and 'name="password"' not in html
    await accounts.create_user(only.pichub.server.app[DB], "carol", "password-1234")
    async with only.pichub.post("/login", data={"username": "carol",
                                                "password": "password-1234"},
                                allow_redirects=False) as resp:
        assert resp.status == 403 and sessions.COOKIE not in resp.cookies


async def test_without_oidc_the_pages_are_404_and_the_login_page_unchanged(
        aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    assert (await client.get("/login/oidc", allow_redirects=False)).status == 404
    assert (await client.get("/login/oidc/callback?state=x&code=y")).status == 404
    html = await (await client.get("/login")).text()
    assert "/login/oidc" not in html and 'name="password"' in html



async def test_set_email_is_one_account_per_address(tmp_path: Path) -> None:
    from pichub.db.database import Database
    from pichub.errors import ValidationError
    from pichub.services import oidc

    db = await Database.open(backends.database(tmp_path))
    try:
        al = await accounts.create_user(db, "al", "password-1234")
        bo = await accounts.create_user(db, "bo", "password-1234")
        await oidc.set_email(db, al, "Al@Example.org")
        with pytest.raises(ValidationError):
            await oidc.set_email(db, bo, "al@example.org")
        with pytest.raises(ValidationError):
            await oidc.set_email(db, bo, "not an address")
        await oidc.set_email(db, al, "")
        await oidc.set_email(db, bo, "al@example.org")
        assert await db.fetchval("SELECT email FROM users WHERE id = ?", (bo,)) == "al@example.org"
    finally:
        await db.close()
