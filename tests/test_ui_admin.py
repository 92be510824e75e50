"""The admin pages over real HTTP: admins only (404 for everyone else, before any CSRF
check), every form works with its CSRF token and is refused without it, a disabled user
cannot sign in and is signed out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import ClientSession
from browser import (
    PASSWORD,
    FormClient,
    csrf_from,
    expect,
    form_client,
    launch,
    open_tab,
    requires_browser,
    start_site,
)

from pichub.keys import BLOBS, DB, TWO_FACTOR
from pichub.services import accounts, sessions
from tests import samples
from tests.conftest import form

PAGES = ["/admin", "/admin/users", "/admin/images", "/admin/tokens"]
ACTIONS = ["/admin/users", "/admin/users/1/active", "/admin/users/1/admin",
           "/admin/users/1/quota", "/admin/users/1/password", "/admin/users/1/delete",
           "/admin/users/1/totp/reset", "/admin/users/1/email",
           "/admin/images/abcdefgh/delete", "/admin/tokens/1/revoke"]


async def admin_client(aiohttp_client: Any, tmp_path: Path) -> FormClient:
    ui = await form_client(aiohttp_client, tmp_path)  # alice, not an admin
    await accounts.create_user(ui.app[DB], "root", PASSWORD, is_admin=True)
    resp = await ui.login("root")
    assert resp.status == 303
    return ui


async def uid(ui: FormClient, name: str) -> int:
    return int(await ui.app[DB].fetchval("SELECT id FROM users WHERE username = ?", (name,)))


async def test_pages_and_actions_are_404_for_anyone_but_an_admin(aiohttp_client: Any,
                                                                 tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    html = {"Accept": "text/html"}
    _, unknown = await ui.text("/no-such-page", headers=html)
    for signed_in in (False, True):
        if signed_in:
            assert (await ui.login("alice")).status == 303
            _, dashboard = await ui.text("/dashboard")
            assert 'href="/admin"' not in dashboard  # no nav link for non-admins
        for path in PAGES:
            status, text = await ui.text(path, headers=html)
            assert status == 404, path
            assert "Route not found" in text and "Route not found" in unknown
        for path in ACTIONS:
            csrf = signed_in  # even with a valid CSRF token
            status, body, _ = await ui.post(path, {"is_active": "0"}, csrf=csrf)
            assert status == 404 and '"NOT_FOUND"' in body, path


async def test_admin_pages_render(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await admin_client(aiohttp_client, tmp_path)
    _, dashboard = await ui.text("/dashboard")
    assert 'id="admin-link"' in dashboard
    for path in PAGES:
        status, html = await ui.text(path)
        assert status == 200, path
        assert "<script>" not in html
    _, html = await ui.text("/admin")
    assert html.count("<rect ") == 30 and 'id="uploads-chart"' in html
    _, html = await ui.text("/admin/users")
    assert 'data-username="alice"' in html and 'data-username="root"' in html
    _, html = await ui.text("/admin/users?q=ALI")
    assert 'data-username="alice"' in html and 'data-username="root"' not in html


async def test_user_forms(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await admin_client(aiohttp_client, tmp_path)
    db = ui.app[DB]
    status, _, resp = await ui.post("/admin/users", {
        "username": "dave", "password": "long enough pw", "quota_mb": "50", "is_admin": "1"})
    assert status == 303 and resp.headers["Location"] == "/admin/users"
    dave = await db.fetchone("SELECT * FROM users WHERE username = 'dave'")
    assert dave["quota_mb"] == 50 and dave["is_admin"] == 1
    status, _, resp = await ui.post("/admin/users", {"username": "eve", "password": "short"})
    assert status == 303  # back with the error as a message
    _, html = await ui.text("/admin/users")
    assert "password: " in html and "eve" not in html
    alice = await uid(ui, "alice")
    for path, data, column, value in [
        (f"/admin/users/{alice}/quota", {"quota_mb": "7"}, "quota_mb", 7),
        (f"/admin/users/{alice}/quota", {"quota_mb": ""}, "quota_mb", None),
        (f"/admin/users/{alice}/admin", {"is_admin": "1"}, "is_admin", 1),
        (f"/admin/users/{alice}/admin", {"is_admin": "0"}, "is_admin", 0),
        (f"/admin/users/{alice}/active", {"is_active": "0"}, "is_active", 0),
        (f"/admin/users/{alice}/active", {"is_active": "1"}, "is_active", 1),
    ]:
        status, _, _ = await ui.post(path, data)
        assert status == 303
        got = await db.fetchval(f"SELECT {column} FROM users WHERE id = ?", (alice,))
        assert got == value, (path, data)
    await ui.post(f"/admin/users/{alice}/quota", {"quota_mb": "lots"})
    assert await db.fetchval("SELECT quota_mb FROM users WHERE id = ?", (alice,)) is None
    assert "quota_mb: must be an integer or null" in (await ui.text("/admin/users"))[1]
    await ui.post(f"/admin/users/{alice}/password", {"password": "new secret words"})
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM users") == 3
    assert await sessions.authenticate(db, "alice", "new secret words") is not None
    root = await uid(ui, "root")
    await ui.post(f"/admin/users/{root}/active", {"is_active": "0"})  # not on yourself
    assert await db.fetchval("SELECT is_active FROM users WHERE id = ?", (root,)) == 1


async def test_forms_without_csrf_are_refused(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await admin_client(aiohttp_client, tmp_path)
    alice = await uid(ui, "alice")
    for path, data in [(f"/admin/users/{alice}/active", {"is_active": "0"}),
                       (f"/admin/users/{alice}/delete", {}),
                       ("/admin/users", {"username": "zed", "password": "long enough"})]:
        status, _, _ = await ui.post(path, data, csrf=False)
        assert status == 403, path
        status, _, _ = await ui.post(path, {**data, "csrf_token": "forged"}, csrf=False)
        assert status == 403, path
    assert await ui.app[DB].fetchval("SELECT is_active FROM users WHERE id = ?", (alice,)) == 1
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM users") == 2


async def test_reset_two_factor_form(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await admin_client(aiohttp_client, tmp_path)
    db = ui.app[DB]
    alice = await uid(ui, "alice")
    enrolment = await ui.app[TWO_FACTOR].begin(alice, "alice")
    await ui.app[TWO_FACTOR].confirm(alice, pyotp.TOTP(enrolment.secret).now())
    _, html = await ui.text("/admin/users")
    assert f'action="/admin/users/{alice}/totp/reset"' in html
    root = await uid(ui, "root")
    assert f'action="/admin/users/{root}/totp/reset"' not in html  # off, and your own
    path = f"/admin/users/{alice}/totp/reset"
    for forged in ({}, {"csrf_token": "forged"}):
        status, _, _ = await ui.post(path, forged, csrf=False)
        assert status == 403
    assert await ui.app[TWO_FACTOR].enabled(alice)
    status, _, resp = await ui.post(path)
    assert status == 303 and resp.headers["Location"] == "/admin/users"
    assert not await ui.app[TWO_FACTOR].enabled(alice)
    assert await db.fetchval("SELECT COUNT(*) FROM recovery_codes") == 0
    _, html = await ui.text("/admin/users")
    assert "Two-factor sign-in of alice reset" in html and "/totp/reset" not in html
    await ui.post(f"/admin/users/{root}/totp/reset")  # not on yourself: a message
    assert "account page" in (await ui.text("/admin/users"))[1]


async def test_email_form(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await admin_client(aiohttp_client, tmp_path)
    db = ui.app[DB]
    alice, root = await uid(ui, "alice"), await uid(ui, "root")
    path = f"/admin/users/{alice}/email"
    _, html = await ui.text("/admin/users")
    assert f'action="{path}"' in html
    for forged in ({"email": "a@example.org"}, {"email": "a@example.org", "csrf_token": "x"}):
        status, _, _ = await ui.post(path, forged, csrf=False)
        assert status == 403
    status, _, resp = await ui.post(path, {"email": " Alice@Example.org "})
    assert status == 303 and resp.headers["Location"] == "/admin/users"
    assert await db.fetchval("SELECT email FROM users WHERE id = ?", (alice,)) == \
        "Alice@Example.org"
    _, html = await ui.text("/admin/users")
    assert "E-mail of alice saved." in html and 'value="Alice@Example.org"' in html
    await ui.post(f"/admin/users/{root}/email", {"email": "alice@example.org"})  # taken
    _, html = await ui.text("/admin/users")
    assert "email: another account has it" in html
    await ui.post(f"/admin/users/{root}/email", {"email": "{name}@x"})
    assert "email: not an e-mail address" not in (await ui.text("/admin/users"))[1]
    assert await db.fetchval("SELECT email FROM users WHERE id = ?", (root,)) == "{name}@x"
    await ui.post(f"/admin/users/{root}/email", {"email": "no address"})
    assert "email: not an e-mail address" in (await ui.text("/admin/users"))[1]
    await ui.post(path, {"email": ""})
    assert await db.fetchval("SELECT email FROM users WHERE id = ?", (alice,)) is None
    assert "E-mail of alice removed." in (await ui.text("/admin/users"))[1]


async def test_disabling_signs_out_and_refuses_the_login_form(aiohttp_client: Any,
                                                              tmp_path: Path) -> None:
    admin = await admin_client(aiohttp_client, tmp_path)
    alice = FormClient(await aiohttp_client(admin.client.server))
    assert (await alice.login("alice")).status == 303
    assert (await alice.text("/dashboard"))[0] == 200
    await admin.post(f"/admin/users/{await uid(admin, 'alice')}/active", {"is_active": "0"})
    assert (await alice.text("/dashboard"))[0] == 303  # to /login: the session is gone
    token = csrf_from((await alice.text("/login"))[1])
    async with alice.client.post("/login", data={"username": "alice", "password": PASSWORD,
                                                 "csrf_token": token},
                                 allow_redirects=False) as resp:
        assert resp.status == 403 and "This account is disabled" in await resp.text()
        assert sessions.COOKIE not in resp.cookies
    resp = await alice.login("alice", "wrong password")
    assert resp.status == 200  # a wrong password says nothing about the account


async def test_images_tokens_and_delete_user_forms(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await admin_client(aiohttp_client, tmp_path)
    db = ui.app[DB]
    token = await accounts.create_token(db, "alice", "laptop")
    async with ui.client.post("/api/v1/upload", data=form(("a.jpg", samples.jpeg())),
                              headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 201
        image = (await resp.json())["data"][0]
    alice = await uid(ui, "alice")
    _, html = await ui.text(f"/admin/images?user_id={alice}")
    assert f'data-image-id="{image["id"]}"' in html and "Images of alice" in html
    _, html = await ui.text("/admin/tokens")
    assert "laptop" in html
    token_id = int(re.findall(r'data-token-id="(\d+)"', html)[0])
    status, _, _ = await ui.post(f"/admin/tokens/{token_id}/revoke",
                                 {"next": "/admin/tokens"})
    assert status == 303
    assert await db.fetchval("SELECT revoked_at FROM tokens WHERE id = ?", (token_id,))
    blob = ui.app[BLOBS].path(image["id"], "webp")
    assert blob.exists()
    status, _, resp = await ui.post(f"/admin/images/{image['id']}/delete",
                                    {"next": f"/admin/images?user_id={alice}"})
    assert status == 303 and resp.headers["Location"] == f"/admin/images?user_id={alice}"
    assert not blob.exists()
    status, _, _ = await ui.post(f"/admin/users/{alice}/delete", {})
    assert status == 303
    assert await db.fetchval("SELECT COUNT(*) FROM users WHERE id = ?", (alice,)) == 0
    assert "deleted" in (await ui.text("/admin/users"))[1]


@requires_browser
async def test_admin_pages_in_a_browser(aiohttp_server: Any, tmp_path: Path) -> None:
    """In Chromium: the overview's chart draws under the CSP, and disabling a user from the
    users page (its confirmation accepted) refuses their token at once."""
    site = await start_site(aiohttp_server, tmp_path)
    await accounts.create_user(site.app[DB], "root", PASSWORD, is_admin=True)
    token = await site.new_user("bob")
    async with ClientSession() as client, client.post(
            site.base + "/api/v1/upload", data=form(("a.jpg", samples.jpeg())),
            headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 201
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await tab.login("root")
        await tab.page.click("#admin-link")
        await tab.page.wait_for_url(tab.url("/admin"))
        await expect(tab.page.locator("#uploads-chart rect")).to_have_count(30)
        await tab.screenshot("admin-overview.png")
        await tab.goto("/admin/users")
        row = tab.page.locator('tr[data-username="bob"]')
        await row.get_by_role("button", name="Disable").click()
        await expect(tab.page.locator(".flash")).to_contain_text("bob disabled")
        await expect(row.locator(".badge-private")).to_have_text("disabled")
        await tab.screenshot("admin-users.png")
        tab.assert_clean()
    async with ClientSession() as client, client.get(
            site.base + "/api/v1/images", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 401
