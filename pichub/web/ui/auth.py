"""Sign-in and sign-out pages (`/login`, `/logout`).

The login form is protected against CSRF with a double-submit cookie (there
is no session yet) and rate limited with the `login` bucket, per client IP
and per username, counting every attempt. A successful sign-in always starts
a fresh session (no fixation) and leaves the CSRF cookie behind.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from pichub.hashing import same_secret
from pichub.keys import DB, LIMITER, SETTINGS, TRUSTED_PROXIES
from pichub.services import sessions
from pichub.web.clientip import rate_limit_key, request_client_ip
from pichub.web.ui.forms import redirect, safe_next, text_field
from pichub.web.ui.guards import current_session, set_cookie
from pichub.web.ui.templates import render

FAILED = "Wrong username or password."
DISABLED = "This account is disabled. Ask an administrator to enable it."


def _login_form(request: web.Request, token: str, *, error: str = "", username: str = "",
                next_path: str | None = None, status: int = 200) -> web.Response:
    target = safe_next(next_path or request.query.get("next"), "/dashboard")
    response = render(request, "login.html",
                      {"error": error, "username": username, "next": target},
                      csrf_token=token, status=status)
    if request.cookies.get(sessions.CSRF_COOKIE) != token:
        set_cookie(request, response, sessions.CSRF_COOKIE, token)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        return redirect(safe_next(request.query.get("next"), "/dashboard"))
    token = request.cookies.get(sessions.CSRF_COOKIE) or sessions.new_csrf_token()
    return _login_form(request, token)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    cookie_token = request.cookies.get(sessions.CSRF_COOKIE)
    given = text_field(form, sessions.CSRF_FIELD)
    if not same_secret(cookie_token, given):
        fresh = sessions.new_csrf_token()
        return _login_form(request, fresh, status=403,
                           error="The sign-in form had expired. Please try again.")
    assert cookie_token is not None
    username = text_field(form, "username").strip()
    password = text_field(form, "password")
    next_path = text_field(form, "next")
    ip_key = rate_limit_key(request_client_ip(request, request.app[TRUSTED_PROXIES]))
    decision = await request.app[LIMITER].check_all(
        [("login", ip_key), ("login", "user:" + username.lower())])
    if not decision.allowed:
        response = _login_form(
            request, cookie_token, username=username, next_path=next_path, status=429,
            error=f"Too many sign-in attempts. Try again in {decision.retry_after} seconds.")
        response.headers.update(decision.headers())
        return response
    user = await sessions.authenticate(request.app[DB], username, password)
    if user is None:
        return _login_form(request, cookie_token, username=username, next_path=next_path,
                           error=FAILED)
    if not user["is_active"]:
        return _login_form(request, cookie_token, username=username, next_path=next_path,
                           error=DISABLED, status=403)
    return await _signed_in(request, user["id"], next_path)


async def _signed_in(request: web.Request, user_id: int, next_path: str) -> web.Response:
    days = request.app[SETTINGS].server.session_days
    cookie, _ = await sessions.start(request.app[DB], user_id, timedelta(days=days))
    response = redirect(safe_next(next_path, "/dashboard"))
    set_cookie(request, response, sessions.COOKIE, cookie, max_age=days * 86400)
    response.del_cookie(sessions.CSRF_COOKIE, path="/")
    return response


async def logout_page(request: web.Request) -> web.StreamResponse:
    """GET /logout: a confirmation button (signing out changes state, so it is a POST)."""
    session = await current_session(request)
    if session is None:
        return redirect("/")
    return render(request, "logout.html", {}, session=session)


async def logout(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    form = await request.post()
    if session is None:
        return redirect("/")  # nothing to sign out of
    if not same_secret(session.csrf_token, text_field(form, sessions.CSRF_FIELD)):
        return render(request, "error.html", {"status": 403, "message":
                      "Sign-out needs the form's CSRF token; use the Sign out button."},
                      session=session, status=403)
    await sessions.end(request.app[DB], request.cookies.get(sessions.COOKIE))
    response = redirect("/")
    response.del_cookie(sessions.COOKIE, path="/")
    return response


ROUTES = [
    web.get("/login", login_page),
    web.post("/login", login),
    web.get("/logout", logout_page),
    web.post("/logout", logout),
]
