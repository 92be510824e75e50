"""Secrets PicHub hands out, and how it stores them: only hashes.

API tokens and session cookies are 32 random bytes; the database keeps their
SHA-256 (`hash_secret`), so a copy of it hands out no live credential. Lookup
is by hash, so a presented secret is never compared byte by byte with a stored
one. Passwords use scrypt (memory-hard, in the standard library).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

TOKEN_PREFIX = "ph_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def new_token() -> str:
    """An API token: `ph_` + 43 URL-safe characters (32 random bytes)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The hex SHA-256 stored for a token or a session cookie."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    params = f"{_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}"
    return f"scrypt${params}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches; with no stored hash (no such user) a dummy one is checked,
    so a wrong name costs what a wrong password does."""
    try:
        _, n, r, p, salt, digest = (stored or _dummy_hash()).split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return stored is not None and hmac.compare_digest(got, expected)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def same_secret(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two short secrets (CSRF tokens); missing or empty values
    never match."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
