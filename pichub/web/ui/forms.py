"""Forms of the web UI: reading fields, where to go next, one-time messages, pagination."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from multidict import MultiDictProxy

from pichub.errors import ValidationError
from pichub.models.common import Meta
from pichub.services.common import Page, PageRequest
from pichub.web.params import html_page

T = TypeVar("T")

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


async def paged(request: web.Request, per_page: int,
                read: Callable[[PageRequest], Awaitable[Page[T]]]) -> tuple[Page[T], Pager]:
    """The page of a list the query asks for (`?cursor=` of the pager's links, or an old
    `?page=` link) and its pager; a mangled cursor shows the first page."""
    try:
        listed = await read(html_page(request.query, per_page))
    except ValidationError:
        listed = await read(PageRequest(per_page))
    return listed, pager(request, listed.meta)


def pager(request: web.Request, meta: Meta) -> Pager:
    """Newer/older links of a list page by cursor, keeping the other query parameters."""

    def link(cursor: str | None) -> str | None:
        if cursor is None:
            return None
        query = {k: v for k, v in request.query.items() if k not in ("page", "cursor")}
        return request.path + "?" + urllib.parse.urlencode({**query, "cursor": cursor})

    return Pager(meta.page, meta.total_pages, meta.total, link(meta.prev_cursor),
                 link(meta.next_cursor))


@dataclass(frozen=True)
class Pager:
    """What the `pager` macro shows: `page` is None on pages reached by cursor."""

    page: int | None
    pages: int
    total: int
    prev: str | None
    next: str | None
