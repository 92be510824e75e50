"""What every web UI view shares: templates, sessions, CSRF checks, flash messages.

Views come in three kinds, each wrapped by one decorator here:

- `page`: a GET that needs a signed-in user (else a redirect to `/login`);
- `action`: a state-changing form POST: signed-in user and a valid
  `csrf_token` field, else 403; a `PichubError` raised by the view becomes a
  flash message and a redirect back (post/redirect/get);
- `xhr`: a state-changing fetch/XHR: signed-in user and a valid `X-CSRF-Token`
  header, else the JSON error envelope (401/403) like the API.

Every HTML response carries a strict Content-Security-Policy (no inline
scripts anywhere in the UI), so markup that slipped past autoescaping still
could not run.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from pichub.config import Settings
from pichub.errors import Forbidden, PichubError, Unauthorized
from pichub.hashing import same_secret
from pichub.imaging.spec import sign
from pichub.keys import DB, JINJA, TRUSTED_PROXIES
from pichub.services import sessions
from pichub.services.sessions import Session
from pichub.timeutil import parse_iso
from pichub.web.clientip import forwarded_base_url
from pichub.web.ui.assets import Assets

FLASH_COOKIE = "pichub_flash"
_SAFE_PATH = re.compile(r"/[!-\[\]-~]*", re.ASCII)  # printable ASCII, no space or backslash
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PageView = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
ActionView = Callable[[web.Request, Session, Form], Awaitable[web.StreamResponse]]


# --- templates -------------------------------------------------------------------------------


def _load_template(name: str) -> str | None:
    if ".." in name.split("/"):
        return None
    entry = resources.files("pichub") / "templates"
    for part in name.split("/"):
        entry = entry / part
    return entry.read_text(encoding="utf-8") if entry.is_file() else None


def filesize(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(stamp: str | None) -> str:
    """`2026-11-27T06:50:33Z` → `2026-11-27 06:50 UTC` (the ISO value goes in `datetime`)."""
    if not stamp:
        return "—"
    moment: datetime = parse_iso(stamp[:19] + "Z")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def variant_urls(signing_key: str | None) -> Callable[..., str]:
    """`variant(id, w=400)` → `/img/{id}.webp?w=400`, signed when `images.signing_key` is set."""

    def variant(image_id: str, **params: int | str) -> str:
        path = f"/img/{image_id}.webp"
        query = {name: str(value) for name, value in params.items()}
        if signing_key:
            query["s"] = sign(path, query, signing_key)
        return f"{path}?{urllib.parse.urlencode(query)}"

    return variant


def make_env(assets: Assets, settings: Settings) -> jinja2.Environment:
    """Jinja with autoescaping on for everything and undefined names as errors."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    key = settings.images.signing_key
    env.globals["static"] = assets.url
    env.globals["variant"] = variant_urls(key.get_secret_value() if key else None)
    env.filters["filesize"] = filesize
    env.filters["when"] = when
    return env


def render(request: web.Request, template: str, context: dict[str, Any], *,
           session: Session | None = None, status: int = 200,
           csrf_token: str | None = None) -> web.Response:
    """An HTML page; `session` gives the nav its user and the forms their CSRF token."""
    flash = _read_flash(request)
    values = {"user": session, "flash": flash, "path": request.path,
              "csrf_token": csrf_token or (session.csrf_token if session else ""), **context}
    html = request.app[JINJA].get_template(template).render(values)
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store" if session else "no-cache"
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


def error_page(request: web.Request, exc: PichubError, session: Session | None) -> web.Response:
    response = render(request, "error.html", {"status": exc.status, "message": exc.message},
                      session=session, status=exc.status)
    response.headers.update(exc.headers)
    return response


# --- redirects and flash messages --------------------------------------------------------------


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs `location`."""
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: object, default: str) -> str:
    """A same-site path to go to next; anything else → `default`.

    Browsers drop tabs and newlines inside URLs and read `\\` as `/`, so
    `/\t/evil.example` or `/\\evil.example` would become `//evil.example`, another
    site: only a plain path made of printable ASCII without backslashes passes.
    """
    if not isinstance(value, str) or not _SAFE_PATH.fullmatch(value):
        return default
    if value.startswith("//") or urllib.parse.urlsplit(value).netloc:
        return default
    return value


def flash(response: web.StreamResponse, text: str, kind: str = "ok") -> None:
    """A one-time message shown by the next page rendered."""
    value = urllib.parse.quote(json.dumps({"kind": kind, "text": text[:300]}))
    response.set_cookie(FLASH_COOKIE, value, path="/", httponly=True, samesite="Lax")


def _read_flash(request: web.Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(urllib.parse.unquote(raw))
        return {"kind": str(value["kind"]), "text": str(value["text"])}
    except (ValueError, KeyError, TypeError):
        return None


# --- sessions and CSRF ---------------------------------------------------------------------------


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
    text = ("The form was stale or forged (missing or wrong CSRF token). Reload the page and "
            "try again." if session else "Your session has ended. Sign in again.")
    return error_page(request, Forbidden(text), session)


def page(view: PageView) -> Handler:
    """A GET page for signed-in users; others go to `/login?next=…`."""

    @wraps(view)
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None:
            return redirect("/login?next=" + urllib.parse.quote(request.path_qs, safe=""))
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
            try:
                return await view(request, session, form)
            except PichubError as exc:
                response = redirect(safe_next(form.get("next"), default_back))
                flash(response, exc.message, "error")
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
        return await view(request, session)

    return handler


def text_field(form: Form, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default


def pager(request: web.Request, page_no: int, per_page: int, total: int) -> dict[str, Any]:
    """Previous/next links of a paginated page, keeping the other query parameters."""
    pages = max(1, (total + per_page - 1) // per_page)

    def link(number: int) -> str | None:
        if not 1 <= number <= pages:
            return None
        query = {**request.query, "page": str(number)}
        return request.path + "?" + urllib.parse.urlencode(query)

    return {"page": page_no, "pages": pages, "total": total,
            "prev": link(page_no - 1), "next": link(page_no + 1)}
