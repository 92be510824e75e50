"""Who may open an image and how long it lives: the field rules shared by uploads, PATCH
bodies and signed links, and the signed link's answer.

`visibility` is `public` (listed on the square), `unlisted` (anyone with the URL, what
`is_public=false` meant before) or `private` (the owner, or a signed link). The seed's
`is_public` stays an alias: 1 → public, 0 → unlisted; `visibility` wins when both are
sent. Expiry is `expires_in` (seconds from now) or `expires_at` (RFC 3339), not both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field

from pichub.errors import ValidationError
from pichub.models.base import TIMESTAMP_EXAMPLE, Checked, Model, parse_int, problem
from pichub.timeutil import iso

Visibility = Literal["public", "unlisted", "private"]
VISIBILITIES: Final = ("public", "unlisted", "private")
#: The longest expiry an image may be given (about ten years), and a signed link.
MAX_EXPIRES_S: Final = 10 * 366 * 86400
MAX_LINK_S: Final = 366 * 86400
MAX_VIEWS: Final = 1_000_000_000


def visibility_of(visibility: str | None, is_public: bool | None) -> str | None:
    """The visibility a request asks for: `visibility`, else the seed's `is_public` alias,
    else None (unchanged)."""
    if visibility is not None:
        return visibility
    if is_public is None:
        return None
    return "public" if is_public else "unlisted"


def _visibility(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if not isinstance(value, str) or value.strip().lower() not in VISIBILITIES:
        raise problem("must be one of public, unlisted, private")
    return value.strip().lower()


#: public | unlisted | private, in any case; empty or absent: not given.
VISIBILITY = Checked(_visibility, (("type", "string"), ("enum", list(VISIBILITIES))),
                     replace=True)


def parse_moment(value: object) -> str | None:
    """An RFC 3339 date-time (with `Z` or an offset) as the API's ISO 8601 UTC form
    (whole seconds, rounded down); empty or null: None."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if not isinstance(value, str):
        raise problem("must be an RFC 3339 date-time, like 2026-11-27T06:50:33Z")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise problem("must be an RFC 3339 date-time, like 2026-11-27T06:50:33Z") from None
    if moment.tzinfo is None:
        raise problem("must name its time zone (Z or an offset like +02:00)")
    return iso(moment.astimezone(UTC))


#: `expires_at`: RFC 3339, stored as UTC; null clears it (PATCH).
MOMENT = Checked(parse_moment, (("type", ["string", "null"]), ("format", "date-time")),
                 replace=True)


def Count(low: int, high: int) -> Checked:  # noqa: N802
    """An integer in `low`..`high` (a JSON number, or a form field's digits); empty or null:
    None."""

    def check(value: object) -> int | None:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        number = value if isinstance(value, int) and not isinstance(value, bool) else (
            parse_int(value) if isinstance(value, str) else None)
        if number is None:
            raise problem("must be an integer")
        if not low <= number <= high:
            raise problem(f"must be between {low} and {high}")
        return number

    return Checked(check, (("type", ["integer", "null"]), ("minimum", low),
                           ("maximum", high)), replace=True)


EXPIRES_IN = Count(1, MAX_EXPIRES_S)
MAX_VIEWS_COUNT = Count(1, MAX_VIEWS)


def expiry_of(expires_in: int | None, expires_at: str | None, now: datetime) -> str | None:
    """The expiry a request asks for, as stored: `expires_in` seconds after `now`, else
    `expires_at`, else None. Both at once, or a moment not after `now`: 422."""
    if expires_in is not None and expires_at is not None:
        raise ValidationError.field("expires_at", "send expires_in or expires_at, not both")
    if expires_in is not None:
        return iso(now + timedelta(seconds=expires_in))
    if expires_at is not None and expires_at <= iso(now):
        raise ValidationError.field("expires_at", "must be in the future")
    return expires_at


class LinkRequest(Model):
    """`POST /images/{id}/links`: how long the link works, and optionally the variant it
    opens (the same parameters as `/img`; none: the stored image)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"expires_in": 3600}, {"expires_in": 86400, "w": 800, "fm": "webp"}]})

    expires_in: Annotated[int, Count(1, MAX_LINK_S), Field(
        description=f"Seconds the link works, 1 to {MAX_LINK_S} (a year).")]
    w: Annotated[int | None, Count(1, 2**31), Field(description="Width, as `/img`'s `w`.")] \
        = None
    h: Annotated[int | None, Count(1, 2**31), Field(description="Height, as `/img`'s `h`.")] \
        = None
    q: Annotated[int | None, Count(1, 100), Field(description="Quality, as `/img`'s `q`.")] \
        = None
    fit: str | None = Field(None, description="As `/img`'s `fit`.")
    fm: str | None = Field(None, description="Output format, as `/img`'s `fm` (`auto` is "
                                             "not allowed: a link names one variant).")

    def variant_query(self) -> dict[str, str]:
        """The variant parameters as `/img`'s query string has them."""
        found: dict[str, Any] = {"w": self.w, "h": self.h, "q": self.q, "fit": self.fit,
                                 "fm": self.fm}
        return {name: str(value) for name, value in found.items() if value is not None}


class SignedLink(Model):
    """A link that opens an image (a private one too) until it expires."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "url": "https://pichub.example.com/img/Xb3kQ9vTz1Lm.webp?exp=1795762233"
               "&sig=q8Jx0b2m3Yl4xJ0cQ0mY5H0m3c8pV2Wn1Z7aQy0kPbE",
        "expires_at": TIMESTAMP_EXAMPLE}]})

    url: str = Field(description="Absolute. Its query (the variant parameters, `exp` and "
                                 "`sig`) must not be changed: any change makes it a 404.")
    expires_at: str = Field(description="When the link stops working (ISO 8601 UTC, `Z`); "
                                        "after that it answers 404.",
                            examples=[TIMESTAMP_EXAMPLE])
