"""Forms of the web UI: reading fields, where to go next, one-time messages, pagination."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

FLASH_COOKIE = "pichub_flash"
_SAFE_PATH = re.compile(r"/[!-\[\]-~]*", re.ASCII)  # printable ASCII, no space or backslash
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


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


def read_flash(request: web.Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(urllib.parse.unquote(raw))
        return {"kind": str(value["kind"]), "text": str(value["text"])}
    except (ValueError, KeyError, TypeError):
        return None


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
