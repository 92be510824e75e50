"""Who may open an image: visibility, expiry and the time-limited signed links.

A private image is served to its owner and to whoever holds a signed link; anyone else
is told 404, as if it did not exist. An expired image (its `expires_at` passed, or its
last allowed view used) answers 410 to whoever may see it, until the expiry sweep
deletes it. A link's signature binds the path (image id and extension), every query
parameter (the variant's: `w`, `h`, `q`, `fit`, `fm`) and its expiry `exp` (Unix
seconds): HMAC-SHA256 with the instance's `link_key` (migration 0007), compared in
constant time. A link that is past its `exp`, altered, or for another path is a 404.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlencode

from pichub.errors import Gone, NotFound

#: The query parameters of a signed link.
EXPIRY_PARAM: Final = "exp"
SIGNATURE_PARAM: Final = "sig"
_DOMAIN: Final = b"pichub-link\n"  # keeps these MACs apart from any other use of the key


class Link(enum.Enum):
    """What a request's link parameters amount to."""

    NONE = "none"          # no `sig`: not a link
    INVALID = "invalid"    # wrong signature, or no usable `exp`
    EXPIRED = "expired"    # a good signature whose `exp` has passed
    VALID = "valid"


class LinkSigner:
    """Makes and checks signed links with the instance's `link_key` (hex)."""

    def __init__(self, key_hex: str) -> None:
        self._key = bytes.fromhex(key_hex)

    def signature(self, path: str, query: Mapping[str, str]) -> str:
        """The `sig` of `path` with `query` (any `sig` in it left out)."""
        items = sorted((k, v) for k, v in query.items() if k != SIGNATURE_PARAM)
        return self.mac(_DOMAIN, f"{path}?{urlencode(items)}".encode())

    def mac(self, domain: bytes, message: bytes) -> str:
        """URL-safe base64 HMAC-SHA256 of `domain + message` with the key; each use has its
        own `domain` prefix, so one use's MAC never passes for another's."""
        mac = hmac.new(self._key, domain + message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def query(self, path: str, variant: Mapping[str, str], expires: datetime) -> dict[str, str]:
        """The query string of a link to `path` (with the variant's parameters) that works
        until `expires`."""
        query = {**variant, EXPIRY_PARAM: str(int(expires.timestamp()))}
        return {**query, SIGNATURE_PARAM: self.signature(path, query)}

    def check(self, path: str, query: Mapping[str, str], now: datetime) -> Link:
        given = query.get(SIGNATURE_PARAM)
        if given is None:
            return Link.NONE
        expected = self.signature(path, query)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return Link.INVALID
        raw = query.get(EXPIRY_PARAM, "")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            return Link.INVALID
        return Link.VALID if now.timestamp() < int(raw) else Link.EXPIRED


def admit(*, visibility: str, owner: bool, expires_at: datetime | None, link: Link,
          now: datetime) -> None:
    """Raise NotFound (404) when the caller may not know the image exists, Gone (410) when
    they may but it has expired; return when it may be served."""
    private = visibility == "private" and not owner
    if private and link not in (Link.VALID, Link.EXPIRED):
        raise NotFound("image")
    if expires_at is not None and expires_at <= now:
        raise Gone("image")
    if private and link is not Link.VALID:
        raise NotFound("image")


def moment(text: str | None) -> datetime | None:
    """A stored ISO 8601 UTC timestamp as a datetime (None stays None)."""
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
