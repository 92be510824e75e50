"""Shared pieces of the models: the base class, field rules with PicHub's messages, `validate`.

Messages are PicHub's own ("must be an integer", "must be 1-100 characters"),
not pydantic's, and every bad field is reported at once in the 422 `details`
shape `[{"field", "message"}]`. A rule is a `Checked` annotation: its check
runs before pydantic's own validation (so pydantic never words an error
itself) and its JSON Schema keywords are what the OpenAPI document shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from pichub.errors import ValidationError

M = TypeVar("M", bound=BaseModel)
_INTEGER = re.compile(r"[+-]?[0-9]{1,100}", re.ASCII)
#: The largest id SQLite can store (a bigger one could name no row).
MAX_ROW_ID: Final = 2**63 - 1
TIMESTAMP_EXAMPLE: Final = "2026-11-27T06:50:33Z"


class SchemaGenerator(GenerateJsonSchema):
    """JSON Schema as the API documents it: no `default: null` on fields that may simply
    be left out (a null there would be refused), no per-field titles."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None:
            del json_schema["default"]
        return json_schema

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


class Model(BaseModel):
    """Base of every request and response body; unknown input keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def parse_int(raw: str) -> int | None:
    """The integer written in ASCII digits (optional sign, surrounding spaces), else None.

    Python's `int()` also takes other scripts' digits (`'١٢'` is 12) and `'²'.isdigit()`
    is true though `int('²')` fails; neither is a number in a URL or a form here.
    """
    text = raw.strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def problem(message: str) -> PydanticCustomError:
    """A validation failure with exactly `message` as the client's text."""
    return PydanticCustomError("pichub", message)


@dataclass(frozen=True)
class Checked:
    """`Annotated` metadata: `check(value)` runs first and returns the value to use (or
    raises `problem`); `schema` is merged into (or, with `replace`, is) the JSON Schema."""

    check: Callable[[Any], Any]
    schema: tuple[tuple[str, Any], ...] = ()
    replace: bool = False

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        extra = dict(self.schema)
        return extra if self.replace else {**handler(schema), **extra}


# --- rules for JSON bodies -------------------------------------------------------------------

def Text(low: int, high: int, *, strip: bool = False, nullable: bool = False) -> Checked:  # noqa: N802
    """A string of `low`..`high` characters (stripped first when `strip`); with `nullable`
    an explicit null is read as "" (it clears the field)."""

    def check(value: object) -> str:
        if value is None and nullable:
            return ""
        if not isinstance(value, str):
            raise problem("must be a string")
        measured = value.strip() if strip else value
        if not low <= len(measured) <= high:
            raise problem(f"must be at most {high} characters" if low == 0
                          else f"must be {low}-{high} characters")
        return measured

    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string",
                              "maxLength": high} | ({"minLength": low} if low else {})
    return Checked(check, tuple(schema.items()), replace=True)


def _strict_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)  # the seed's clients send is_public: 1
    raise problem("must be a boolean")


#: true/false (or 1/0, as the seed's clients send); null and strings are refused.
BOOLEAN = Checked(_strict_bool, (("type", "boolean"),), replace=True)


def _id_or_null(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise problem("must be an integer or null")
    return value


#: An id or null; any integer passes (one that names no row is simply not found: 404).
ID_OR_NULL = Checked(_id_or_null, (("type", ["integer", "null"]),), replace=True)


# --- rules for multipart form fields (always strings) --------------------------------------

_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


def FormBool(default: bool) -> Checked:  # noqa: N802
    """true/false/1/0 in any case; empty → `default`."""

    def check(value: object) -> bool:
        raw = str(value).strip().lower()
        if raw == "":
            return default
        if raw in _TRUE or raw in _FALSE:
            return raw in _TRUE
        raise problem("must be true, false, 1 or 0")

    return Checked(check, (("type", "boolean"), ("default", default)), replace=True)


def FormInt(low: int | None = None, high: int | None = None) -> Checked:  # noqa: N802
    """An integer (in `low`..`high` when given); empty → None (the default applies)."""

    def check(value: object) -> int | None:
        raw = str(value)
        if raw.strip() == "":
            return None
        number = parse_int(raw)
        if number is None:
            raise problem("must be an integer")
        if low is not None and high is not None and not low <= number <= high:
            raise problem(f"must be between {low} and {high}")
        return number

    bounds = {k: v for k, v in (("minimum", low), ("maximum", high)) if v is not None}
    return Checked(check, (("type", "integer"), *bounds.items()), replace=True)


def FormChoice(choices: Mapping[str, str | None], default: str) -> Checked:  # noqa: N802
    """One of `choices`, in any case; empty → `default`. The value is what it maps to."""
    allowed = ", ".join(choices)

    def check(value: object) -> str | None:
        raw = str(value).strip().lower() or default
        if raw not in choices:
            raise problem(f"must be {allowed}" if len(choices) < 3
                          else f"must be one of {allowed}")
        return choices[raw]

    return Checked(check, (("type", "string"), ("enum", list(choices)), ("default", default)),
                   replace=True)


def changes(body: BaseModel, fields: str) -> dict[str, Any]:
    """The fields a PATCH body sets (an explicit null included); 422 when it sets none."""
    found = body.model_dump(exclude_unset=True)
    if not found:
        raise ValidationError.field("body", f"nothing to change: send {fields}")
    return found


# --- validation entry point -----------------------------------------------------------------

_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "int_type": "must be an integer",
    "list_type": "must be a list",
}


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "pichub":
        return str(error["msg"])
    return _MESSAGES.get(error["type"], str(error["msg"]).lower())


def validate(model: type[M], payload: Mapping[str, Any]) -> M:
    """`payload` as `model`, or a 422 whose details list every bad field (the first named in
    the message)."""
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        items = [{"field": ".".join(str(p) for p in err["loc"]) or "body",
                  "message": _message(err)} for err in exc.errors()]
        first = items[0]
        raise ValidationError(f"{first['field']}: {first['message']}", items) from None
