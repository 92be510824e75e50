"""Sign-in and sign-out pages (`/login`, `/login/totp`, `/logout`).

The login form is protected against CSRF with a double-submit cookie (there
is no session yet) and rate limited with the `login` bucket, per client IP
and per username, counting every attempt. A successful sign-in always starts
a fresh session (no fixation) and leaves the CSRF cookie behind.

With two-factor sign-in on, the right password starts no session: the
browser gets a signed five-minute pending sign-in (`pichub_2fa`, see
`services.twofactor`) and `/login/totp` asks for a code or a recovery code,
under the same double-submit CSRF check and the `two_factor` rate limit (per
IP and per user, every attempt counted). With `auth.require_totp_for_admins`
an admin without it is sent to the account page to set it up, unless they came through
single sign-on (the session records how it was signed in; the provider does MFA).

With single sign-on (`[oidc]`, `web/ui/oidc.py`) the form also offers the provider's button;
with `oidc.password_login = false` it offers only that, and a posted password is refused.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from pichub.hashing import same_secret
from pichub.keys import DB, LIMITER, SETTINGS, TRUSTED_PROXIES, TWO_FACTOR
from pichub.ratelimit import Decision, user_rate_key
from pichub.services import sessions, twofactor
from pichub.web.clientip import rate_limit_key, request_client_ip
from pichub.web.ui.forms import flash, redirect, safe_next, text_field
from pichub.web.ui.guards import current_session, set_cookie
from pichub.web.ui.i18n import N_, gettext
from pichub.web.ui.templates import render

FAILED = N_("Wrong username or password.")
DISABLED = N_("This account is disabled. Ask an administrator to enable it.")
PASSWORD_OFF = N_("Sign-in with a password is turned off here: use single sign-on.")
PENDING_COOKIE = "pichub_2fa"  # the signed pending sign-in between password and code


def _login_form(request: web.Request, token: str, *, error: str = "", username: str = "",
                next_path: str | None = None, status: int = 200) -> web.Response:
    target = safe_next(next_path or request.query.get("next"), "/dashboard")
    sso = request.app[SETTINGS].oidc
    response = render(request, "login.html",
                      {"error": error, "username": username, "next": target,
                       "sso_label": sso.button_label if sso.enabled else "",
                       "password_form": sso.password_form},
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
    if not request.app[SETTINGS].oidc.password_form:
        return _login_form(request, sessions.new_csrf_token(), status=403,
                           error=gettext(PASSWORD_OFF))
    form = await request.post()
    cookie_token = request.cookies.get(sessions.CSRF_COOKIE)
    given = text_field(form, sessions.CSRF_FIELD)
    if not same_secret(cookie_token, given):
        fresh = sessions.new_csrf_token()
        return _login_form(request, fresh, status=403,
                           error=gettext("The sign-in form had expired. Please try again."))
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
            error=gettext("Too many sign-in attempts. Try again in {n} seconds.").format(
                n=decision.retry_after))
        response.headers.update(decision.headers())
        return response
    user = await sessions.authenticate(request.app[DB], username, password)
    if user is None:
        return _login_form(request, cookie_token, username=username, next_path=next_path,
                           error=gettext(FAILED))
    if not user["is_active"]:
        return _login_form(request, cookie_token, username=username, next_path=next_path,
                           error=gettext(DISABLED), status=403)
    two_factor = request.app[TWO_FACTOR]
    if await two_factor.enabled(user["id"]):
        response = redirect("/login/totp")
        set_cookie(request, response, PENDING_COOKIE,
                   two_factor.pending(user["id"], user["password_hash"], next_path),
                   max_age=twofactor.PENDING_S)
        return response
    return await signed_in(request, user["id"], next_path, "password")


def _code_form(request: web.Request, token: str, *, error: str = "",
               status: int = 200) -> web.Response:
    response = render(request, "login_totp.html", {"error": error}, csrf_token=token,
                      status=status)
    if request.cookies.get(sessions.CSRF_COOKIE) != token:
        set_cookie(request, response, sessions.CSRF_COOKIE, token)
    return response


def _start_over(message: str) -> web.Response:
    response = redirect("/login")
    response.del_cookie(PENDING_COOKIE, path="/")
    flash(response, message, "error")
    return response


async def code_page(request: web.Request) -> web.StreamResponse:
    """GET /login/totp: the second step, for a browser with a live pending sign-in."""
    if await request.app[TWO_FACTOR].read_pending(request.cookies.get(PENDING_COOKIE)) is None:
        return _start_over(gettext("Sign in again: the two-step sign-in had expired."))
    token = request.cookies.get(sessions.CSRF_COOKIE) or sessions.new_csrf_token()
    return _code_form(request, token)


async def check_code(request: web.Request) -> web.StreamResponse:
    """POST /login/totp: a code (or a recovery code) turns the pending sign-in into a session."""
    form = await request.post()
    cookie_token = request.cookies.get(sessions.CSRF_COOKIE)
    if not same_secret(cookie_token, text_field(form, sessions.CSRF_FIELD)):
        return _code_form(request, sessions.new_csrf_token(), status=403,
                          error=gettext("The form had expired. Please enter the code again."))
    assert cookie_token is not None
    two_factor = request.app[TWO_FACTOR]
    pending = await two_factor.read_pending(request.cookies.get(PENDING_COOKIE))
    if pending is None:
        return _start_over(gettext("Sign in again: the two-step sign-in had expired."))
    decision = await code_attempt(request, pending.user_id)
    if not decision.allowed:
        response = _code_form(request, cookie_token, status=429, error=(
            gettext("Too many codes tried. Try again in {n} seconds.").format(
                n=decision.retry_after)))
        response.headers.update(decision.headers())
        return response
    if not await two_factor.check(pending.user_id, text_field(form, "code")):
        return _code_form(request, cookie_token,
                          error=gettext("That code is not right (or was used already)."))
    response = await signed_in(request, pending.user_id, pending.next, "totp")
    response.del_cookie(PENDING_COOKIE, path="/")
    return response


async def code_attempt(request: web.Request, user_id: int) -> Decision:
    """Count one two-factor code tried, per client IP and per user (`two_factor` bucket)."""
    ip_key = rate_limit_key(request_client_ip(request, request.app[TRUSTED_PROXIES]))
    return await request.app[LIMITER].check_all(
        [("two_factor", ip_key), ("two_factor", user_rate_key(user_id))])


async def signed_in(request: web.Request, user_id: int, next_path: str,
                    method: sessions.Method) -> web.Response:
    """Start a fresh session for `user_id`, recording how it signed in (password, code,
    single sign-on or sign-up), and go on."""
    settings = request.app[SETTINGS]
    days = settings.server.session_days
    cookie, session = await sessions.start(
        request.app[DB], user_id, timedelta(days=days), method=method,
        user_agent=request.headers.get("User-Agent", ""),
        ip=request_client_ip(request, request.app[TRUSTED_PROXIES]))
    if session.must_enrol(settings.auth.require_totp_for_admins):
        response = redirect("/account")
        flash(response, gettext("Admins must use two-factor sign-in here: set it up to go on."),
              "error")
    else:
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
                      gettext("Sign-out needs the form's CSRF token; use the Sign out button.")},
                      session=session, status=403)
    await sessions.end(request.app[DB], request.cookies.get(sessions.COOKIE))
    response = redirect("/")
    response.del_cookie(sessions.COOKIE, path="/")
    return response


ROUTES = [
    web.get("/login", login_page),
    web.post("/login", login),
    web.get("/login/totp", code_page),
    web.post("/login/totp", check_code),
    web.get("/logout", logout_page),
    web.post("/logout", logout),
]
