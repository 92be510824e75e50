"""Single sign-on: which PicHub account a provider's user is, by the rules of `[oidc]`.

The web layer (`web/oidc.py`) runs the OpenID Connect flow and hands over an `Identity`
whose ID token it has verified. Here, in this order:

1. a known (issuer, sub) is that account, whatever its e-mail says now;
2. else, with `link_by_email`, an account whose e-mail equals the provider's, only when the
   provider says the address is verified (an unverified address proves nothing);
3. else, with `auto_create`, a new account named after `preferred_username` (made valid and
   unique), with no usable password (it signs in through the provider only);
4. else `NoAccount`.

A disabled account is refused (`AccountDisabled`) at every step. With `admin_group` set the
admin flag follows the group claim at every sign-in, both ways, so removing someone from the
group at the provider removes their admin rights here at their next sign-in.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from pichub.db import oidc as oidc_db
from pichub.db import users as users_db
from pichub.db.database import Conn, Database
from pichub.errors import NotFound, ValidationError

UNUSABLE_PASSWORD = "!sso"  # no scrypt hash has this form: no password ever matches it
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_NAME = 64


class NoAccount(Exception):  # noqa: N818 (an outcome the page explains, not an error)
    """No account matches and none may be created."""


class AccountDisabled(Exception):  # noqa: N818
    """The matching account is disabled (`users.is_active = 0`)."""


@dataclass(frozen=True)
class Identity:
    """What a verified ID token (and the userinfo answer) says about the user."""

    issuer: str
    subject: str
    email: str = ""
    email_verified: bool = False
    preferred_username: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The `[oidc]` rules that decide the account."""

    auto_create: bool = True
    link_by_email: bool = False
    admin_group: str = ""


@dataclass(frozen=True)
class SignedIn:
    user_id: int
    username: str
    created: bool = False
    linked: bool = False


async def sign_in(db: Database, who: Identity, policy: Policy) -> SignedIn:
    """The account of `who` (found, linked or created); see the module docstring."""
    known = await oidc_db.find_identity(db, who.issuer, who.subject)
    if known is not None:
        if not known["is_active"]:
            raise AccountDisabled()
        async with db.transaction() as conn:
            await oidc_db.touch_identity(conn, who.issuer, who.subject, who.email)
            await _sync_admin(conn, known["user_id"], who, policy)
        return SignedIn(known["user_id"], known["username"])
    linked = await _link_by_email(db, who, policy)
    if linked is not None:
        return linked
    if not policy.auto_create:
        raise NoAccount()
    return await _create(db, who, policy)


async def _link_by_email(db: Database, who: Identity, policy: Policy) -> SignedIn | None:
    if not (policy.link_by_email and who.email and who.email_verified):
        return None
    user = await oidc_db.user_by_email(db, who.email)
    if user is None:
        return None
    if not user["is_active"]:
        raise AccountDisabled()
    async with db.transaction() as conn:
        await oidc_db.add_identity(conn, who.issuer, who.subject, user["id"], who.email)
        await _sync_admin(conn, user["id"], who, policy)
    return SignedIn(user["id"], user["username"], linked=True)


async def _create(db: Database, who: Identity, policy: Policy) -> SignedIn:
    username = await unique_username(db, who)
    email = who.email if who.email and who.email_verified else None
    if email is not None and await oidc_db.user_by_email(db, email) is not None:
        email = None  # another account has it (and linking is off): leave it to the admin
    is_admin = bool(policy.admin_group) and policy.admin_group in who.groups
    async with db.transaction() as conn:
        user_id = await users_db.create_user(conn, username, UNUSABLE_PASSWORD,
                                             is_admin=is_admin, quota_mb=None)
        await oidc_db.set_email(conn, user_id, email)
        await oidc_db.add_identity(conn, who.issuer, who.subject, user_id, who.email)
    return SignedIn(user_id, username, created=True)


async def _sync_admin(conn: Conn, user_id: int, who: Identity, policy: Policy) -> None:
    if policy.admin_group:
        await oidc_db.set_admin(conn, user_id, policy.admin_group in who.groups)


def username_base(who: Identity) -> str:
    """A valid username from `preferred_username`, else the e-mail's local part, else `user`."""
    for candidate in (who.preferred_username, who.email.partition("@")[0]):
        cleaned = _NOT_IN_NAME.sub("-", candidate).strip("-.")[:_MAX_NAME - 7]
        if cleaned:
            return cleaned
    return "user"


async def unique_username(db: Database, who: Identity) -> str:
    """`username_base`, with `-2`, `-3`… (then a random suffix) until no account has it."""
    base = username_base(who)
    for n in range(1, 10):
        name = base if n == 1 else f"{base}-{n}"
        if not await oidc_db.username_taken(db, name):
            return name
    return f"{base}-{secrets.token_hex(3)}"


MAX_EMAIL = 254  # the longest address SMTP allows


def clean_email(email: str | None) -> str | None:
    """An account e-mail as stored: stripped, None for none (null or ""); 422 when it is not
    an address."""
    email = (email or "").strip()
    if not email:
        return None
    if len(email) > MAX_EMAIL or not _EMAIL.match(email) or not email.isprintable():
        raise ValidationError.field("email", "not an e-mail address")
    return email


async def store_email(conn: Conn, user_id: int, email: str | None) -> bool:
    """Set (None: clear) the user's e-mail inside the caller's transaction, one account per
    address whatever its case (checked under the writer lock, so two admins giving the same
    address at once cannot both succeed); False when there is no such user."""
    if email is not None:
        owner = await oidc_db.email_owner_in(conn, email)
        if owner is not None and owner != user_id:
            raise ValidationError.field("email", "another account has it")
    return await oidc_db.set_email(conn, user_id, email)


async def set_email(db: Database, user_id: int, email: str) -> None:
    """Set (or, with "", clear) the e-mail a first single sign-on may link by; one account
    per address, whatever its case."""
    cleaned = clean_email(email)
    async with db.transaction() as conn:
        if not await store_email(conn, user_id, cleaned):
            raise NotFound("user")
