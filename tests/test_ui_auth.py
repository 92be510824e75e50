"""Sign-in, sessions and CSRF of the web UI, over real HTTP (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from browser import PASSWORD, FormClient, csrf_from, form_client

from pichub.keys import DB
from pichub.services import accounts, sessions
from pichub.web.routes import API_PREFIXES


def _set_cookie(resp: Any, name: str) -> str:
    for header in resp.headers.getall("Set-Cookie", []):
        if header.startswith(name + "="):
            return str(header)
    raise AssertionError(f"no Set-Cookie for {name}")


async def test_login_starts_a_hardened_session(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    resp = await ui.login("alice")
    assert resp.status == 303
    assert resp.headers["Location"] == "/dashboard"
    cookie = _set_cookie(resp, sessions.COOKIE)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP from an untrusted peer
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    stored = await ui.app[DB].fetchall("SELECT id_hash FROM sessions")
    assert len(stored) == 1 and value not in stored[0]["id_hash"]  # only the hash is kept
    status, html = await ui.text("/dashboard")
    assert status == 200 and "alice" in html


async def test_wrong_password_shows_the_form_again(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    for name, password in [("alice", "wrong password"), ("nobody", PASSWORD)]:
        resp = await ui.login(name, password)
        assert resp.status == 200
        assert sessions.COOKIE not in resp.cookies
    status, html = await ui.text("/login")
    assert status == 200 and "Sign in" in html
    assert (await ui.text("/dashboard"))[0] == 303


async def test_login_form_without_csrf_is_refused(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.text("/login")  # the CSRF cookie is set; the form field is left out
    data = {"username": "alice", "password": PASSWORD}
    async with ui.client.post("/login", data=data, allow_redirects=False) as resp:
        assert resp.status == 403
        assert sessions.COOKIE not in resp.cookies
    data["csrf_token"] = "forged"
    async with ui.client.post("/login", data=data, allow_redirects=False) as resp:
        assert resp.status == 403


async def test_secure_cookie_only_behind_a_trusted_https_proxy(aiohttp_client: Any,
                                                               tmp_path: Path) -> None:
    proxied = await form_client(aiohttp_client, tmp_path / "a",
                                server={"trusted_proxies": ["127.0.0.1/32"]})
    resp = await proxied.login("alice", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in _set_cookie(resp, sessions.COOKIE)
    direct = await form_client(aiohttp_client, tmp_path / "b")
    resp = await direct.login("alice", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in _set_cookie(resp, sessions.COOKIE)  # anyone can send that header


async def _attempt(ui: FormClient, name: str, password: str, ip: str) -> Any:
    return await ui.login(name, password, headers={"X-Forwarded-For": ip})


async def test_login_attempts_are_limited_per_username(aiohttp_client: Any,
                                                       tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path,
                           rate_limits={"enabled": True, "login": "3/minute"},
                           server={"trusted_proxies": ["127.0.0.1/32"]})
    for n in range(3):
        assert (await _attempt(ui, "alice", "guess", f"198.51.100.{n}")).status == 200
    resp = await _attempt(ui, "alice", PASSWORD, "198.51.100.9")  # new IP, right password
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert sessions.COOKIE not in resp.cookies


async def test_login_attempts_are_limited_per_ip(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path,
                           rate_limits={"enabled": True, "login": "3/minute"},
                           server={"trusted_proxies": ["127.0.0.1/32"]})
    for name in ("bob", "carol", "dave"):
        assert (await _attempt(ui, name, "guess", "203.0.113.7")).status == 200
    assert (await _attempt(ui, "alice", PASSWORD, "203.0.113.7")).status == 429
    assert (await _attempt(ui, "alice", PASSWORD, "203.0.113.8")).status == 303


async def test_next_goes_only_to_local_paths(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    status, _ = await ui.text("/dashboard/albums")
    assert status == 303
    for target, expected in [("/dashboard/albums", "/dashboard/albums"),
                             ("//evil.example/x", "/dashboard"),
                             ("https://evil.example/", "/dashboard"),
                             ("/\\evil.example", "/dashboard"),
                             ("/\t/evil.example/", "/dashboard"),  # browsers drop the tab
                             ("/\n/evil.example/", "/dashboard"),
                             ("/x\r\nSet-Cookie: a=b", "/dashboard"),  # no header injection
                             ("/dashboard?album_id=2", "/dashboard?album_id=2")]:
        html = (await ui.text("/login?next=" + target.replace("/", "%2F")))[1]
        data = {"username": "alice", "password": PASSWORD, "csrf_token": csrf_from(html),
                "next": target}
        async with ui.client.post("/login", data=data, allow_redirects=False) as resp:
            assert resp.headers["Location"] == expected
        ui.client.session.cookie_jar.clear()


async def test_signed_in_login_page_redirects_only_to_local_paths(aiohttp_client: Any,
                                                                 tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    for query, expected in [("%2F%09%2Fevil.example%2F", "/dashboard"),
                            ("%2F%0D%0A%2Fevil", "/dashboard"),
                            ("%2Fdashboard%2Falbums", "/dashboard/albums")]:
        async with ui.client.get("/login?next=" + query, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == expected


async def test_a_failed_attempt_keeps_where_to_go_next(aiohttp_client: Any,
                                                      tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    html = (await ui.text("/login?next=%2Fdashboard%2Ftokens"))[1]
    data = {"username": "alice", "password": "nope", "csrf_token": csrf_from(html),
            "next": "/dashboard/tokens"}
    async with ui.client.post("/login", data=data, allow_redirects=False) as resp:
        html = await resp.text()
    assert 'name="next" value="/dashboard/tokens"' in html
    data.update(password=PASSWORD, csrf_token=csrf_from(html))
    async with ui.client.post("/login", data=data, allow_redirects=False) as resp:
        assert resp.headers["Location"] == "/dashboard/tokens"


async def test_pages_need_a_session(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    for path in ("/dashboard", "/dashboard/albums", "/dashboard/tokens", "/dashboard/webhooks",
                 "/dashboard/webhooks/1"):
        async with ui.client.get(path, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"].startswith("/login?next=%2Fdashboard")
    for path in ("/", "/docs", "/login"):
        assert (await ui.text(path))[0] == 200


async def test_logout_ends_the_session_for_good(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    cookie = ui.client.session.cookie_jar.filter_cookies(ui.client.make_url("/"))
    stolen = cookie[sessions.COOKIE].value
    status, _, resp = await ui.post("/logout")
    assert status == 303 and resp.headers["Location"] == "/"
    assert (await ui.text("/dashboard"))[0] == 303
    # The old cookie value, replayed, is dead too.
    replay = {"Cookie": f"{sessions.COOKIE}={stolen}"}
    async with ui.client.get("/dashboard", headers=replay, allow_redirects=False) as resp:
        assert resp.status == 303
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM sessions") == 0


async def test_expired_sessions_are_not_accepted(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    async with ui.app[DB].transaction() as conn:
        await conn.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00Z'")
    assert (await ui.text("/dashboard"))[0] == 303


async def test_a_session_never_authorises_the_json_api(aiohttp_client: Any,
                                                       tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    token = await ui.token()
    for prefix in API_PREFIXES:
        async with ui.client.get(prefix + "/images",
                                 headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "UNAUTHORIZED"


#: Routes a session never authorises, so CSRF cannot reach them: the compatible APIs take a
#: token (`test_compat_lsky`, `test_clients_chevereto`); a delete link is its own secret
#: (`test_delete_links`).
TOKEN_ROUTES = ("/compat/lsky/", "/api/1/", "/delete/")


def _concrete(path: str, ids: dict[str, str]) -> str:
    def one(_: re.Match[str]) -> str:
        return ids["albums" if path.startswith("/a/") else path.split("/")[2]]  # /a/: album page
    return re.sub(r"\{id\}", one, path)


async def _ids(ui: FormClient) -> dict[str, str]:
    """One real resource of each kind, so a refused POST is refused for CSRF, not for 404."""
    db = ui.app[DB]
    await ui.post("/dashboard/albums", {"name": "Keep me"})
    await ui.post("/dashboard/tokens", {"name": "keep"})
    album = await db.fetchval("SELECT id FROM albums")
    token = await db.fetchval("SELECT id FROM tokens")
    session = await db.fetchval("SELECT id FROM sessions")
    return {"albums": str(album), "tokens": str(token), "images": "noimage1",
            "webhooks": "1", "sessions": str(session)}


async def test_every_state_changing_ui_route_needs_the_csrf_token(aiohttp_client: Any,
                                                                  tmp_path: Path) -> None:
    # Open registration: the sign-up form exists, so its CSRF check is reached too.
    ui = await form_client(aiohttp_client, tmp_path, auth={"registration": "open"})
    await accounts.create_user(ui.app[DB], "root", PASSWORD, is_admin=True)
    await ui.login("root")  # an admin: the admin pages' forms are checked too
    ids = await _ids(ui)
    ids["users"] = str(await ui.app[DB].fetchval("SELECT id FROM users WHERE username = 'alice'"))
    await ui.post("/admin/invites", {"expires_in": "3600"})
    ids["invites"] = str(await ui.app[DB].fetchval("SELECT id FROM invites"))
    posts = sorted({r.resource.canonical for r in ui.app.router.routes()
                    if r.method == "POST" and r.resource is not None
                    and not r.resource.canonical.startswith(API_PREFIXES + TOKEN_ROUTES)})
    assert "/dashboard/albums" in posts and "/logout" in posts and len(posts) >= 12
    before = await ui.app[DB].fetchall("SELECT name, is_public FROM albums")
    for path in posts:
        url = _concrete(path, ids)
        for token in (None, "forged-token"):
            form = {"name": "Changed", "is_public": "0", "scope": "read"}
            if token:
                form["csrf_token"] = token
            status, body, _ = await ui.post(url, form, csrf=False,
                                            headers={"X-CSRF-Token": token or ""})
            assert status == 403, (url, token, status)
    assert await ui.app[DB].fetchall("SELECT name, is_public FROM albums") == before
    assert await ui.app[DB].fetchval("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL") == 1
    assert (await ui.text("/dashboard"))[0] == 200  # still signed in: logout was refused too
