"""What an admin may do to other people's accounts and images, and the overview numbers.

Only admins reach these (the web layer answers 404 to everyone else, as for a route that
does not exist); the rules here are those that protect the instance from its admin: no
admin can disable, demote or delete their own account (someone must stay able to sign
in and undo it).

Deleting a user is one durable operation, like deleting one image (`services.images`):
one transaction writes an `image.deleted` event per image (the outbox) and deletes the
user's row, which cascades to their images, albums, tokens, webhooks, sessions and delete
links; only after the commit are the files removed. A crash in between leaves files no
row owns, which the orphan sweep (`services.sweep`) removes at the next start.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pichub.db import admin as admin_db
from pichub.db import images as images_db
from pichub.db import sessions as sessions_db
from pichub.db import totp as totp_db
from pichub.db import users as users_db
from pichub.db.database import Database, Row
from pichub.errors import NotFound, ValidationError
from pichub.hashing import hash_password, verify_password
from pichub.models.admin import (
    AdminImage,
    AdminToken,
    AdminUser,
    AdminUserCreate,
    AdminUserUpdate,
    CacheStats,
    DayUploads,
    DiskStats,
    FailingWebhook,
    Stats,
)
from pichub.models.base import changes
from pichub.services import accounts, oidc
from pichub.services.accounts import Actor
from pichub.services.common import Page, PageRequest, read_page
from pichub.services.images import Images
from pichub.timeutil import now

#: Days of the overview's uploads chart, today included.
CHART_DAYS = 30


@dataclass(frozen=True)
class CacheCounters:
    """What the variant cache and the pipeline know of it (read by the overview)."""

    bytes: int
    files: int
    hits: int
    misses: int


class Admin:
    """Admin rules. `images` deletes files and writes the image answers; `cache` reads the
    variant cache's counters; `data_dir` is the file system whose free space is shown."""

    def __init__(self, db: Database, images: Images, cache: Callable[[], CacheCounters],
                 data_dir: Path) -> None:
        self.db = db
        self.images = images
        self.cache = cache
        self.data_dir = data_dir

    # --- users ---------------------------------------------------------------------------------

    async def users(self, request: PageRequest, q: str = "") -> Page[AdminUser]:
        """Users, newest first; `q`: those whose name contains it."""
        total = await admin_db.count_users(self.db, q)
        page = await read_page(self.db, admin_db.users_listing(q), admin_db.ID_KEY_SHAPE,
                               request, total, lambda row: row)
        with_totp = await totp_db.enabled_among(self.db, (row["id"] for row in page.items))
        return Page([AdminUser.from_row(row, two_factor=row["id"] in with_totp)
                     for row in page.items], page.meta)

    async def user(self, user_id: int) -> AdminUser:
        row = await users_db.get_user(self.db, user_id)
        if row is None:
            raise NotFound("user")
        with_totp = await totp_db.enabled_among(self.db, (user_id,))
        return AdminUser.from_row(row, two_factor=user_id in with_totp)

    async def create_user(self, body: AdminUserCreate) -> AdminUser:
        user_id = await accounts.create_user(self.db, body.username, body.password,
                                             is_admin=body.is_admin, quota_mb=body.quota_mb)
        return await self.user(user_id)

    async def update_user(self, who: Actor, user_id: int, body: AdminUserUpdate) -> AdminUser:
        """Change the fields sent. Disabling the user or changing their password signs every
        browser of theirs out, in the same transaction; disabling also stops their tokens
        (the token lookup skips disabled users). A new `email` follows `oidc.store_email`."""
        fields = changes(body, "is_active, is_admin, quota_mb, password or email")
        new_email = "email" in fields
        email = oidc.clean_email(fields.pop("email", None))
        if user_id == who.user_id:
            for name in ("is_active", "is_admin"):
                if fields.get(name) is False:
                    raise ValidationError.field(name, "you cannot change this on your own "
                                                      "account")
        if "password" in fields:  # the model refuses null for all but quota_mb, email
            password = fields.pop("password")
            accounts.check_password(password)
            fields["password_hash"] = await asyncio.to_thread(hash_password, password)
        async with self.db.transaction() as conn:
            if new_email and not await oidc.store_email(conn, user_id, email):
                raise NotFound("user")
            if fields and not await admin_db.update_user(conn, user_id, _columns(fields)):
                raise NotFound("user")
            if fields.get("is_active") is False or "password_hash" in fields:
                await sessions_db.delete_for_user(conn, user_id)
        return await self.user(user_id)

    async def reset_totp(self, who: Actor | None, user_id: int) -> AdminUser:
        """Turn the user's two-factor sign-in off: its secret (confirmed or being set up) and
        recovery codes go, so their next sign-in needs only the password (for a user who lost
        their authenticator and their codes). Not on the admin's own account (`who`; None:
        the CLI): turning one's own off needs the password and a code (the account page)."""
        if who is not None and user_id == who.user_id:
            raise ValidationError.field("id", "turn your own two-factor sign-in off on your "
                                              "account page")
        await reset_totp(self.db, user_id)
        return await self.user(user_id)

    async def delete_user(self, who: Actor | None, user_id: int, base_url: str) -> None:
        """The user and all their data (see the module's docstring); `who` None: the CLI."""
        if who is not None and user_id == who.user_id:
            raise ValidationError.field("id", "you cannot delete your own account here")
        await delete_user(self.db, self.images, user_id, base_url)

    # --- images and tokens -----------------------------------------------------------------------

    async def image_page(self, base_url: str, request: PageRequest,
                         user_id: int | None = None) -> Page[AdminImage]:
        """Every user's images (or `user_id`'s), newest first, each with its owner."""
        if user_id is None:
            total = (await admin_db.totals(self.db)).images
        else:
            total = (await self.user(user_id)).image_count
        listing = images_db.listing(user_id=user_id)
        page = await read_page(self.db, listing, images_db.KEY_SHAPE, request, total,
                               lambda row: row)
        names = await admin_db.usernames(self.db, (row["user_id"] for row in page.items))
        return Page([AdminImage.of(self.images.image(row, base_url), row["user_id"],
                                   names.get(row["user_id"], "")) for row in page.items],
                    page.meta)

    async def delete_image(self, image_id: str, base_url: str) -> None:
        """Moderation: the owner's own delete (event for the owner, variants, blob)."""
        row = await self.images.find(image_id)
        if row is None:
            raise NotFound("image")
        await self.images.delete(row["user_id"], image_id, base_url)

    async def tokens(self, request: PageRequest,
                     user_id: int | None = None) -> Page[AdminToken]:
        """Live tokens of everyone (or of `user_id`), newest first."""
        total = await admin_db.count_tokens(self.db, user_id)
        page = await read_page(self.db, admin_db.tokens_listing(user_id),
                               admin_db.ID_KEY_SHAPE, request, total, lambda row: row)
        names = await admin_db.usernames(self.db, (row["user_id"] for row in page.items))
        return Page([AdminToken.from_row(row, names.get(row["user_id"], ""))
                     for row in page.items], page.meta)

    async def revoke_token(self, token_id: int) -> None:
        """Revoke anyone's live token; new requests with it are refused at once."""
        await accounts.revoke_token(self.db, token_id)

    async def failing_webhooks(self) -> list[FailingWebhook]:
        return [FailingWebhook.from_row(row)
                for row in await admin_db.failing_webhooks(self.db)]

    # --- the overview --------------------------------------------------------------------------

    async def stats(self) -> Stats:
        totals = await admin_db.totals(self.db)
        cache = self.cache()
        looked = cache.hits + cache.misses
        disk = await asyncio.to_thread(shutil.disk_usage, self.data_dir)
        return Stats(
            users=totals.users, active_users=totals.active_users, images=totals.images,
            bytes_stored=totals.bytes,
            cache=CacheStats(bytes=cache.bytes, files=cache.files, hits=cache.hits,
                             misses=cache.misses,
                             hit_rate=round(cache.hits / looked, 4) if looked else None),
            disk=DiskStats(free_bytes=disk.free, total_bytes=disk.total),
            uploads_per_day=await self._uploads_per_day())

    async def _uploads_per_day(self) -> list[DayUploads]:
        today = now().date()
        days = [(today - timedelta(days=back)).isoformat()
                for back in range(CHART_DAYS - 1, -1, -1)]
        counted = await admin_db.uploads_since(self.db, days[0])
        return [DayUploads(day=day, uploads=counted.get(day, 0)) for day in days]


async def set_active(db: Database, user_id: int, active: bool) -> None:
    """Enable or disable a user (the CLI's way; the API's is `Admin.update_user`)."""
    async with db.transaction() as conn:
        if not await admin_db.update_user(conn, user_id, {"is_active": int(active)}):
            raise NotFound("user")
        if not active:
            await sessions_db.delete_for_user(conn, user_id)


async def reset_totp(db: Database, user_id: int) -> None:
    """Remove the user's TOTP secret and recovery codes (see `Admin.reset_totp`)."""
    async with db.transaction() as conn:
        if await admin_db.user_in(conn, user_id) is None:
            raise NotFound("user")
        await totp_db.remove(conn, user_id)


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body's fields as the users table stores them."""
    return {name: int(value) if isinstance(value, bool) else value
            for name, value in fields.items()}


async def delete_own_account(db: Database, images: Images, user_id: int, password: str,
                             base_url: str) -> None:
    """A user deletes their own account with all its data, after giving their password
    again. The last active admin cannot (422): someone must stay able to run the instance."""
    user = await users_db.get_user(db, user_id)
    stored = user["password_hash"] if user is not None else None
    if not await asyncio.to_thread(verify_password, password, stored):
        raise ValidationError("The password is not right.",
                              [{"field": "password", "message": "wrong password"}])
    await delete_user(db, images, user_id, base_url, keep_an_admin=True)


async def delete_user(db: Database, images: Images, user_id: int, base_url: str, *,
                      keep_an_admin: bool = False) -> Row:
    """Delete the user with all their data as one durable operation: rows and events in one
    transaction, then the files. Returns the deleted user's row; 404 for no such user.
    `keep_an_admin`: refuse (422) when they are the last active admin, checked inside the
    transaction so two admins deleting themselves at once cannot both go."""
    async with db.transaction() as conn:
        user = await admin_db.user_in(conn, user_id)
        if user is None:
            raise NotFound("user")
        if keep_an_admin and user["is_admin"] and not await admin_db.other_admins(conn, user_id):
            raise ValidationError.field("password", "you are the last admin: make someone "
                                                    "else an admin first")
        rows = await admin_db.images_of(conn, user_id)
        for row in rows:
            await images.record_deleted(conn, row, base_url, "deleted")
        await admin_db.delete_user(conn, user_id)
    images.on_change()
    for row in rows:
        await images.discard_files(row)
    return user
