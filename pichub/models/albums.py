"""Albums: the object the API answers with, and the POST and PATCH bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from pichub.db.database import Row
from pichub.models.base import BOOLEAN, TIMESTAMP_EXAMPLE, Checked, Model, Text, problem
from pichub.models.images import IMAGE_EXAMPLE, image_url
from pichub.models.sharing import EXPIRES_IN, MOMENT, VISIBILITY, Visibility


class Album(Model):
    """An album as the API shows it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 3, "name": "我的相册", "description": "这是一个示例相册", "is_public": True,
        "visibility": "public", "has_password": False, "expires_at": None, "image_count": 12,
        "cover_url": IMAGE_EXAMPLE["url"],
        "created_at": TIMESTAMP_EXAMPLE, "updated_at": TIMESTAMP_EXAMPLE}]})

    id: int
    name: str = Field(description="1-100 characters.")
    description: str = Field(description="Up to 1000 characters.")
    is_public: bool = Field(description="The seed's name for `visibility: public`.")
    visibility: Visibility = Field(
        description="public or unlisted: its page `/a/{id}` shows it to anyone with the "
                    "link (its public and unlisted images, never private ones); private: "
                    "only to its owner. Each image keeps its own visibility.")
    has_password: bool = Field(
        description="Whether visitors of its page need a password (the password itself is "
                    "never answered). Its images are then served at `/img` only to their "
                    "owner or through a signed link.")
    expires_at: str | None = Field(
        description="When the album expires (ISO 8601 UTC, `Z`): from then on its page "
                    "answers 410 Gone and the album is soon deleted (`album.deleted`, "
                    "`reason: expired`); its images stay, out of any album. Null: never.",
        examples=[None])
    image_count: int
    cover_url: str | None = Field(description="The newest image's URL.")
    created_at: str = Field(description="Creation time (ISO 8601 UTC, `Z`).",
                            examples=[TIMESTAMP_EXAMPLE])
    updated_at: str = Field(description="Last change (ISO 8601 UTC, `Z`).",
                            examples=[TIMESTAMP_EXAMPLE])

    @property
    def cover_id(self) -> str | None:
        """The id of the cover image (the album's newest), for thumbnails."""
        if self.cover_url is None:
            return None
        return self.cover_url.rsplit("/img/", 1)[1].split(".", 1)[0]

    @classmethod
    def from_row(cls, row: Row, base_url: str) -> Album:
        cover = None
        if row["cover"]:  # "<id>.<format>" of the album's newest image
            cover_id, cover_format = row["cover"].split(".", 1)
            cover = image_url(base_url, cover_id, cover_format)
        return cls.model_construct(
            id=row["id"], name=row["name"], description=row["description"],
            is_public=row["visibility"] == "public", visibility=row["visibility"],
            has_password=row["password_hash"] is not None, expires_at=row["expires_at"],
            image_count=row["image_count"], cover_url=cover,
            created_at=row["created_at"], updated_at=row["updated_at"])


#: An album's password: what its page's visitors type; null (PATCH) removes it.
PASSWORD_FIELD = Field(description="A password visitors of the album's page must give "
                                   "(1-200 characters; stored only as a hash). In PATCH, "
                                   "null removes it.")
MAX_PASSWORD = 200


def _password(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise problem("must be a string or null")
    if not 1 <= len(value) <= MAX_PASSWORD:
        raise problem(f"must be 1-{MAX_PASSWORD} characters")
    return value


#: `expires_in` / `expires_at` of album create and PATCH (as images have them).
EXPIRES_IN_FIELD = Field(description="Expire the album this many seconds from now (1 s to "
                                     "about ten years); in PATCH, null removes the expiry.")
EXPIRES_AT_FIELD = Field(description="Expire the album at this moment (RFC 3339 with `Z` or "
                                     "an offset; in the future); in PATCH, null removes the "
                                     "expiry. Not together with `expires_in`.")


PASSWORD = Checked(_password, (("type", ["string", "null"]), ("minLength", 1),
                               ("maxLength", MAX_PASSWORD), ("writeOnly", True)), replace=True)


class AlbumCreate(Model):
    """`POST /albums`."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "我的相册", "description": "这是一个示例相册", "is_public": True}]})

    name: Annotated[str, Text(1, 100, strip=True)]
    description: Annotated[str, Text(0, 1000, nullable=True)] = ""
    is_public: Annotated[bool | None, BOOLEAN, Field(
        description="The seed's alias of `visibility` (default true): true → public, "
                    "false → unlisted. `visibility` wins when both are sent.")] = None
    visibility: Annotated[Visibility | None, VISIBILITY, Field(
        description="public (the default), unlisted or private.")] = None
    password: Annotated[str | None, PASSWORD, PASSWORD_FIELD] = None
    expires_in: Annotated[int | None, EXPIRES_IN, EXPIRES_IN_FIELD] = None
    expires_at: Annotated[str | None, MOMENT, EXPIRES_AT_FIELD] = None


class AlbumUpdate(Model):
    """`PATCH /albums/{id}`: at least one field."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Holidays 2026"}]})

    name: Annotated[str | None, Text(1, 100, strip=True)] = None
    description: Annotated[str | None, Text(0, 1000, nullable=True)] = None
    is_public: Annotated[bool | None, BOOLEAN, Field(
        description="The seed's alias of `visibility`: true → public, false → unlisted.")] \
        = None
    visibility: Annotated[Visibility | None, VISIBILITY, Field(
        description="public, unlisted or private; wins over `is_public`.")] = None
    password: Annotated[str | None, PASSWORD, PASSWORD_FIELD] = None
    expires_in: Annotated[int | None, EXPIRES_IN, EXPIRES_IN_FIELD] = None
    expires_at: Annotated[str | None, MOMENT, EXPIRES_AT_FIELD] = None
