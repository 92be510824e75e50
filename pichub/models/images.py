"""Images: the object the API answers with, and the PATCH body."""

from __future__ import annotations

import json
import re
from html import escape
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from pydantic import ConfigDict, Field

from pichub.db.database import Row
from pichub.imaging.formats import ext_of, mime_of
from pichub.imaging.spec import sign
from pichub.models.base import BOOLEAN, ID_OR_NULL, TIMESTAMP_EXAMPLE, Model, Text
from pichub.models.sharing import EXPIRES_IN, MAX_VIEWS_COUNT, MOMENT, VISIBILITY, Visibility

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


class GpsPosition(Model):
    """Where the picture was taken, as its EXIF says."""

    latitude: float = Field(description="WGS 84 degrees, south negative.", examples=[48.858])
    longitude: float = Field(description="WGS 84 degrees, west negative.", examples=[2.2945])
    altitude: float | None = Field(description="Metres above sea level (negative below); "
                                               "null when not recorded.")


class ExifSummary(Model):
    """A few camera facts from the image's EXIF, read once at upload. Only these: no serial
    numbers, owner names or maker notes. Each is null when the EXIF does not say."""

    make: str | None = Field(description="Camera maker.", examples=["Apple"])
    model: str | None = Field(description="Camera model.", examples=["iPhone 15 Pro"])
    lens: str | None = Field(description="Lens model.",
                             examples=["iPhone 15 Pro back camera 6.765mm f/1.78"])
    taken_at: str | None = Field(
        description="When the picture was taken (`DateTimeOriginal`, else `DateTimeDigitized`): "
                    "the camera's local time, ISO 8601, with its UTC offset when the camera "
                    "recorded one (`OffsetTimeOriginal`); EXIF dates carry no time zone "
                    "otherwise, so this is not converted to UTC.",
        examples=["2024-05-01T10:00:00+02:00"])
    exposure_time: float | None = Field(description="Seconds (1/250 s is 0.004).",
                                        examples=[0.004])
    f_number: float | None = Field(description="Aperture, the f-number (f/1.8 is 1.8).",
                                   examples=[1.8])
    iso: int | None = Field(description="ISO speed.", examples=[100])
    focal_length: float | None = Field(description="Millimetres, the lens's own (not the "
                                                   "35 mm equivalent).", examples=[6.77])
    gps: GpsPosition | None = Field(
        description="Null in every answer except `GET /images/{id}?include=gps` (the owner "
                    "only), and there too unless the image kept its location: uploaded with "
                    "`keep_location=true` (and without `remove_exif`). PicHub stores the "
                    "position only then, since only then does the stored file have it.")


_EXAMPLE_URL: Final = f"https://pichub.example.com/img/{IMAGE_ID_EXAMPLE}.webp"
IMAGE_EXAMPLE: Final[dict[str, Any]] = {
    "id": IMAGE_ID_EXAMPLE, "url": _EXAMPLE_URL, "filename": "holiday_photo.webp",
    "original_name": "holiday photo.jpg", "description": "", "format": "webp",
    "mime": "image/webp", "width": 1600, "height": 1200, "size": 214873,
    "sha256": "9f2c4d0e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c",
    "album_id": 3, "is_public": True, "visibility": "public", "expires_at": None,
    "max_views": None, "views": 0, "created_at": TIMESTAMP_EXAMPLE,
    "original_format": None, "original_size": None, "duplicate_of": None,
    "blurhash": "LKO2?U%2Tw=w]~RBVZRi};RPxuwH", "dominant_color": "#7a8c9e",
    "exif": {"make": "Apple", "model": "iPhone 15 Pro",
             "lens": "iPhone 15 Pro back camera 6.765mm f/1.78",
             "taken_at": "2024-05-01T10:00:00+02:00", "exposure_time": 0.004,
             "f_number": 1.78, "iso": 100, "focal_length": 6.77, "gps": None},
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
    is_public: bool = Field(description="The seed's name for `visibility: public`: true "
                                        "only for a public image.")
    visibility: Visibility = Field(
        description="`public`: listed on the square, served to anyone. `unlisted`: served "
                    "to anyone who has the URL, listed nowhere. `private`: served only to "
                    "its owner (bearer token or signed-in browser) and through signed links "
                    "(`POST /images/{id}/links`); anyone else gets 404.")
    expires_at: str | None = Field(
        description="When the image expires (ISO 8601 UTC, `Z`): from then on it answers "
                    "410 Gone and is soon deleted (`image.deleted` with `reason: expired`). "
                    "Also set when the last of `max_views` is used. Null: never.",
        examples=[TIMESTAMP_EXAMPLE])
    max_views: int | None = Field(
        description="How many times `/img` may serve the image (any variant, to anyone but "
                    "its owner) before it expires; null: no limit.")
    views: int = Field(description="Views counted against `max_views` since it was set.")
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
    blurhash: str | None = Field(
        description="A BlurHash (https://blurha.sh) of the image for a placeholder while it "
                    "loads: 4×3 components (3×4 for portrait images, 4×4 for square ones), "
                    "transparent pixels on white; decode it at a small size with the image's "
                    "`width`/`height` ratio. An animation's is of its first frame. Null for "
                    "an image stored before PicHub computed it, until `pichub backfill`.",
        examples=["LKO2?U%2Tw=w]~RBVZRi};RPxuwH"])
    dominant_color: str | None = Field(
        description="The image's most common colour, `#rrggbb` (lower case): the largest "
                    "cluster of a 6-colour median-cut reduction, pixels under half opaque "
                    "left out (a fully transparent image is white). Null like `blurhash`.",
        pattern="^#[0-9a-f]{6}$", examples=["#7a8c9e"])
    exif: ExifSummary | None = Field(
        description="Camera facts from the EXIF the stored file keeps; null when it has none "
                    "(uploaded with `remove_exif=true`, stored as GIF, or the source had none "
                    "of these facts), or for an image stored before PicHub read them, until "
                    "`pichub backfill`.")

    @classmethod
    def from_row(cls, row: Row, base_url: str, signing_key: str | None = None, *,
                 include_gps: bool = False) -> Image:
        """The image of a row; `signing_key` (`images.signing_key`) signs the variant URLs;
        `include_gps` adds the stored GPS position (for its owner who asked for it)."""
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
            album_id=row["album_id"], is_public=row["visibility"] == "public",
            visibility=row["visibility"], expires_at=row["expires_at"],
            max_views=row["max_views"], views=row["views"],
            created_at=row["created_at"], links=links, original_format=row["original_format"],
            original_size=row["original_size"] if row["original_format"] else None,
            duplicate_of=row["duplicate_of"],
            blurhash=row["blurhash"], dominant_color=row["dominant_color"],
            exif=exif_summary(row, include_gps))


def exif_summary(row: Row, include_gps: bool = False) -> ExifSummary | None:
    """The stored EXIF summary of an image row, with its GPS position only if `include_gps`
    (and stored); None when there is nothing to say."""
    gps = None
    if include_gps and row["gps_latitude"] is not None and row["gps_longitude"] is not None:
        gps = GpsPosition.model_construct(latitude=row["gps_latitude"],
                                          longitude=row["gps_longitude"],
                                          altitude=row["gps_altitude"])
    facts: dict[str, Any] = json.loads(row["exif"]) if row["exif"] else {}
    if not facts and gps is None:
        return None
    known = {name: facts.get(name) for name in ExifSummary.model_fields if name != "gps"}
    return ExifSummary.model_construct(**known, gps=gps)


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
    album, `expires_at: null` (or `expires_in: null`) removes its expiry, `max_views: null`
    its view limit. At least one field."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"album_id": 3, "is_public": False}, {"visibility": "private", "expires_in": 86400}]})

    album_id: Annotated[int | None, ID_OR_NULL, Field(
        description="An album of yours (else 404); null = none.")] = None
    is_public: Annotated[bool | None, BOOLEAN, Field(
        description="The seed's alias of `visibility`: true → public, false → unlisted. "
                    "`visibility` wins when both are sent.")] = None
    visibility: Annotated[Visibility | None, VISIBILITY, Field(
        description="public, unlisted or private.")] = None
    description: Annotated[str | None, Text(0, 1000, nullable=True)] = None
    expires_in: Annotated[int | None, EXPIRES_IN, Field(
        description="Expire this many seconds from now; null removes the expiry.")] = None
    expires_at: Annotated[str | None, MOMENT, Field(
        description="Expire at this moment (RFC 3339, in the future); null removes the "
                    "expiry. Not together with `expires_in`.")] = None
    max_views: Annotated[int | None, MAX_VIEWS_COUNT, Field(
        description="Allow this many more views, counted from now (`views` restarts at 0); "
                    "null removes the limit.")] = None
