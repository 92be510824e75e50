"""Templates of the web UI: the Jinja environment, its filters, and rendering a page.

Every HTML response carries a strict Content-Security-Policy (no inline
scripts anywhere in the UI), so markup that slipped past autoescaping still
could not run.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any, Final

import jinja2
from aiohttp import web

from pichub.config import Settings
from pichub.errors import PichubError
from pichub.imaging.spec import sign
from pichub.keys import JINJA
from pichub.models.images import ExifSummary
from pichub.services.sessions import Session
from pichub.timeutil import parse_iso
from pichub.web.ui import i18n
from pichub.web.ui.assets import Assets
from pichub.web.ui.forms import FLASH_COOKIE, read_flash

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


def _load_template(name: str) -> str | None:
    if ".." in name.split("/"):
        return None
    entry = resources.files("pichub") / "templates"
    for part in name.split("/"):
        entry = entry / part
    return entry.read_text(encoding="utf-8") if entry.is_file() else None


def filesize(size: int) -> str:
    """`1536` → `1.5 KB`, the number written the locale's way."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{i18n.decimal(value, '#,##0' if unit == 'B' else '#,##0.0')} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(stamp: str | None) -> str:
    """`2026-11-27T06:50:33Z` → `2026-11-27 06:50 UTC` (the ISO value goes in `datetime`)."""
    if not stamp:
        return "—"
    return i18n.moment(parse_iso(stamp[:19] + "Z"))


def camera(exif: ExifSummary) -> str:
    """Make and model as one name, the make once (`Canon` + `Canon EOS R5`)."""
    make, model = exif.make or "", exif.model or ""
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return f"{make} {model}".strip()


def taken(stamp: str) -> str:
    """`2024-05-01T10:00:00+02:00` → `2024-05-01 10:00 (UTC+02:00)`: the camera's local time."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    zone = f" (UTC{stamp[19:]})" if moment.tzinfo else ""
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def exposure(seconds: float) -> str:
    """0.004 → `1/250 s`; 2.5 → `2.5 s`."""
    if seconds < 1 and abs(1 / seconds - round(1 / seconds)) < 0.05:
        return f"1/{round(1 / seconds)} s"
    return f"{seconds:g} s"


def variant_urls(signing_key: str | None) -> Callable[..., str]:
    """`variant(id, w=400)` → `/img/{id}.webp?w=400`, signed when `images.signing_key` is set."""

    def variant(image_id: str, **params: int | str) -> str:
        path = f"/img/{image_id}.webp"
        query = {name: str(value) for name, value in params.items()}
        if signing_key:
            query["s"] = sign(path, query, signing_key)
        return f"{path}?{urllib.parse.urlencode(query)}"

    return variant


#: The dashboard's expiry picker (seconds from now, label), for image edits, uploads and
#: signed links alike; the forms accept nothing else.
EXPIRY_CHOICES: Final = ((3600, i18n.N_("1 hour")), (86400, i18n.N_("1 day")),
                         (7 * 86400, i18n.N_("7 days")), (30 * 86400, i18n.N_("30 days")))
#: How long the signed links a private image's card copies may work.
LINK_CHOICES: Final = EXPIRY_CHOICES[:3]


def make_env(assets: Assets, settings: Settings) -> jinja2.Environment:
    """Jinja with autoescaping on for everything and undefined names as errors."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # `_()` in templates reads the request's locale (i18n.locale_middleware); newstyle:
    # `_("%(n)s images", n=count)` formats and escapes its arguments.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True)
    env.globals["html_lang"] = i18n.html_lang
    env.globals["js_messages"] = i18n.js_messages
    env.globals["languages"] = [(i18n.LANGUAGES[name], native)
                                for name, native in i18n.NATIVE_NAMES.items()]
    key = settings.images.signing_key
    env.globals["static"] = assets.url
    env.globals["variant"] = variant_urls(key.get_secret_value() if key else None)
    env.globals["registration"] = settings.auth.registration  # the login page's sign-up link
    env.globals["expiry_choices"] = EXPIRY_CHOICES
    env.globals["link_choices"] = LINK_CHOICES
    env.filters["filesize"] = filesize
    env.filters["when"] = when
    env.filters["number"] = i18n.number
    env.filters["camera"] = camera
    env.filters["taken"] = taken
    env.filters["exposure"] = exposure
    return env


def render(request: web.Request, template: str, context: dict[str, Any], *,
           session: Session | None = None, status: int = 200,
           csrf_token: str | None = None) -> web.Response:
    """An HTML page; `session` gives the nav its user and the forms their CSRF token."""
    flash = read_flash(request)
    values = {"user": session, "flash": flash, "path": request.path,
              "csrf_token": csrf_token or (session.csrf_token if session else ""),
              # where the language switcher goes back to: an error page's path could name
              # something the page does not admit exists, so that one goes home
              "lang_next": request.path if status < 400 else "/", **context}
    html = request.app[JINJA].get_template(template).render(values)
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store" if session else "no-cache"
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


def error_page(request: web.Request, exc: PichubError, session: Session | None) -> web.Response:
    message = i18n.error_text(exc.message)
    response = render(request, "error.html", {"status": exc.status, "message": message},
                      session=session, status=exc.status)
    response.headers.update(exc.headers)
    return response
