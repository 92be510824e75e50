"""Images: the object the API answers with, and the PATCH body."""

from __future__ import annotations

import re
from html import escape
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from pydantic import ConfigDict, Field

from pichub.db.database import Row
from pichub.imaging.formats import ext_of, mime_of
from pichub.imaging.spec import sign
from pichub.models.base import BOOLEAN, ID_OR_NULL, TIMESTAMP_EXAMPLE, Model, Text

IMAGE_ID_EXAMPLE: Final = "Xb3kQ9vTz1Lm"
THUMBNAIL_WIDTH: Final = 300
Format = Literal["jpeg", "png", "webp", "gif", "avif", "jxl"]
_MARKDOWN_SPECIAL = re.compile(r"([\\\[\]])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def markdown_text(text: str) -> str:
    """`text` as literal Markdown link text: `\\`, `[` and `]` escaped, control characters
    (newlines included) turned into spaces, so a file name cannot close the image's
    brackets and point the link somewhere else."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", text))


def image_url(base_url: str, image_id: str, fmt: str) -> str:
    """`{base}/img/{id}.{ext}`: the stored bytes."""
    return f"{base_url}/img/{image_id}.{ext_of(fmt)}"


def variant_url(base_url: str, image_id: str, signing_key: str | None, ext: str = "webp",
                **params: int | str) -> str:
    """`{base}/img/{id}.{ext}?w=…`: a variant, signed (`s=`) when `images.signing_key` is
    set, since `/img` refuses an unsigned variant then (originals stay unsigned)."""
    path = f"/img/{image_id}.{ext}"
    query = {name: str(value) for name, value in params.items()}
    if signing_key:
        query["s"] = sign(path, query, signing_key)
    return f"{base_url}{path}?{urlencode(query)}"


class ImageLinks(Model):
    """Ready-to-paste forms of the image's URL."""

    url: str = Field(description="Same as the image's `url`.")
    thumbnail: str = Field(description=f"A {THUMBNAIL_WIDTH} px wide WebP variant (signed "
                                       "when `images.signing_key` is set).")
    markdown: str = Field(description="`![original_name](url)`, the name escaped.")
    html: str = Field(description="`<img src alt>`, the name escaped.")
    bbcode: str = Field(description="`[img]url[/img]`")


_EXAMPLE_URL: Final = f"https://pichub.example.com/img/{IMAGE_ID_EXAMPLE}.webp"
IMAGE_EXAMPLE: Final[dict[str, Any]] = {
    "id": IMAGE_ID_EXAMPLE, "url": _EXAMPLE_URL, "filename": "holiday_photo.webp",
    "original_name": "holiday photo.jpg", "description": "", "format": "webp",
    "mime": "image/webp", "width": 1600, "height": 1200, "size": 214873,
    "sha256": "9f2c4d0e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c",
    "album_id": 3, "is_public": True, "created_at": TIMESTAMP_EXAMPLE,
    "original_format": None, "original_size": None, "duplicate_of": None,
    "links": {"url": _EXAMPLE_URL, "thumbnail": f"{_EXAMPLE_URL}?w={THUMBNAIL_WIDTH}",
              "markdown": f"![holiday photo.jpg]({_EXAMPLE_URL})",
              "html": f'<img src="{_EXAMPLE_URL}" alt="holiday photo.jpg">',
              "bbcode": f"[img]{_EXAMPLE_URL}[/img]"},
}


class Image(Model):
    """A stored image as the API shows it."""

    model_config = ConfigDict(json_schema_extra={"examples": [IMAGE_EXAMPLE]})

    id: str = Field(description="Short, random, URL-safe (72 bits: unguessable).",
                    examples=[IMAGE_ID_EXAMPLE])
    url: str = Field(description="Absolute: `{public_url}/img/{id}.{ext}`.")
    filename: str = Field(description="Sanitised original name (random with `auto_rename`), "
                                      "with the stored format's extension.")
    original_name: str = Field(description="The name as uploaded.")
    description: str = Field(description="Up to 1000 characters.")
    format: Format
    mime: str = Field(examples=["image/webp"])
    width: int
    height: int
    size: int = Field(description="Bytes of the stored file that `url` serves.")
    sha256: str = Field(description="Hex SHA-256 of the stored bytes.")
    album_id: int | None
    is_public: bool = Field(description="Listed in the public square. Images that are not "
                                        "are still served to anyone who has the URL.")
    created_at: str = Field(description="Upload time (ISO 8601 UTC, `Z`).",
                            examples=[TIMESTAMP_EXAMPLE])
    links: ImageLinks
    original_format: Literal["heic"] | None = Field(
        description="The format of the original upload kept beside the stored image (a HEIC "
                    "photo is stored as WebP or JPEG, which browsers show): the owner downloads "
                    "it from `GET /images/{id}/original`. Null when the stored file is the "
                    "upload or its only version.")
    original_size: int | None = Field(
        description="Bytes of the kept original, counted in the quota with `size`; null "
                    "when none is kept.")
    duplicate_of: str | None = Field(
        description="When you already had an image with exactly these stored bytes at "
                    "upload time: its id (this upload is still a new image of its own; the "
                    "bytes are stored once). Null otherwise.")

    @classmethod
    def from_row(cls, row: Row, base_url: str, signing_key: str | None = None) -> Image:
        """The image of a row; `signing_key` (`images.signing_key`) signs the variant URLs."""
        url = image_url(base_url, row["id"], row["format"])
        name = row["original_name"]
        links = ImageLinks(
            url=url, thumbnail=variant_url(base_url, row["id"], signing_key, w=THUMBNAIL_WIDTH),
            markdown=f"![{markdown_text(name)}]({url})",
            html=f'<img src="{url}" alt="{escape(name)}">', bbcode=f"[img]{url}[/img]")
        return cls.model_construct(
            id=row["id"], url=url, filename=row["filename"], original_name=name,
            description=row["description"], format=row["format"], mime=mime_of(row["format"]),
            width=row["width"], height=row["height"], size=row["size"], sha256=row["sha256"],
            album_id=row["album_id"], is_public=bool(row["is_public"]),
            created_at=row["created_at"], links=links, original_format=row["original_format"],
            original_size=row["original_size"] if row["original_format"] else None,
            duplicate_of=row["duplicate_of"])


class UploadedImage(Image):
    """An image as the upload answers it: with its delete link, which no other answer
    carries (only the link's hash is stored, so it can be shown only this once)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {**IMAGE_EXAMPLE, "delete_url": "https://pichub.example.com/delete/"
                                        "pqJ4vB0qk1m5xW2eZc8Yt7Lr3Na6Ds9Ui0Ho2Gf4Kj8"}]})

    delete_url: str = Field(description="Deletes the image without signing in: opening it "
                                        "shows a confirmation page (a GET never deletes), "
                                        "whose button deletes. Keep it secret; shown only "
                                        "in this answer.")

    @classmethod
    def of(cls, image: Image, delete_url: str) -> UploadedImage:
        return cls.model_construct(**dict(image), delete_url=delete_url)


class ImageUpdate(Model):
    """`PATCH /images/{id}`: any of the fields; `album_id: null` takes the image out of its
    album. At least one field."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"album_id": 3, "is_public": False}]})

    album_id: Annotated[int | None, ID_OR_NULL, Field(
        description="An album of yours (else 404); null = none.")] = None
    is_public: Annotated[bool | None, BOOLEAN] = None
    description: Annotated[str | None, Text(0, 1000, nullable=True)] = None
