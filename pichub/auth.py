"""Who is calling: bearer tokens (API) and password hashing.

Tokens are 32 random bytes (`ph_` + URL-safe base64), stored only as their
SHA-256. Lookup is by hash, so the secret itself is never compared byte by
byte; the found hash is still checked with `hmac.compare_digest`.
Passwords use scrypt (memory-hard, in the standard library).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from pichub.db import users as users_db
from pichub.db.database import Database
from pichub.errors import Forbidden, Unauthorized
from pichub.timeutil import now, parse_iso

TOKEN_PREFIX = "ph_"
SCOPES = ("read", "write")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_TOUCH_EVERY_S = 60


@dataclass(frozen=True)
class Actor:
    """An authenticated caller."""

    user_id: int
    username: str
    scope: str
    is_admin: bool = False
    token_id: int | None = None

    def require(self, scope: str) -> None:
        if scope == "write" and self.scope != "write":
            raise Forbidden("This token has read scope; write scope is required")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    params = f"{_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}"
    return f"scrypt${params}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def actor_from_token(db: Database, token: str) -> Actor:
    """The token's actor; Unauthorized when unknown or revoked."""
    digest = hash_token(token)
    row = await users_db.find_token(db, digest)
    if row is None or not hmac.compare_digest(row["token_hash"], digest):
        raise Unauthorized()
    last = row["last_used_at"]
    if last is None or (now() - parse_iso(last)).total_seconds() > _TOUCH_EVERY_S:
        async with db.transaction() as conn:
            await users_db.touch_token(conn, row["id"])
    return Actor(row["user_id"], row["username"], row["scope"], bool(row["is_admin"]), row["id"])
