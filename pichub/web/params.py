"""The one parser for ids and page numbers taken from URLs, query strings and forms.

Every string gets an answer a client can act on, never a 500: a path id that
is not an integer PicHub could have issued is a 404 of that resource; a bad
page number of the API is a 422; HTML pages fall back to page 1. Only ASCII
digits count (`²` or `١٢` are not numbers here, though Python's `int` takes
some of them), and values are bounded so they always fit SQLite's integers.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from pichub.errors import NotFound, ValidationError
from pichub.models.base import MAX_ROW_ID, parse_int
from pichub.services.common import PageRequest

#: The highest page number accepted: offsets stay far inside SQLite's 64-bit integers.
MAX_PAGE = 1_000_000_000
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def row_id(raw: str, what: str) -> int:
    """An integer id from a URL (`/albums/{id}`): 404 `what` unless it is 1..2^63-1."""
    value = parse_int(raw)
    if value is None or not 1 <= value <= MAX_ROW_ID:
        raise NotFound(what)
    return value


def path_id(request: web.Request, what: str) -> int:
    """`row_id` of the route's `{id}`."""
    return row_id(request.match_info["id"], what)


def _bounded(name: str, raw: str, low: int, high: int) -> int:
    value = parse_int(raw)
    if value is None:
        raise ValidationError.field(name, "must be an integer")
    if not low <= value <= high:
        raise ValidationError.field(name, f"must be between {low} and {high}")
    return value


def pagination(query: Mapping[str, str]) -> PageRequest:
    """The page an API list asks for: `per_page` 1..100 (default 20) and either `cursor`
    (a list's `next_cursor`/`prev_cursor`; it wins over `page`) or `page` 1..MAX_PAGE;
    else 422."""
    per_page = _bounded("per_page", query.get("per_page", str(DEFAULT_PER_PAGE)), 1,
                        MAX_PER_PAGE)
    cursor = query.get("cursor", "")
    if cursor:
        return PageRequest(per_page, cursor=cursor)
    return PageRequest(per_page, _bounded("page", query.get("page", "1"), 1, MAX_PAGE))


def html_page(query: Mapping[str, str], per_page: int) -> PageRequest:
    """The page an HTML list asks for: `?cursor=` (its pager's links), else `?page=`."""
    cursor = query.get("cursor", "")
    if cursor:
        return PageRequest(per_page, cursor=cursor)
    return PageRequest(per_page, page_number(query))


def query_id(query: Mapping[str, str], name: str, what: str) -> int | None:
    """An optional id filter (`?album_id=`): absent or empty → None; not an integer → 422;
    an integer no row can have → 404 `what`."""
    raw = query.get(name, "")
    if raw.strip() == "":
        return None
    value = parse_int(raw)
    if value is None:
        raise ValidationError.field(name, "must be an integer")
    if not 1 <= value <= MAX_ROW_ID:
        raise NotFound(what)
    return value


def page_number(query: Mapping[str, str]) -> int:
    """`?page=` of an HTML list: anything that is not a page number is page 1."""
    value = parse_int(query.get("page", "1"))
    return value if value is not None and 1 <= value <= MAX_PAGE else 1

