"""Users and API tokens: who may call, and with what scope.

Shared by the CLI, the first start, the middleware (bearer tokens) and the web
pages (tokens page). Tokens are stored as their SHA-256 only (`hashing`) and
found by that hash; `last_used_at` is written at most once a minute per token.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from typing import Final

from pichub.db import sessions as sessions_db
from pichub.db import users as users_db
from pichub.db.database import Database, Row
from pichub.errors import Forbidden, NotFound, Unauthorized, ValidationError
from pichub.hashing import hash_password, hash_secret, new_token, verify_password
from pichub.timeutil import now, parse_iso

SCOPES: Final = ("read", "write")
MAX_TOKEN_NAME: Final = 100
MIN_PASSWORD: Final = 8
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TOUCH_EVERY_S = 60


@dataclass(frozen=True)
class Actor:
    """An authenticated caller: a token's, or a signed-in browser's (`token_id` None)."""

    user_id: int
    username: str
    scope: str
    is_admin: bool = False
    token_id: int | None = None

    def require(self, scope: str) -> None:
        """403 when a write is attempted with a read token."""
        if scope == "write" and self.scope != "write":
            raise Forbidden("This token has read scope; write scope is required")


async def create_user(db: Database, username: str, password: str, *, is_admin: bool = False,
                      quota_mb: int | None = None) -> int:
    check_username(username)
    check_password(password)
    if await users_db.get_user_by_name(db, username) is not None:
        raise ValidationError.field("username", "already taken")
    hashed = await asyncio.to_thread(hash_password, password)
    async with db.transaction() as conn:
        return await users_db.create_user(conn, username, hashed, is_admin=is_admin,
                                          quota_mb=quota_mb)


def check_username(username: str) -> None:
    """The one rule for user names: for admins' accounts and sign-ups alike."""
    if not _USERNAME.match(username):
        raise ValidationError.field("username", "1-64 letters, digits, '_', '.' or '-'")


def check_password(password: str, field: str = "password") -> None:
    """The one rule for passwords, at creation and at every change."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError.field(field, f"at least {MIN_PASSWORD} characters")


async def get_user(db: Database, username: str) -> Row | None:
    return await users_db.get_user_by_name(db, username)


async def change_password(db: Database, user_id: int, current: str, new: str, *,
                          keep_session: str | None = None) -> int:
    """Set a new password after checking the current one; every session of the user except
    `keep_session` (an `id_hash`: the browser asking) ends. Returns how many ended."""
    user = await users_db.get_user(db, user_id)
    stored = user["password_hash"] if user is not None else None
    if not await asyncio.to_thread(verify_password, current, stored):
        raise ValidationError("The current password is not right.",
                              [{"field": "current_password", "message": "wrong password"}])
    check_password(new, "new_password")
    hashed = await asyncio.to_thread(hash_password, new)
    async with db.transaction() as conn:
        await users_db.set_password(conn, user_id, hashed)
        return await sessions_db.delete_for_user(conn, user_id, keep_session)


async def list_users(db: Database) -> list[Row]:
    """Every user with their image count and bytes stored, oldest first."""
    return await users_db.list_users(db)


async def create_token(db: Database, username: str, name: str = "", scope: str = "write") -> str:
    """A new token for `username`; the only time the token is ever visible."""
    if scope not in SCOPES:
        raise ValidationError.field("scope", "must be read or write")
    if len(name) > MAX_TOKEN_NAME:
        raise ValidationError.field("name", f"must be at most {MAX_TOKEN_NAME} characters")
    user = await users_db.get_user_by_name(db, username)
    if user is None:
        raise NotFound("user")
    token = new_token()
    async with db.transaction() as conn:
        await users_db.create_token(conn, user["id"], hash_secret(token), name, scope)
    return token


async def list_tokens(db: Database, username: str) -> list[Row]:
    """The user's live tokens, oldest first; 404 for an unknown user."""
    user = await users_db.get_user_by_name(db, username)
    if user is None:
        raise NotFound("user")
    return await users_db.list_tokens(db, user["id"])


async def revoke_token(db: Database, token_id: int, user_id: int | None = None) -> None:
    """Revoke a live token (only one of `user_id`'s when given); 404 when there is none.
    New requests with it are refused at once."""
    async with db.transaction() as conn:
        if not await users_db.revoke_token(conn, token_id, user_id):
            raise NotFound("token")


async def actor_from_token(db: Database, token: str) -> Actor:
    """The token's caller; 401 when unknown or revoked."""
    row = await users_db.find_token(db, hash_secret(token))
    if row is None:
        raise Unauthorized()
    last = row["last_used_at"]
    if last is None or (now() - parse_iso(last)).total_seconds() > _TOUCH_EVERY_S:
        async with db.transaction() as conn:
            await users_db.touch_token(conn, row["id"])
    return Actor(row["user_id"], row["username"], row["scope"], bool(row["is_admin"]), row["id"])


async def bootstrap_admin(db: Database) -> tuple[str, str] | None:
    """On an empty database: create `admin` with a random password and one token.

    Returns (password, token) to print once, or None when users exist already.
    """
    if await users_db.count_users(db) > 0:
        return None
    password = secrets.token_urlsafe(12)
    try:
        await create_user(db, "admin", password, is_admin=True)
    except Exception:
        if await users_db.count_users(db) > 0:  # made by a process starting at the same moment
            return None
        raise
    token = await create_token(db, "admin", name="first token", scope="write")
    return password, token
