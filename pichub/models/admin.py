"""What the admin API answers and accepts: users as an admin sees them, every user's images
and tokens, failing webhook endpoints, and the overview (`Stats`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from pichub.db.database import Row
from pichub.models.base import BOOLEAN, TIMESTAMP_EXAMPLE, Checked, Model, Text, problem
from pichub.models.images import IMAGE_EXAMPLE, Image

#: The largest quota that can be set (a million GB): far past any disk, inside SQLite's ints.
MAX_QUOTA_MB = 1_000_000_000


def _quota(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise problem("must be an integer or null")
    if not 0 <= value <= MAX_QUOTA_MB:
        raise problem(f"must be between 0 and {MAX_QUOTA_MB}")
    return value


#: Megabytes (2^20 bytes) a user may store, or null for no limit.
QUOTA = Checked(_quota, (("type", ["integer", "null"]), ("minimum", 0),
                         ("maximum", MAX_QUOTA_MB)), replace=True)

_USER_EXAMPLE: dict[str, Any] = {"id": 2, "username": "bob", "is_admin": False, "is_active": True,
                 "quota_mb": 1024, "image_count": 42, "album_count": 3,
                 "used_bytes": 73400320, "created_at": TIMESTAMP_EXAMPLE,
                 "email": "bob@example.org", "two_factor": True}


class AdminUser(Model):
    """A user as the admin API shows it."""

    model_config = ConfigDict(json_schema_extra={"examples": [_USER_EXAMPLE]})

    id: int
    username: str
    is_admin: bool
    is_active: bool = Field(description="False: disabled. Their tokens and sessions are "
                                        "refused and they cannot sign in; their data stays.")
    quota_mb: int | None = Field(description="Megabytes they may store; null = no limit.")
    image_count: int
    album_count: int
    used_bytes: int = Field(description="Bytes stored: their images' files and kept "
                                        "originals (what the quota counts).")
    created_at: str = Field(examples=[TIMESTAMP_EXAMPLE])
    email: str | None = Field(default=None, description="The e-mail single sign-on may link "
                              "a first sign-in by (`oidc.link_by_email`); null: none.")
    two_factor: bool = Field(default=False, description="Two-factor sign-in (TOTP) is on; "
                             "`DELETE /admin/users/{id}/totp` resets it.")

    @classmethod
    def from_row(cls, row: Row, *, two_factor: bool = False) -> AdminUser:
        return cls.model_construct(
            id=row["id"], username=row["username"], is_admin=bool(row["is_admin"]),
            is_active=bool(row["is_active"]), quota_mb=row["quota_mb"],
            image_count=row["image_count"], album_count=row["album_count"],
            used_bytes=row["used_bytes"], created_at=row["created_at"],
            email=row["email"], two_factor=two_factor)


class AdminUserCreate(Model):
    """`POST /admin/users`."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"username": "bob", "password": "correct horse battery", "quota_mb": 1024}]})

    username: Annotated[str, Text(1, 64, strip=True), Field(
        description="1-64 letters, digits, `_`, `.` or `-`; unique.")]
    password: Annotated[str, Text(8, 1024), Field(description="At least 8 characters.")]
    is_admin: Annotated[bool, BOOLEAN] = False
    quota_mb: Annotated[int | None, QUOTA] = None


class AdminUserUpdate(Model):
    """`PATCH /admin/users/{id}`: at least one field."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"is_active": False}, {"quota_mb": 2048, "is_admin": True},
        {"password": "a new long password"}, {"email": "bob@example.org"}]})

    is_active: Annotated[bool | None, BOOLEAN, Field(
        description="false disables the user: their tokens and sessions stop working at once "
                    "(every session is signed out); true enables them again.")] = None
    is_admin: Annotated[bool | None, BOOLEAN] = None
    quota_mb: Annotated[int | None, QUOTA, Field(
        description="Megabytes; null removes the limit.")] = None
    password: Annotated[str | None, Text(8, 1024), Field(
        description="A new password (at least 8 characters); their sessions are signed "
                    "out, their tokens keep working.")] = None
    email: Annotated[str | None, Text(0, 254, strip=True, nullable=True), Field(
        description="Their e-mail address, which single sign-on may link a first sign-in "
                    "by (`oidc.link_by_email`); one account per address, any case. "
                    "null or \"\" removes it.")] = None


class AdminImage(Image):
    """An image as the admin API shows it: with its owner."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {**IMAGE_EXAMPLE, "user_id": 2, "username": "bob"}]})

    user_id: int
    username: str

    @classmethod
    def of(cls, image: Image, user_id: int, username: str) -> AdminImage:
        return cls.model_construct(**dict(image), user_id=user_id, username=username)


class AdminToken(Model):
    """A live API token of any user (the token itself is never stored, so never shown)."""

    id: int
    user_id: int
    username: str
    name: str
    scope: str = Field(examples=["write"])
    created_at: str = Field(examples=[TIMESTAMP_EXAMPLE])
    last_used_at: str | None = Field(description="Within a minute; null: never used.")

    @classmethod
    def from_row(cls, row: Row, username: str) -> AdminToken:
        return cls.model_construct(id=row["id"], user_id=row["user_id"], username=username,
                                   name=row["name"], scope=row["scope"],
                                   created_at=row["created_at"],
                                   last_used_at=row["last_used_at"])


class FailingWebhook(Model):
    """A webhook endpoint with deliveries that failed for good (every attempt used)."""

    id: int
    user_id: int
    username: str
    url: str
    is_active: bool
    failed: int = Field(description="Deliveries that failed for good (kept in the log).")
    deliveries: int = Field(description="Deliveries in its log, any status.")
    last_failed_at: str = Field(description="When the newest failed delivery was created.")
    last_error: str | None

    @classmethod
    def from_row(cls, row: Row) -> FailingWebhook:
        return cls.model_construct(
            id=row["id"], user_id=row["user_id"], username=row["username"], url=row["url"],
            is_active=bool(row["is_active"]), failed=row["failed"],
            deliveries=row["delivery_count"], last_failed_at=row["last_failed_at"],
            last_error=row["last_error"])


class CacheStats(Model):
    """The variant cache: its size now, and its hits and misses since the server started."""

    bytes: int
    files: int
    hits: int
    misses: int
    hit_rate: float | None = Field(description="hits / (hits + misses), 0-1; null before "
                                               "the first request for a variant.")


class DiskStats(Model):
    """The file system of `storage.data_dir`."""

    free_bytes: int
    total_bytes: int


class DayUploads(Model):
    day: str = Field(description="A UTC day, `YYYY-MM-DD`.", examples=["2026-11-27"])
    uploads: int = Field(description="Images uploaded that day (those deleted since "
                                     "included).")


class Stats(Model):
    """The overview of the instance."""

    users: int
    active_users: int
    images: int
    bytes_stored: int = Field(description="Bytes of every image's files and kept originals.")
    cache: CacheStats
    disk: DiskStats
    uploads_per_day: list[DayUploads] = Field(description="The last 30 UTC days, oldest "
                                                          "first, today last.")

    def chart(self) -> list[dict[str, Any]]:
        """The days with their bar height in percent of the busiest day (for the page)."""
        most = max((d.uploads for d in self.uploads_per_day), default=0) or 1
        return [{"day": d.day, "uploads": d.uploads, "percent": round(100 * d.uploads / most)}
                for d in self.uploads_per_day]
