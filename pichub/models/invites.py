"""Invites: what `POST /admin/invites` accepts and what the invite routes answer."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import ConfigDict, Field

from pichub.db.database import Row
from pichub.models.admin import QUOTA
from pichub.models.base import TIMESTAMP_EXAMPLE, Model, Text
from pichub.models.sharing import Count

#: How long an invite lives by default (a week), and at most (a year).
DEFAULT_EXPIRES_S: Final = 7 * 86400
MAX_EXPIRES_S: Final = 366 * 86400
MAX_NOTE: Final = 200


class InviteCreate(Model):
    """`POST /admin/invites`."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"expires_in": 604800, "note": "for Carol", "quota_mb": 2048}]})

    expires_in: Annotated[int | None, Count(60, MAX_EXPIRES_S), Field(
        description="Seconds until the link stops working (default a week).")] = None
    note: Annotated[str, Text(0, MAX_NOTE, strip=True, nullable=True), Field(
        description="Who it is for: shown in the invite list only.")] = ""
    quota_mb: Annotated[int | None, QUOTA, Field(
        description="The new account's quota in megabytes; null = no limit.")] = None


class Invite(Model):
    """An invite as the list shows it (the link's secret is stored hashed: never shown)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 3, "note": "for Carol", "quota_mb": 2048, "created_by": "admin",
        "created_at": TIMESTAMP_EXAMPLE, "expires_at": TIMESTAMP_EXAMPLE, "used_at": None,
        "used_by": None, "status": "unused"}]})

    id: int
    note: str
    quota_mb: int | None
    created_by: str | None = Field(description="The admin who made it (null once deleted).")
    created_at: str
    expires_at: str
    used_at: str | None
    used_by: str | None = Field(description="The account made with it (null: unused, or "
                                            "that account was deleted).")
    status: str = Field(description="`unused`, `used` or `expired`.")

    @classmethod
    def from_row(cls, row: Row, now_iso: str) -> Invite:
        status = ("used" if row["used_at"] else
                  "expired" if row["expires_at"] <= now_iso else "unused")
        return cls.model_construct(
            id=row["id"], note=row["note"], quota_mb=row["quota_mb"],
            created_by=row["created_by_name"], created_at=row["created_at"],
            expires_at=row["expires_at"], used_at=row["used_at"],
            used_by=row["used_by_name"], status=status)


class InviteCreated(Model):
    """The answer to `POST /admin/invites`: the link, shown this once."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 3, "url": "https://img.example.com/signup?invite=Zx3…", "expires_at":
        TIMESTAMP_EXAMPLE}]})

    id: int
    url: str = Field(description="The single-use sign-up link. Only its hash is stored: it "
                                 "cannot be shown again.")
    expires_at: str
