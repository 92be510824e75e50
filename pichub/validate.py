"""Field rules shared by forms and JSON bodies; each failure names its field (422)."""

from __future__ import annotations

import re
from typing import Any

from pichub.errors import ValidationError

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_INTEGER = re.compile(r"[+-]?[0-9]{1,100}", re.ASCII)
#: The largest id SQLite can store (a bigger one could name no row).
MAX_ROW_ID = 2**63 - 1


def parse_int(raw: str) -> int | None:
    """The integer written in ASCII digits (optional sign, surrounding spaces), else None.

    Python's `int()` also takes other scripts' digits (`'١٢'` is 12) and `'²'.isdigit()`
    is true though `int('²')` fails; neither is a number in a URL or a form here.
    """
    text = raw.strip()
    return int(text) if _INTEGER.fullmatch(text) else None


class Problems:
    """Collects every bad field, so one 422 lists them all."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise ValidationError(f"{first['field']}: {first['message']}", self.items)


def form_bool(problems: Problems, fields: dict[str, str], name: str, default: bool) -> bool:
    raw = fields.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    problems.add(name, "must be true, false, 1 or 0")
    return default


def form_int(problems: Problems, fields: dict[str, str], name: str, default: int | None,
             low: int, high: int) -> int | None:
    raw = fields.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = parse_int(raw)
    if value is None:
        problems.add(name, "must be an integer")
        return default
    if not low <= value <= high:
        problems.add(name, f"must be between {low} and {high}")
        return default
    return value


def json_bool(problems: Problems, body: dict[str, Any], name: str) -> bool | None:
    if name not in body:
        return None
    value = body[name]
    if isinstance(value, bool):
        return value
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    problems.add(name, "must be a boolean")
    return None


def json_text(problems: Problems, body: dict[str, Any], name: str, *, low: int, high: int,
              nullable: bool = False) -> str | None:
    if name not in body:
        return None
    value = body[name]
    if value is None and nullable:
        return ""
    if not isinstance(value, str):
        problems.add(name, "must be a string")
        return None
    if not low <= len(value.strip() if low else value) <= high:
        problems.add(name, f"must be {low}-{high} characters")
        return None
    return value.strip() if low else value


def json_int(problems: Problems, body: dict[str, Any], name: str) -> tuple[bool, int | None]:
    """(present, value) for a nullable integer field."""
    if name not in body:
        return False, None
    value = body[name]
    if value is None:
        return True, None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(name, "must be an integer or null")
        return False, None
    return True, value
