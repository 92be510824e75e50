"""Who may create their own account (`auth.registration`), and the invites that let them.

- `closed` (the default): only admins make accounts; `/signup` does not exist.
- `invite`: a sign-up needs an invite link an admin made: single use, with an expiry.
- `open`: anyone may sign up (the web layer counts attempts per IP, `rate_limits.signup`);
  an invite link still works there and gives its quota.

An invite's secret is 32 random bytes in its link; the database keeps only its SHA-256 (like
API tokens), found by that hash and compared again in constant time. It is used up by one
conditional UPDATE inside the transaction that creates the account, so of two sign-ups racing
on one link exactly one gets an account; the other's transaction changes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.parse
from datetime import datetime, timedelta
from typing import Final, Literal

from pichub.db import invites as invites_db
from pichub.db import users as users_db
from pichub.db.database import Database, Row
from pichub.errors import Forbidden, NotFound, ValidationError
from pichub.hashing import hash_password, hash_secret, same_secret
from pichub.models.invites import DEFAULT_EXPIRES_S, Invite, InviteCreate, InviteCreated
from pichub.services import accounts
from pichub.timeutil import iso

Mode = Literal["closed", "invite", "open"]
#: The most invites a list shows (the newest): a team makes a handful a month.
LIST_LIMIT: Final = 200
SIGNUP_PATH: Final = "/signup"
INVALID = ("This invite link cannot be used: it was used already, revoked, or it has "
           "expired. Ask for a new one.")


def invite_url(base_url: str, token: str) -> str:
    return f"{base_url}{SIGNUP_PATH}?" + urllib.parse.urlencode({"invite": token})


async def create_invite(db: Database, body: InviteCreate, *, created_by: int | None,
                        base_url: str, at: datetime) -> InviteCreated:
    """A new invite; its link is returned this once (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    expires = iso(at + timedelta(seconds=body.expires_in or DEFAULT_EXPIRES_S))
    async with db.transaction() as conn:
        invite_id = await invites_db.create(
            conn, hash_secret(token), note=body.note, quota_mb=body.quota_mb,
            created_by=created_by, created_at=iso(at), expires_at=expires)
    return InviteCreated(id=invite_id, url=invite_url(base_url, token), expires_at=expires)


async def list_invites(db: Database, at: datetime) -> list[Invite]:
    """Invites not revoked, newest first: unused, used (by whom) and expired ones."""
    now_iso = iso(at)
    return [Invite.from_row(row, now_iso)
            for row in await invites_db.listing(db, LIST_LIMIT)]


async def revoke_invite(db: Database, invite_id: int, at: datetime) -> None:
    """Revoke an invite not used yet (its link stops working at once); 404 otherwise."""
    async with db.transaction() as conn:
        if not await invites_db.revoke(conn, invite_id, iso(at)):
            raise NotFound("invite")


async def usable_invite(db: Database, token: str, at: datetime) -> Row | None:
    """The invite of this link while it can be used (unused, not revoked, not expired)."""
    if not token or len(token) > 100:
        return None
    presented = hash_secret(token)
    row = await invites_db.find(db, presented)
    if row is None or not same_secret(row["token_hash"], presented):
        return None
    if row["used_at"] or row["revoked_at"] or row["expires_at"] <= iso(at):
        return None
    return row


def may_sign_up(mode: Mode, invite: str | None) -> bool:
    """Whether `/signup` is there at all for this request (before the invite is checked)."""
    return mode == "open" or (mode == "invite" and bool(invite))


async def sign_up(db: Database, mode: Mode, username: str, password: str,
                  invite: str | None, at: datetime) -> int:
    """Create the account (the rules of `accounts.create_user`), using up `invite` when
    given; returns the new user's id. Closed → 404; invite mode without an invite → 403."""
    if mode == "closed":
        raise NotFound("route")
    if mode == "invite" and not invite:
        raise Forbidden("Sign-up here needs an invite link.")
    accounts.check_username(username)
    accounts.check_password(password)
    if invite and await usable_invite(db, invite, at) is None:
        raise Forbidden(INVALID)
    if await users_db.get_user_by_name(db, username) is not None:
        raise ValidationError.field("username", "already taken")
    hashed = await asyncio.to_thread(hash_password, password)
    async with db.transaction() as conn:
        if await users_db.name_taken(conn, username):
            raise ValidationError.field("username", "already taken")
        used = await invites_db.claim(conn, hash_secret(invite), iso(at)) if invite else None
        if invite and used is None:  # another sign-up took it since the check above
            raise Forbidden(INVALID)
        user_id = await users_db.create_user(
            conn, username, hashed, is_admin=False,
            quota_mb=used["quota_mb"] if used is not None else None)
        if used is not None:
            await invites_db.set_used_by(conn, used["id"], user_id)
    return user_id
