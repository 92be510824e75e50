"""The options of `POST /upload`: multipart form fields besides the files.

Names, values and defaults are the seed API's: booleans as `true/false/1/0`,
`quality` 1-100 (the server's `images.default_quality` when absent), `format`
auto/jpeg/jpg/png/webp, and avif/jxl besides the seed's. Options may come before or
after the files.

`UploadUrls` is the same upload as a JSON object: URLs to fetch instead of files,
with the same options (JSON booleans and numbers, or the form's strings).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import ConfigDict, Field

from pichub.imaging.formats import FORMAT_ALIASES, UPLOAD_FORMATS
from pichub.models.base import Checked, FormBool, FormChoice, FormInt, Model, Text, problem
from pichub.models.sharing import EXPIRES_IN, MAX_VIEWS_COUNT, MOMENT, VISIBILITY, Visibility

FILE_FIELDS: Final = ("files[]", "files", "file", "image", "image[]")
#: Form fields that carry a URL to fetch (each may repeat).
URL_FIELDS: Final = ("url", "url[]", "urls", "urls[]")
FORMAT_CHOICES: Final[dict[str, str | None]] = {"auto": None} | {
    alias: fmt for alias, fmt in sorted(FORMAT_ALIASES.items(), key=lambda item: item[1])
    if fmt in UPLOAD_FORMATS}


class UploadForm(Model):
    """Every option of an upload; a bad one fails the whole request with one 422."""

    album_id: Annotated[int | None, FormInt(), Field(
        description="Add the images to this album of yours (not an integer → 422; not "
                    "yours → 404).")] = None
    quality: Annotated[int | None, FormInt(1, 100), Field(
        description="Encoder quality when PicHub re-encodes; default "
                    "`images.default_quality`.", json_schema_extra={"default": 85})] = None
    format: Annotated[str | None, FormChoice(FORMAT_CHOICES, "auto"), Field(
        description="Output format (`jpeg`/`jpg`, `png`, `webp`, `avif`, `jxl`); anything but "
                    "`auto` wins over `convertToWebP`.",
        json_schema_extra={"default": "auto"})] = None
    remove_exif: Annotated[bool, FormBool(False), Field(
        description="Strip EXIF, XMP, GPS and comments (the ICC profile is kept).")] = False
    keep_location: Annotated[bool, FormBool(False), Field(
        description="Keep the location (EXIF GPS, XMP and IPTC location) that is otherwise "
                    "removed; no effect with `remove_exif`.")] = False
    convertToWebP: Annotated[bool, FormBool(True), Field(  # noqa: N815 - the seed's name
        description="Store as WebP when `format` is `auto` (animated GIF → animated "
                    "WebP). False keeps the source format, except HEIC, which browsers "
                    "cannot show: JPEG (PNG with alpha).")] = True
    auto_rename: Annotated[bool, FormBool(False), Field(
        description="A random `filename` instead of the sanitised original name.")] = False
    is_public: Annotated[bool, FormBool(True), Field(
        description="The seed's alias of `visibility`: true → public (listed in the public "
                    "square), false → unlisted. `visibility` wins when both are sent.")] = True
    visibility: Annotated[Visibility | None, VISIBILITY, Field(
        description="public (the default, from `is_public`), unlisted or private: see the "
                    "Image object.")] = None
    description: Annotated[str, Text(0, 1000)] = ""
    expires_in: Annotated[int | None, EXPIRES_IN, Field(
        description="The images expire this many seconds after the upload: then they "
                    "answer 410 and are deleted.")] = None
    expires_at: Annotated[str | None, MOMENT, Field(
        description="The images expire at this moment (RFC 3339, in the future). Not "
                    "together with `expires_in`.")] = None
    max_views: Annotated[int | None, MAX_VIEWS_COUNT, Field(
        description="Each image expires once `/img` has served it this many times to "
                    "anyone but you.")] = None

    def stored_visibility(self) -> str:
        """`visibility`, else what `is_public` stands for."""
        return self.visibility or ("public" if self.is_public else "unlisted")

    def target_format(self) -> str | None:
        """The stored format asked for; None keeps the source's."""
        return self.format or ("webp" if self.convertToWebP else None)


def _url_list(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise problem("must be a list of URLs")
    return value


def _one_url(value: object) -> str:
    if not isinstance(value, str):
        raise problem("must be a URL (a string)")
    return value


_URL_SCHEMA: Final[dict[str, Any]] = {"type": "string", "format": "uri",
                                      "example": "https://example.com/photo.jpg"}


class UploadUrls(UploadForm):
    """An upload as a JSON object: the images at `url` and `urls` (fetched by the server,
    each standing or falling alone), with the same options as the multipart form."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://example.com/photos/sunset.jpg", "album_id": 3, "is_public": False},
        {"urls": ["https://example.com/a.png", "https://example.com/b.gif"],
         "convertToWebP": False, "description": "Imported"}]})

    url: Annotated[str, Checked(_one_url, tuple(_URL_SCHEMA.items()), replace=True), Field(
        description="An image to fetch (http or https).")] = ""
    urls: Annotated[list[str], Checked(_url_list, (
        ("type", "array"), ("items", _URL_SCHEMA)), replace=True), Field(
        description="More images to fetch, after `url`.")] = []

    def all_urls(self) -> list[str]:
        """Every URL asked for, in order, blank ones left out."""
        return [url for url in (self.url, *self.urls) if url.strip()]
