"""The web UI's languages: English and Simplified Chinese, gettext catalogues through Babel.

A page's locale comes from the `lang` cookie (set by the footer's switcher, `GET /lang/{code}`)
or else from `Accept-Language` (`zh`, `zh-CN`, `zh-Hans`, `zh-SG` → Simplified Chinese, anything
else → English). `locale_middleware` puts it in a context variable for the whole request, so
`gettext` (`_`) in a view (flash messages, form errors) and in templates (Jinja's i18n
extension) speak the same language. The JSON API never calls these: its messages stay English.

The catalogues are `pichub/locale/<locale>/LC_MESSAGES/messages.mo`, compiled from the
`.po` next to them (README: Language).
"""

from __future__ import annotations

import functools
import gettext as gettext_module
import io
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from importlib import resources
from typing import Final

from aiohttp import web
from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal

from pichub.web.ui.forms import redirect, safe_next

#: Locale (Babel spelling) → the code of `/lang/{code}`, the cookie and `<html lang>`.
LANGUAGES: Final = {"en": "en", "zh_CN": "zh-CN"}
#: Each language's own name, for the switcher.
NATIVE_NAMES: Final = {"en": "English", "zh_CN": "简体中文"}
DEFAULT: Final = "en"
COOKIE: Final = "lang"
_CHINESE: Final = ("zh", "zh-cn", "zh-hans", "zh-sg", "zh-hans-cn", "zh-hans-sg", "zh_cn")

_locale: ContextVar[str] = ContextVar("pichub_locale", default=DEFAULT)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.cache
def catalogue(locale: str) -> gettext_module.NullTranslations:
    """The compiled catalogue of `locale` from the package (English: the msgids themselves)."""
    if locale == DEFAULT:
        return gettext_module.NullTranslations()
    entry = resources.files("pichub") / "locale" / locale / "LC_MESSAGES" / "messages.mo"
    return gettext_module.GNUTranslations(io.BytesIO(entry.read_bytes()))


def current() -> str:
    """The locale of the request being served (`en` outside a request)."""
    return _locale.get()


def gettext(message: str) -> str:
    return catalogue(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalogue(current()).ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction only")
    """Marks a constant for extraction; translate it where it is shown with `gettext`."""
    return message


#: What app.js and upload.js show; a page carries their translations (base.html's
#: `pichub-messages` meta, read by `PicHub.t` in app.js: no inline script under the CSP).
JS_MESSAGES: Final = (
    N_("Copied!"), N_("Press Ctrl+C"), N_("Failed — try again"), N_("Upload progress of {name}"),
    N_("Waiting…"), N_("Rate limited, retrying in {n} s…"), N_("Uploaded"), N_("Uploading…"),
    N_("Processing…"), N_("Fetching…"), N_("Network error"), N_("Failed (HTTP {status})"),
    N_("Larger than {mb} MB"),
)


#: Messages of the services (no gettext below the web layer) that pages show as they are: an
#: error page, a form's error, a flash. `error_text` translates these; any other message (a
#: field's validation detail, say) is shown in English.
SERVICE_MESSAGES: Final = (
    N_("Resource not found"), N_("Image not found"), N_("Album not found"),
    N_("User not found"), N_("Webhook not found"), N_("Token not found"),
    N_("Session not found"), N_("Invite not found"), N_("Delete link not found"),
    N_("Route not found"), N_("Client not found"), N_("File not found"),
    N_("Image has expired"), N_("Insufficient permissions"), N_("Internal server error"),
    N_("Request data validation failed"), N_("Not signed in"),
    N_("Missing or invalid CSRF token"), N_("Set up two-factor sign-in first (Account page)"),
    N_("This album needs its password"), N_("The password is not right."),
    N_("The current password is not right."),
    N_("Two-factor sign-in is on already; turn it off first."),
    N_("There is no two-factor set-up waiting for a code."),
    N_("Sign-up here needs an invite link."),
    N_("This invite link cannot be used: it was used already, revoked, or it has expired. "
       "Ask for a new one."),
    N_("username: already taken"), N_("username: 1-64 letters, digits, '_', '.' or '-'"),
    N_("password: at least 8 characters"), N_("new_password: at least 8 characters"),
)


def error_text(message: str) -> str:
    """A service's message in the page's language when the catalogue knows it."""
    return gettext(message) if message in SERVICE_MESSAGES else message


def js_messages() -> dict[str, str]:
    """English → the request's language, for the scripts (empty in English)."""
    if current() == DEFAULT:
        return {}
    return {message: gettext(message) for message in JS_MESSAGES}


def _from_code(code: str) -> str | None:
    code = code.strip().lower()
    if code in _CHINESE:
        return "zh_CN"
    if code == "en" or code.startswith("en-"):
        return "en"
    return None


def negotiate(request: web.Request) -> str:
    """The `lang` cookie if it names a language, else the best of `Accept-Language`."""
    chosen = _from_code(request.cookies.get(COOKIE, ""))
    if chosen:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(request.headers.get("Accept-Language", "").split(",")):
        code, _, params = item.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, index, code.strip()))
    for quality, _index, code in sorted(ranked):
        if quality < 0 and (found := _from_code(code)):
            return found
    return DEFAULT


@web.middleware
async def locale_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pages, flash messages and form errors in the request's language; /api/ stays English."""
    if request.path.startswith("/api/"):
        return await handler(request)
    token = _locale.set(negotiate(request))
    try:
        return await handler(request)
    finally:
        _locale.reset(token)


async def switch(request: web.Request) -> web.Response:
    """`GET /lang/{code}?next=/path`: remember the language in a cookie and go back."""
    code = request.match_info["code"]
    locale = next((name for name, known in LANGUAGES.items() if known.lower() == code.lower()),
                  None)
    if locale is None:
        raise web.HTTPNotFound()
    response = redirect(safe_next(request.query.get("next"), "/"))
    response.set_cookie(COOKIE, LANGUAGES[locale], path="/", max_age=365 * 86400,
                        samesite="Lax")
    return response


ROUTES: Final = [web.get("/lang/{code}", switch)]


# Jinja filters: dates and numbers per locale.

def html_lang() -> str:
    return LANGUAGES[current()]


def number(value: float) -> str:
    """A count: `12,345` in either language."""
    return format_decimal(value, locale=Locale.parse(current()))


def decimal(value: float, pattern: str = "#,##0.0") -> str:
    return format_decimal(value, format=pattern, locale=Locale.parse(current()))


def moment(value: datetime) -> str:
    """A UTC time: `2026-11-27 06:50 UTC` / `2026年11月27日 06:50 UTC`."""
    pattern = "yyyy-MM-dd HH:mm" if current() == DEFAULT else "yyyy年M月d日 HH:mm"
    return format_datetime(value, pattern, tzinfo=UTC, locale=Locale.parse(current())) + " UTC"
