"""The sign-up page (`/signup`, `/signup?invite=…`), as `auth.registration` allows.

- `closed`: the page does not exist (404, like any unknown page).
- `invite`: only with an invite link (without one: 404); a used, revoked or expired one gets
  a page saying so (403).
- `open`: anyone; each attempt without an invite counts against `rate_limits.signup` per
  client IP (an invite is its own limit).

Like the login form, the form is protected by a double-submit CSRF cookie (there is no
session yet). The rules are `services.registration`'s (those of `accounts.create_user`, and
the invite used up in the account's own transaction). A new account is signed in at once.
"""

from __future__ import annotations

from aiohttp import web

from pichub.errors import Forbidden, NotFound, ValidationError
from pichub.hashing import same_secret
from pichub.keys import CLOCK, DB, LIMITER, SETTINGS, TRUSTED_PROXIES
from pichub.services import registration, sessions
from pichub.web.clientip import rate_limit_key, request_client_ip
from pichub.web.ui.auth import signed_in
from pichub.web.ui.forms import redirect, text_field
from pichub.web.ui.guards import current_session, set_cookie
from pichub.web.ui.i18n import error_text, gettext
from pichub.web.ui.templates import error_page, render

PATH = registration.SIGNUP_PATH


def _mode(request: web.Request) -> registration.Mode:
    return request.app[SETTINGS].auth.registration


def _form(request: web.Request, token: str, invite: str, *, error: str = "",
          username: str = "", status: int = 200) -> web.Response:
    response = render(request, "signup.html", {"error": error, "username": username,
                                               "invite": invite}, csrf_token=token,
                      status=status)
    if request.cookies.get(sessions.CSRF_COOKIE) != token:
        set_cookie(request, response, sessions.CSRF_COOKIE, token)
    return response


async def signup_page(request: web.Request) -> web.StreamResponse:
    invite = request.query.get("invite", "")
    if not registration.may_sign_up(_mode(request), invite):
        raise NotFound("route")
    if await current_session(request) is not None:
        return redirect("/dashboard")
    if invite and await registration.usable_invite(request.app[DB], invite,
                                                   request.app[CLOCK]()) is None:
        return error_page(request, Forbidden(registration.INVALID), None)
    token = request.cookies.get(sessions.CSRF_COOKIE) or sessions.new_csrf_token()
    return _form(request, token, invite)


async def sign_up(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    invite = text_field(form, "invite")
    if not registration.may_sign_up(_mode(request), invite):
        raise NotFound("route")
    cookie_token = request.cookies.get(sessions.CSRF_COOKIE)
    if not same_secret(cookie_token, text_field(form, sessions.CSRF_FIELD)):
        return _form(request, sessions.new_csrf_token(), invite, status=403,
                     error=gettext("The sign-up form had expired. Please try again."))
    assert cookie_token is not None
    username = text_field(form, "username").strip()
    if not invite:
        ip_key = rate_limit_key(request_client_ip(request, request.app[TRUSTED_PROXIES]))
        decision = await request.app[LIMITER].check("signup", ip_key)
        if not decision.allowed:
            response = _form(request, cookie_token, invite, username=username, status=429,
                             error=gettext("Too many sign-ups from your address. Try again "
                                           "in {n} seconds.").format(n=decision.retry_after))
            response.headers.update(decision.headers())
            return response
    password = text_field(form, "password")
    try:
        if password != text_field(form, "confirm_password"):
            raise ValidationError(gettext("The two passwords differ."))
        user_id = await registration.sign_up(request.app[DB], _mode(request), username,
                                             password, invite or None, request.app[CLOCK]())
    except ValidationError as exc:
        return _form(request, cookie_token, invite, username=username, status=422,
                     error=error_text(exc.message))
    except Forbidden as exc:
        return error_page(request, exc, None)
    return await signed_in(request, user_id, "/dashboard", "signup")


ROUTES = [
    web.get(PATH, signup_page),
    web.post(PATH, sign_up),
]
