"""Browser sign-in: sessions, password checks and CSRF tokens for the web UI.

The session cookie holds 32 random bytes; the database keeps only their
SHA-256 (like API tokens), so a copy of the database hands out no live
session. Each session carries its own CSRF token (synchroniser token): every
state-changing form posts it as `csrf_token`, every XHR sends it as
`X-CSRF-Token`. Before sign-in there is no session, so the login form uses a
double-submit cookie (`pichub_csrf`) instead. Tokens are compared in constant
time (`hashing.same_secret`).

Sessions are a UI matter only: the JSON API accepts bearer tokens and nothing
else, so a session cookie never authorises an API call.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import timedelta

from pichub.db import sessions as sessions_db
from pichub.db import users as users_db
from pichub.db.database import Database, Row
from pichub.hashing import hash_secret, verify_password
from pichub.services.accounts import Actor
from pichub.timeutil import iso, now

COOKIE = "pichub_session"
CSRF_COOKIE = "pichub_csrf"  # double-submit token of the login form (no session yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who it is and the CSRF token its forms must echo."""

    id_hash: str
    user_id: int
    username: str
    is_admin: bool
    csrf_token: str
    expires_at: str

    def actor(self) -> Actor:
        """The caller as the services see it (a session may do what a write token may)."""
        return Actor(self.user_id, self.username, "write", self.is_admin)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


async def authenticate(db: Database, username: str, password: str) -> Row | None:
    """The user row when the password is right, else None (same cost either way). The row
    of a disabled user is returned too: the caller refuses it (`is_active`) with its own
    message, which only someone who knows the password gets to see."""
    user = await users_db.get_user_by_name(db, username)
    stored = user["password_hash"] if user is not None else None
    good = await asyncio.to_thread(verify_password, password, stored)
    return user if good and user is not None else None


async def start(db: Database, user_id: int, lifetime: timedelta) -> tuple[str, Session]:
    """A new session; returns the cookie value (shown only here) and the session."""
    cookie = secrets.token_urlsafe(32)
    moment = now()
    created, expires = iso(moment), iso(moment + lifetime)
    csrf = new_csrf_token()
    user = await users_db.get_user(db, user_id)
    if user is None:
        raise LookupError(f"no user {user_id}")
    async with db.transaction() as conn:
        await sessions_db.delete_expired(conn, created)
        await sessions_db.create(conn, hash_secret(cookie), user_id, csrf, created, expires)
    return cookie, Session(hash_secret(cookie), user_id, user["username"],
                           bool(user["is_admin"]), csrf, expires)


async def lookup(db: Database, cookie: str | None) -> Session | None:
    """The live session of a cookie value, or None (unknown, expired or absent)."""
    if not cookie:
        return None
    row = await sessions_db.find(db, hash_secret(cookie), iso())
    if row is None:
        return None
    return Session(row["id_hash"], row["user_id"], row["username"], bool(row["is_admin"]),
                   row["csrf_token"], row["expires_at"])


async def end(db: Database, cookie: str | None) -> None:
    """Forget the session of this cookie (sign-out); unknown cookies are ignored."""
    if not cookie:
        return
    async with db.transaction() as conn:
        await sessions_db.delete(conn, hash_secret(cookie))
