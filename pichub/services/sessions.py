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
from typing import Literal

from pichub.db import sessions as sessions_db
from pichub.db import users as users_db
from pichub.db.database import Database, Row
from pichub.errors import NotFound
from pichub.hashing import hash_secret, verify_password
from pichub.models.base import MAX_ROW_ID
from pichub.services.accounts import Actor
from pichub.timeutil import iso, now, parse_iso

COOKIE = "pichub_session"
CSRF_COOKIE = "pichub_csrf"  # double-submit token of the login form (no session yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_USER_AGENT = 300
_TOUCH_EVERY_S = 60  # last_seen_at is written at most once a minute per session

# How a session was signed in: a password alone, a password and a two-factor code, single
# sign-on (the provider checked the user, with its own MFA), or a new account's sign-up.
Method = Literal["password", "totp", "sso", "signup"]
METHODS: tuple[Method, ...] = ("password", "totp", "sso", "signup")


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who it is and the CSRF token its forms must echo."""

    id_hash: str
    user_id: int
    username: str
    is_admin: bool
    csrf_token: str
    expires_at: str
    has_totp: bool = False  # two-factor sign-in is on for the user
    method: Method = "password"  # how this browser was signed in

    def must_enrol(self, required_for_admins: bool) -> bool:
        """Must this session set up two-factor sign-in before anything else? Only an admin's,
        only when `auth.require_totp_for_admins` is on and it is off for them, and never one
        signed in through single sign-on: the provider did the checking (and its MFA)."""
        return (required_for_admins and self.is_admin and not self.has_totp
                and self.method != "sso")

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


async def start(db: Database, user_id: int, lifetime: timedelta, *, method: Method = "password",
                user_agent: str = "", ip: str = "") -> tuple[str, Session]:
    """A new session signed in by `method`; returns the cookie value (shown only here) and
    the session. `user_agent` and `ip` are kept only to let the user tell their sessions
    apart."""
    if method not in METHODS:
        raise ValueError(f"unknown sign-in method {method!r}")
    cookie = secrets.token_urlsafe(32)
    moment = now()
    created, expires = iso(moment), iso(moment + lifetime)
    if await users_db.get_user(db, user_id) is None:
        raise LookupError(f"no user {user_id}")
    async with db.transaction() as conn:
        await sessions_db.delete_expired(conn, created)
        await sessions_db.create(conn, hash_secret(cookie), user_id, new_csrf_token(), created,
                                 expires, method=method,
                                 user_agent=user_agent[:MAX_USER_AGENT], ip=ip)
    row = await sessions_db.find(db, hash_secret(cookie), "")  # "" : even a lifetime ≤ 0
    assert row is not None
    return cookie, _session(row)


def _session(row: Row) -> Session:
    return Session(row["id_hash"], row["user_id"], row["username"], bool(row["is_admin"]),
                   row["csrf_token"], row["expires_at"], bool(row["has_totp"]),
                   _method(row["method"]))


def _method(value: str) -> Method:
    for method in METHODS:
        if value == method:
            return method
    return "password"  # the column's CHECK allows no other value


async def lookup(db: Database, cookie: str | None) -> Session | None:
    """The live session of a cookie value, or None (unknown, expired or absent)."""
    if not cookie:
        return None
    moment = now()
    row = await sessions_db.find(db, hash_secret(cookie), iso(moment))
    if row is None:
        return None
    seen = row["last_seen_at"]
    if seen is None or (moment - parse_iso(seen)).total_seconds() > _TOUCH_EVERY_S:
        async with db.transaction() as conn:
            await sessions_db.touch(conn, row["id_hash"], iso(moment))
    return _session(row)


async def end(db: Database, cookie: str | None) -> None:
    """Forget the session of this cookie (sign-out); unknown cookies are ignored."""
    if not cookie:
        return
    async with db.transaction() as conn:
        await sessions_db.delete(conn, hash_secret(cookie))


async def list_own(db: Database, session: Session) -> list[dict[str, object]]:
    """The user's live sessions, most recently seen first, `current` marking this one."""
    rows = await sessions_db.list_for_user(db, session.user_id, iso())
    return [{**{k: row[k] for k in row.keys() if k != "id_hash"},
             "current": row["id_hash"] == session.id_hash} for row in rows]


async def end_own(db: Database, user_id: int, session_id: int) -> None:
    """End one of the user's sessions (by its listed `id`); 404 when it is not theirs."""
    async with db.transaction() as conn:
        if not 1 <= session_id <= MAX_ROW_ID or not await sessions_db.delete_by_id(
                conn, user_id, session_id):
            raise NotFound("session")
