"""pichub.sessions: browser sessions stored as hashes, CSRF comparison, password checks."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from pichub.db.database import Database
from pichub.hashing import same_secret
from pichub.services import accounts, sessions
from tests.support import backends

PASSWORD = "a long enough password"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(backends.database(tmp_path))
    await accounts.create_user(database, "erin", PASSWORD)
    yield database
    await database.close()


async def test_start_lookup_end(db: Database) -> None:
    user_id = await db.fetchval("SELECT id FROM users WHERE username = 'erin'")
    cookie, session = await sessions.start(db, user_id, timedelta(days=1))
    assert len(cookie) >= 43  # 32 random bytes
    assert (session.username, session.user_id, session.is_admin) == ("erin", user_id, False)
    assert len(session.csrf_token) >= 43
    row = await db.fetchone("SELECT * FROM sessions")
    assert row["id_hash"] == hashlib.sha256(cookie.encode()).hexdigest()
    assert cookie not in (row["id_hash"], row["csrf_token"])
    assert await sessions.lookup(db, cookie) == session
    assert session.actor().scope == "write" and session.actor().token_id is None
    await sessions.end(db, cookie)
    assert await sessions.lookup(db, cookie) is None


async def test_unknown_empty_and_expired_cookies_find_nothing(db: Database) -> None:
    user_id = await db.fetchval("SELECT id FROM users")
    assert await sessions.lookup(db, None) is None
    assert await sessions.lookup(db, "") is None
    assert await sessions.lookup(db, "not-a-session") is None
    cookie, _ = await sessions.start(db, user_id, timedelta(seconds=-1))
    assert await sessions.lookup(db, cookie) is None


async def test_new_sessions_sweep_expired_ones(db: Database) -> None:
    user_id = await db.fetchval("SELECT id FROM users")
    await sessions.start(db, user_id, timedelta(seconds=-1))
    await sessions.start(db, user_id, timedelta(days=1))
    assert await db.fetchval("SELECT COUNT(*) FROM sessions") == 1


async def test_two_sessions_are_independent(db: Database) -> None:
    user_id = await db.fetchval("SELECT id FROM users")
    first, one = await sessions.start(db, user_id, timedelta(days=1))
    second, two = await sessions.start(db, user_id, timedelta(days=1))
    assert first != second and one.csrf_token != two.csrf_token
    await sessions.end(db, first)
    assert await sessions.lookup(db, second) == two


def test_csrf_matches() -> None:
    token = sessions.new_csrf_token()
    assert same_secret(token, token)
    assert not same_secret(token, token[:-1])
    assert not same_secret(token, None)
    assert not same_secret(None, token)
    assert not same_secret("", "")
    assert not same_secret(token, "é")  # non-ASCII does not raise


async def test_authenticate(db: Database) -> None:
    user = await sessions.authenticate(db, "erin", PASSWORD)
    assert user is not None and user["username"] == "erin"
    assert await sessions.authenticate(db, "erin", PASSWORD + "x") is None
    assert await sessions.authenticate(db, "nobody", PASSWORD) is None
