"""What several services share: a page of results, asked for by number or by cursor.

A cursor is opaque to clients: URL-safe base64 of `[o, key…]`, where `o` is 1 for
the page older than `key` and 0 for the page newer than it (db.keyset). Anything
that does not decode to a key of the list's shape is a 422 of `cursor`, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pichub.db.database import Database, Row
from pichub.db.keyset import Key, Listing, Position
from pichub.errors import ValidationError
from pichub.models.common import Meta

T = TypeVar("T")

#: Longer strings are not cursors PicHub made (a key is a timestamp and an integer).
MAX_CURSOR_CHARS = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first, and where it sits in the whole."""

    items: list[T]
    meta: Meta


@dataclass(frozen=True)
class PageRequest:
    """Which page to read: number `page` (1-based) or, when `cursor` is set, the page it
    points at (`page` is then ignored)."""

    per_page: int
    page: int = 1
    cursor: str | None = None


def encode_cursor(position: Position) -> str:
    raw = json.dumps([int(position.older), *position.key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, shape: tuple[type, ...]) -> Position:
    """The position `text` encodes, if its key has `shape` (the types of the list's key)."""
    invalid = ValidationError.field("cursor", "is not a cursor of this list")
    if len(text) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(value, list) or len(value) != len(shape) + 1 or value[0] not in (0, 1):
        raise invalid
    key = value[1:]
    # bool is an int to Python, never part of a key
    if any(type(part) is not kind for part, kind in zip(key, shape, strict=True)):
        raise invalid
    return Position(older=value[0] == 1, key=tuple(key))


async def read_page(db: Database, listing: Listing, shape: tuple[type, ...],
                    request: PageRequest, total: int,
                    build: Callable[[Row], T]) -> Page[T]:
    """The page `request` asks for of `listing` (whose key has types `shape`), with its
    meta: `total` comes from a stored counter, the cursors from the page's ends."""
    position = None if request.cursor is None else decode_cursor(request.cursor, shape)
    offset = 0 if position is not None else (request.page - 1) * request.per_page
    window = await listing.window(db, request.per_page, offset=offset, position=position)

    def cursor(row: Row, older: bool) -> str:
        key: Key = listing.key_of(row)
        return encode_cursor(Position(older, key))

    rows = window.rows
    meta = Meta.of(
        None if position is not None else request.page, request.per_page, total,
        next_cursor=cursor(rows[-1], True) if window.older else None,
        prev_cursor=cursor(rows[0], False) if window.newer else None,
    )
    return Page([build(row) for row in rows], meta)
