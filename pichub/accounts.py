"""Creating users and tokens: shared by the CLI, first start and the web UI."""

from __future__ import annotations

import asyncio
import re
import secrets

from pichub.auth import SCOPES, hash_password, hash_token, new_token
from pichub.db import users as users_db
from pichub.db.database import Database
from pichub.errors import NotFound, ValidationError

_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


async def create_user(
    db: Database, username: str, password: str, *, is_admin: bool = False,
    quota_mb: int | None = None,
) -> int:
    if not _USERNAME.match(username):
        raise ValidationError.field("username", "1-64 letters, digits, '_', '.' or '-'")
    if len(password) < 8:
        raise ValidationError.field("password", "at least 8 characters")
    if await users_db.get_user_by_name(db, username) is not None:
        raise ValidationError.field("username", "already taken")
    hashed = await asyncio.to_thread(hash_password, password)
    async with db.transaction() as conn:
        return await users_db.create_user(
            conn, username, hashed, is_admin=is_admin, quota_mb=quota_mb
        )


async def create_token(db: Database, username: str, name: str = "", scope: str = "write") -> str:
    """A new token for `username`; the only time the token is ever visible."""
    if scope not in SCOPES:
        raise ValidationError.field("scope", "must be read or write")
    user = await users_db.get_user_by_name(db, username)
    if user is None:
        raise NotFound("user")
    token = new_token()
    async with db.transaction() as conn:
        await users_db.create_token(conn, user["id"], hash_token(token), name, scope)
    return token


async def bootstrap_admin(db: Database) -> tuple[str, str] | None:
    """On an empty database: create `admin` with a random password and one token.

    Returns (password, token) to print once, or None when users exist already.
    """
    if await users_db.count_users(db) > 0:
        return None
    password = secrets.token_urlsafe(12)
    await create_user(db, "admin", password, is_admin=True)
    token = await create_token(db, "admin", name="first token", scope="write")
    return password, token
