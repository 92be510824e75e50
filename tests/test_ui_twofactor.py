"""Two-factor sign-in (TOTP) over real HTTP: set-up, the second step, recovery codes, limits.

Codes are computed with pyotp, as an authenticator app would. Codes of the
next 30-second step stand in for "a later code" (the drift window accepts it),
so no test waits for the clock.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from browser import PASSWORD, FormClient, csrf_from, form_client

from pichub.keys import DB, OIDC, TWO_FACTOR
from pichub.sealing import KEY_FILE
from pichub.services import accounts, oidc, sessions
from pichub.services.oidc import Identity
from pichub.web.oidc import Finished
from pichub.web.ui.auth import PENDING_COOKIE

STEP = 30


def code_at(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * STEP)


def wrong_code(secret: str) -> str:
    """A 6-digit code no step of the drift window has."""
    valid = {code_at(secret, n) for n in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


async def account_post(ui: FormClient, path: str, data: dict[str, str] | None = None,
                       **kwargs: Any) -> tuple[int, str, Any]:
    """POST a form of the account page (its CSRF token; the only page an admin who must
    enrol may see)."""
    form = {**(data or {}), "csrf_token": await ui.token("/account")}
    async with ui.client.post(path, data=form, allow_redirects=False, **kwargs) as resp:
        return resp.status, await resp.text(), resp


async def enrol(ui: FormClient) -> tuple[str, list[str]]:
    """Set up two-factor sign-in for the signed-in user; returns the secret and codes."""
    status, _, _ = await account_post(ui, "/account/totp")
    assert status == 303
    html = (await ui.text("/account"))[1]
    found = re.search(r'id="totp-secret">([A-Z2-7]+)<', html)
    assert found is not None, html
    assert 'src="data:image/svg+xml' in html  # the QR code, drawn on the server
    secret = found.group(1)
    status, html, _ = await account_post(ui, "/account/totp/confirm", {"code": code_at(secret)})
    assert status == 200, html
    codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", html)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


async def sign_out(ui: FormClient) -> None:
    status, _, _ = await ui.post("/logout")
    assert status == 303


async def code_step(ui: FormClient, code: str, **kwargs: Any) -> tuple[int, str, Any]:
    status, html = await ui.text("/login/totp", **kwargs)
    assert status == 200, status
    data = {"code": code, "csrf_token": csrf_from(html)}
    async with ui.client.post("/login/totp", data=data, allow_redirects=False,
                              **kwargs) as resp:
        return resp.status, await resp.text(), resp


async def signed_in(ui: FormClient) -> bool:
    return (await ui.text("/dashboard"))[0] == 200


async def enrolled(aiohttp_client: Any, tmp_path: Path, **sections: dict[str, Any]
                   ) -> tuple[FormClient, str, list[str]]:
    ui = await form_client(aiohttp_client, tmp_path, **sections)
    await ui.login("alice")
    secret, codes = await enrol(ui)
    await sign_out(ui)
    return ui, secret, codes


async def test_enrol_then_sign_in_with_a_code(aiohttp_client: Any, tmp_path: Path) -> None:
    ui, secret, codes = await enrolled(aiohttp_client, tmp_path)
    row = await ui.app[DB].fetchone("SELECT * FROM totp")
    assert row["confirmed_at"] is not None and secret not in row["secret"]  # sealed
    stored = [r["code_hash"] for r in await ui.app[DB].fetchall("SELECT * FROM recovery_codes")]
    assert len(stored) == 10 and not any(c.replace("-", "") in h for c in codes for h in stored)
    assert (tmp_path / "data" / KEY_FILE).stat().st_mode & 0o077 == 0

    resp = await ui.login("alice")
    assert resp.status == 303 and resp.headers["Location"] == "/login/totp"
    assert sessions.COOKIE not in resp.cookies  # the password alone starts no session
    assert not await signed_in(ui)
    status, _, resp = await code_step(ui, code_at(secret, 1))
    assert status == 303 and resp.headers["Location"] == "/dashboard"
    assert await signed_in(ui)
    html = (await ui.text("/account"))[1]
    assert "Recovery codes left: <strong id=\"recovery-left\">10" in html
    assert secret not in html  # shown only while setting up


async def test_wrong_reused_and_far_codes_are_refused(aiohttp_client: Any,
                                                      tmp_path: Path) -> None:
    ui, secret, _ = await enrolled(aiohttp_client, tmp_path)
    await ui.login("alice")
    for code in (wrong_code(secret), code_at(secret), code_at(secret, 3), "12345", "abc"):
        # code_at(secret) confirmed the set-up: used already; 3 steps ahead: out of the window
        status, html, resp = await code_step(ui, code)
        assert status == 200 and "not right" in html, code
        assert sessions.COOKIE not in resp.cookies
    assert not await signed_in(ui)
    status, _, _ = await code_step(ui, code_at(secret, 1))
    assert status == 303 and await signed_in(ui)
    await sign_out(ui)
    await ui.login("alice")
    status, html, _ = await code_step(ui, code_at(secret, 1))  # the same code, replayed
    assert status == 200 and "used already" in html
    assert not await signed_in(ui)


async def test_a_recovery_code_works_once(aiohttp_client: Any, tmp_path: Path) -> None:
    ui, _, codes = await enrolled(aiohttp_client, tmp_path)
    await ui.login("alice")
    typed = codes[3].upper().replace("-", " ")  # as someone might type it
    status, _, _ = await code_step(ui, typed)
    assert status == 303 and await signed_in(ui)
    assert "recovery-left\">9<" in (await ui.text("/account"))[1]
    await sign_out(ui)
    await ui.login("alice")
    status, html, _ = await code_step(ui, codes[3])
    assert status == 200 and "not right" in html and not await signed_in(ui)
    status, _, _ = await code_step(ui, codes[4])
    assert status == 303 and await signed_in(ui)


async def test_the_pending_sign_in_is_signed_and_short_lived(aiohttp_client: Any,
                                                             tmp_path: Path) -> None:
    ui, secret, _ = await enrolled(aiohttp_client, tmp_path)
    jar = ui.client.session.cookie_jar
    jar.update_cookies({PENDING_COOKIE: "eyJ1IjoxfQ.forged"})
    async with ui.client.get("/login/totp", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/login"
    await ui.login("alice")
    pending = jar.filter_cookies(ui.client.make_url("/"))[PENDING_COOKIE].value
    assert secret not in pending and "alice" not in pending
    # The password changes meanwhile (another tab, an admin): the pending sign-in dies.
    user_id = await ui.app[DB].fetchval("SELECT id FROM users WHERE username = 'alice'")
    await accounts.change_password(ui.app[DB], user_id, PASSWORD, "a new password!")
    async with ui.client.get("/login/totp", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/login"
    async with ui.client.post("/login/totp", data={"code": code_at(secret, 1),
                              "csrf_token": csrf_from((await ui.text("/login"))[1])},
                              allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert not await signed_in(ui)


async def test_codes_are_rate_limited_per_user(aiohttp_client: Any,
                                                          tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path,
                           rate_limits={"enabled": True, "two_factor": "3/minute"},
                           server={"trusted_proxies": ["127.0.0.1/32"]})
    await accounts.create_user(ui.app[DB], "bob", PASSWORD)
    secrets_of = {}
    for name in ("alice", "bob"):
        await ui.login(name)
        secrets_of[name], _ = await enrol(ui)  # the confirming code counts too
        await sign_out(ui)
    await ui.login("alice")

    def ip(n: int) -> dict[str, Any]:
        return {"headers": {"X-Forwarded-For": f"198.51.100.{n}"}}

    for n in range(2):  # alice: 1 attempt at set-up + 2 wrong ones = 3
        status, _, _ = await code_step(ui, wrong_code(secrets_of["alice"]), **ip(n))
        assert status == 200
    status, html, resp = await code_step(ui, code_at(secrets_of["alice"], 1), **ip(7))
    assert status == 429 and "Too many codes" in html  # per user, whatever the IP
    assert int(resp.headers["Retry-After"]) >= 1 and not await signed_in(ui)

    await ui.login("bob")
    for _ in range(2):
        status, _, _ = await code_step(ui, wrong_code(secrets_of["bob"]), **ip(20))
        assert status == 200
    status, _, _ = await code_step(ui, wrong_code(secrets_of["bob"]), **ip(21))
    assert status == 429  # bob's own three are used up too (1 at set-up)


async def test_codes_are_rate_limited_per_ip(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path,
                           rate_limits={"enabled": True, "two_factor": "4/minute"},
                           server={"trusted_proxies": ["127.0.0.1/32"]})
    await accounts.create_user(ui.app[DB], "bob", PASSWORD)
    attacker = {"headers": {"X-Forwarded-For": "203.0.113.5"}}
    secrets_of = {}
    for name, where in (("alice", {"headers": {"X-Forwarded-For": "192.0.2.1"}}),
                        ("bob", attacker)):
        await ui.login(name)
        await ui.post("/account/totp")
        found = re.search(r'id="totp-secret">([A-Z2-7]+)<', (await ui.text("/account"))[1])
        assert found is not None
        secrets_of[name] = found.group(1)
        status, _, _ = await ui.post("/account/totp/confirm",
                                     {"code": code_at(found.group(1))}, **where)
        assert status == 200
        await sign_out(ui)
    await ui.login("bob")
    for _ in range(3):  # with bob's set-up: 4 from this IP
        assert (await code_step(ui, wrong_code(secrets_of["bob"]), **attacker))[0] == 200
    await ui.login("alice")
    status, _, _ = await code_step(ui, code_at(secrets_of["alice"], 1), **attacker)
    assert status == 429  # the IP's budget is spent, though alice's is not
    status, _, _ = await code_step(ui, code_at(secrets_of["alice"], 1),
                                   headers={"X-Forwarded-For": "203.0.113.6"})
    assert status == 303 and await signed_in(ui)


async def test_admins_can_be_required_to_enrol(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path, auth={"require_totp_for_admins": True})
    await accounts.create_user(ui.app[DB], "root", PASSWORD, is_admin=True)
    resp = await ui.login("alice")  # not an admin: unaffected
    assert resp.headers["Location"] == "/dashboard" and await signed_in(ui)
    await sign_out(ui)
    resp = await ui.login("root")
    assert resp.status == 303 and resp.headers["Location"] == "/account"
    for path in ("/dashboard", "/dashboard/tokens"):
        async with ui.client.get(path, allow_redirects=False) as got:
            assert got.status == 303 and got.headers["Location"] == "/account"
    status, html = await ui.text("/account")
    assert status == 200 and "Admins must use two-factor sign-in" in html
    token = csrf_from(html)
    async with ui.client.post("/dashboard/albums", data={"name": "x", "csrf_token": token},
                              allow_redirects=False) as got:
        assert got.status == 303 and got.headers["Location"] == "/account"
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM albums") == 0
    secret, _ = await enrol(ui)
    assert await signed_in(ui)
    await sign_out(ui)
    resp = await ui.login("root")
    assert resp.headers["Location"] == "/login/totp"
    status, _, resp = await code_step(ui, code_at(secret, 1))
    assert resp.headers["Location"] == "/dashboard" and await signed_in(ui)


async def test_turning_it_off_needs_password_and_code(aiohttp_client: Any,
                                                     tmp_path: Path) -> None:
    ui, secret, _ = await enrolled(aiohttp_client, tmp_path)
    await ui.login("alice")
    await code_step(ui, code_at(secret, 1))
    for form in ({"password": "wrong", "code": code_at(secret, -1)},
                 {"password": PASSWORD, "code": wrong_code(secret)},
                 {"password": PASSWORD, "code": code_at(secret, 1)}):  # used at sign-in
        status, _, resp = await ui.post("/account/totp/disable", form)
        assert status == 303 and "pichub_flash" in resp.cookies
        assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM totp") == 1
    status, _, resp = await ui.post("/account/totp/disable",
                                    {"password": PASSWORD, "code": code_at(secret, 0)})
    # code_at(secret, 0) is older than the step used at sign-in: refused as well
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM totp") == 1
    status, _, _ = await ui.post("/account/totp/disable",
                                 {"password": PASSWORD, "code": code_at(secret, 2)})
    assert status == 303  # two steps ahead is outside the window: refused
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM totp") == 1
    # A minute later, the code of that time turns it off.
    ui.app[TWO_FACTOR]._clock = lambda: time.time() + 2 * STEP
    status, _, resp = await ui.post("/account/totp/disable",
                                    {"password": PASSWORD, "code": code_at(secret, 2)})
    assert status == 303 and "off" in resp.cookies["pichub_flash"].value
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM totp") == 0
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM recovery_codes") == 0
    await sign_out(ui)
    assert (await ui.login("alice")).headers["Location"] == "/dashboard"


async def test_turning_it_off_with_a_recovery_code(aiohttp_client: Any,
                                                   tmp_path: Path) -> None:
    ui, secret, codes = await enrolled(aiohttp_client, tmp_path)
    await ui.login("alice")
    await code_step(ui, codes[0])
    status, _, _ = await ui.post("/account/totp/disable",
                                 {"password": PASSWORD, "code": codes[1]})
    assert status == 303
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM totp") == 0
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM recovery_codes") == 0
    await sign_out(ui)
    resp = await ui.login("alice")
    assert resp.headers["Location"] == "/dashboard"  # one step again


async def test_api_tokens_need_no_second_factor(aiohttp_client: Any, tmp_path: Path) -> None:
    ui, _, _ = await enrolled(aiohttp_client, tmp_path)
    token = await accounts.create_token(ui.app[DB], "alice")
    async with ui.client.get("/api/v1/images",
                             headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and (await resp.json())["success"] is True


async def test_the_set_up_forms_need_the_csrf_token(aiohttp_client: Any,
                                                    tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    for path in ("/account/totp", "/account/totp/confirm", "/account/totp/disable"):
        for token in (None, "forged"):
            data = {"code": "123456", "password": PASSWORD} | (
                {"csrf_token": token} if token else {})
            async with ui.client.post(path, data=data, allow_redirects=False) as resp:
                assert resp.status == 403, path
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM totp") == 0
    await ui.text("/login")  # the second step: double-submit cookie like the password form
    async with ui.client.post("/login/totp", data={"code": "123456", "csrf_token": "x"},
                              allow_redirects=False) as resp:
        assert resp.status == 403


async def test_required_enrolment_skips_admins_signed_in_through_single_sign_on(
        aiohttp_client: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """The session remembers how it signed in: `sso` goes straight on (the provider does the
    MFA), `password` for the same admin is still sent to set up TOTP. The provider's answer
    is stood in for here (its real flow: tests/test_ui_oidc.py)."""
    ui = await form_client(aiohttp_client, tmp_path, auth={"require_totp_for_admins": True},
                           oidc={"enabled": True, "issuer": "http://127.0.0.1:9",
                                 "client_id": "pichub", "client_secret": "s",
                                 "admin_group": "pichub-admins", "link_by_email": True})
    root = await accounts.create_user(ui.app[DB], "root", PASSWORD, is_admin=True)
    await oidc.set_email(ui.app[DB], root, "root@example.org")

    async def finish(*_: Any) -> Finished:
        return Finished(Identity("http://127.0.0.1:9", "sub-root", "root@example.org", True,
                                 "root", ("pichub-admins",)), "/dashboard")

    monkeypatch.setattr(ui.app[OIDC], "finish", finish)
    async with ui.client.get("/login/oidc/callback?code=c&state=s",
                             allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    assert await ui.app[DB].fetchval("SELECT method FROM sessions") == "sso"
    status, html = await ui.text("/dashboard")
    assert status == 200 and "root" in html  # not sent to /account
    assert "Admins must use two-factor sign-in" not in (await ui.text("/account"))[1]
    await sign_out(ui)
    resp = await ui.login("root")
    assert resp.headers["Location"] == "/account"
    assert await ui.app[DB].fetchval("SELECT method FROM sessions") == "password"
    async with ui.client.get("/dashboard", allow_redirects=False) as got:
        assert got.status == 303 and got.headers["Location"] == "/account"


async def test_sessions_record_the_sign_in_method(aiohttp_client: Any, tmp_path: Path) -> None:
    ui, secret, _ = await enrolled(aiohttp_client, tmp_path)
    db = ui.app[DB]
    await ui.login("alice")
    await code_step(ui, code_at(secret, 1))
    assert await db.fetchval("SELECT method FROM sessions") == "totp"
    cookie, session = await sessions.start(db, 1, timedelta(days=1), method="signup")
    assert session.method == "signup"
    assert (await sessions.lookup(db, cookie)) == session
    with pytest.raises(ValueError):
        await sessions.start(db, 1, timedelta(days=1), method="magic")  # type: ignore[arg-type]
