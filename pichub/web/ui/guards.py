"""Who may use a page of the web UI: sessions, cookies and CSRF checks, as decorators.

Views come in three kinds, each wrapped by one decorator here:

- `page`: a GET that needs a signed-in user (else a redirect to `/login`);
- `action`: a state-changing form POST: signed-in user and a valid
  `csrf_token` field, else 403; a `PichubError` raised by the view becomes a
  flash message and a redirect back (post/redirect/get);
- `xhr`: a state-changing fetch/XHR: signed-in user and a valid `X-CSRF-Token`
  header, else the JSON error envelope (401/403) like the API.

With `auth.require_totp_for_admins`, an admin whose two-factor sign-in is off
reaches only the account pages (`/account…`) until it is on, unless the session came
through single sign-on (`Session.must_enrol`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from pichub.errors import Forbidden, PichubError, Unauthorized
from pichub.hashing import same_secret
from pichub.keys import DB, SETTINGS, TRUSTED_PROXIES
from pichub.services import sessions
from pichub.services.sessions import Session
from pichub.web.clientip import forwarded_base_url
from pichub.web.ui.forms import Form, flash, redirect, safe_next
from pichub.web.ui.i18n import error_text, gettext
from pichub.web.ui.templates import error_page

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PageView = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
ActionView = Callable[[web.Request, Session, Form], Awaitable[web.StreamResponse]]


def is_https(request: web.Request) -> bool:
    """Did the browser use HTTPS (directly, or to a trusted proxy that says so)?"""
    base = forwarded_base_url(request.scheme, request.host, request.remote, request.headers,
                              request.app[TRUSTED_PROXIES], None)
    return base.startswith("https://")


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               max_age: int | None = None) -> None:
    """HttpOnly + SameSite=Lax, and Secure whenever the browser is on HTTPS."""
    response.set_cookie(name, value, path="/", httponly=True, samesite="Lax",
                        secure=is_https(request), max_age=max_age)


async def current_session(request: web.Request) -> Session | None:
    return await sessions.lookup(request.app[DB], request.cookies.get(sessions.COOKIE))


def _forbidden(request: web.Request, session: Session | None) -> web.Response:
    text = (gettext("The form was stale or forged (missing or wrong CSRF token). Reload the "
                    "page and try again.") if session
            else gettext("Your session has ended. Sign in again."))
    return error_page(request, Forbidden(text), session)


ENROL_PAGE = "/account"


def must_enrol(request: web.Request, session: Session) -> bool:
    """An admin without two-factor sign-in where it is required, outside the account pages."""
    return (session.must_enrol(request.app[SETTINGS].auth.require_totp_for_admins)
            and not request.path.startswith(ENROL_PAGE))


def _to_enrolment() -> web.Response:
    response = redirect(ENROL_PAGE)
    flash(response, gettext("Admins must use two-factor sign-in here: set it up to go on."),
          "error")
    return response


def page(view: PageView) -> Handler:
    """A GET page for signed-in users; others go to `/login?next=…`."""

    @wraps(view)
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None:
            return redirect("/login?next=" + urllib.parse.quote(request.path_qs, safe=""))
        if must_enrol(request, session):
            return _to_enrolment()
        try:
            return await view(request, session)
        except PichubError as exc:
            return error_page(request, exc, session)

    return handler


def action(default_back: str) -> Callable[[ActionView], Handler]:
    """A form POST: session + CSRF field checked; errors flash and go back (form's `next`)."""

    def decorate(view: ActionView) -> Handler:
        @wraps(view)
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            form = await request.post()
            given = form.get(sessions.CSRF_FIELD)
            if session is None or not same_secret(
                    session.csrf_token, given if isinstance(given, str) else None):
                return _forbidden(request, session)
            if must_enrol(request, session):
                return _to_enrolment()
            try:
                return await view(request, session, form)
            except PichubError as exc:
                response = redirect(safe_next(form.get("next"), default_back))
                flash(response, error_text(exc.message), "error")
                return response

        return handler

    return decorate


def xhr(view: PageView) -> Handler:
    """A state-changing XHR: session + `X-CSRF-Token` header, else the JSON 401/403 envelope."""

    @wraps(view)
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None:
            raise Unauthorized("Not signed in", "Sign in again to continue")
        if not same_secret(session.csrf_token,
                                     request.headers.get(sessions.CSRF_HEADER)):
            raise Forbidden("Missing or invalid CSRF token")
        if must_enrol(request, session):
            raise Forbidden("Set up two-factor sign-in first (Account page)")
        return await view(request, session)

    return handler
