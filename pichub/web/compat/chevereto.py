"""Chevereto's API V1 upload, `POST /api/1/upload`: ShareX's built-in Chevereto uploader and
imgBB-style clients speak it.

- `key` (a PicHub token) as a form or query field, or the `X-API-Key` header;
- `source`: a file part, a base64 string (or `data:` URL), or an http(s) URL that
  PicHub fetches like any upload by URL (`web.fetch`: the SSRF guard, `storage.max_upload_mb`
  and the `storage.fetch_*` limits); read as it streams (`compat.source`);
- `format`: `json` (default), `txt` (the URL as text), `redirect` (to the image's page);
- `album_id`, `title`/`description` are kept; other Chevereto fields are ignored.

The answer is Chevereto's (`status_code`, `success`, `image{…}`, `status_txt`), with
`thumb` (160×160) and `medium` (500 px wide) variants, signed when they must be, and
`delete_url`. Errors answer `{"status_code", "error": {message, code, context}, "status_txt"}`
with PicHub's status (or the message as text with `format=txt`). It counts against the
caller's `api` and `upload` rate limits like the native upload.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePath
from typing import Any, Final

from aiohttp import web

from pichub.errors import ValidationError
from pichub.imaging.formats import ext_of
from pichub.keys import BLOBS, FETCHER, SERVICES, SETTINGS, STORAGE, UPLOAD_TMP
from pichub.models.base import validate
from pichub.models.images import UploadedImage, variant_url
from pichub.models.uploads import UploadForm
from pichub.services.accounts import Actor
from pichub.web.api.upload import store_received
from pichub.web.common import base_url
from pichub.web.compat.common import authenticate, digests, token_of, with_rate_headers
from pichub.web.compat.source import FIELD, SourceForm, read_source_form
from pichub.web.shapes import CHEVERETO_PATHS, ERROR_SHAPE, text_error

FORMATS: Final = ("json", "txt", "redirect")
THUMB: Final = 160
MEDIUM: Final = 500


def _options(fields: dict[str, str]) -> UploadForm:
    """Chevereto's fields as PicHub's upload options (its `format` is the answer's)."""
    description = fields.get("description") or fields.get("title") or ""
    return validate(UploadForm, {"album_id": fields.get("album_id", ""),
                                 "description": description})


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _variant(image: UploadedImage, base: str, key: str | None, name: str,
             **params: int | str) -> dict[str, Any]:
    ext = ext_of(image.format)
    stem = PurePath(image.filename).stem
    return {"filename": f"{stem}.{name}.{ext}", "name": f"{stem}.{name}",
            "mime": image.mime, "extension": ext,
            "url": variant_url(base, image.id, key, ext, **params)}


def answer(image: UploadedImage, base: str, key: str | None, md5: str) -> dict[str, Any]:
    """Chevereto's upload answer for a stored image."""
    date = image.created_at.replace("T", " ").removesuffix("Z")
    medium = _variant(image, base, key, "md", w=MEDIUM)
    body = {
        "name": PurePath(image.filename).stem, "extension": ext_of(image.format),
        "filename": image.filename, "original_filename": image.original_name,
        "title": PurePath(image.original_name).stem, "description": image.description,
        "size": image.size, "size_formatted": _size_text(image.size),
        "width": image.width, "height": image.height,
        "ratio": round(image.width / image.height, 6) if image.height else 0,
        "mime": image.mime, "md5": md5, "date": date, "date_gmt": date, "nsfw": "0",
        "id_encoded": image.id, "url": image.url, "url_viewer": f"{base}/i/{image.id}",
        "url_short": f"{base}/i/{image.id}", "display_url": medium["url"],
        "thumb": _variant(image, base, key, "th", w=THUMB, h=THUMB, fit="cover"),
        "medium": medium, "delete_url": image.delete_url,
    }
    return {"status_code": 200, "success": {"message": "image uploaded", "code": 200},
            "image": body, "status_txt": "OK"}


async def _caller(request: web.Request, form: SourceForm, early: Actor | None) -> Actor:
    if early is not None:
        return early
    return await authenticate(request, token_of(form.fields.get("key")), upload=True,
                              scope="write")


async def _fetch_url(request: web.Request, form: SourceForm) -> None:
    """A `source` URL (from the body, or the query) downloaded into the form's files."""
    url = form.url or (request.query.get(FIELD) if not form.files else None)
    if not url:
        return
    form.files.append(await request.app[FETCHER].fetch(0, url))


async def upload(request: web.Request) -> web.StreamResponse:
    early_key = request.headers.get("X-API-Key") or request.query.get("key")
    early = None
    if early_key:  # known before the body: refuse a bad key before reading anything
        early = await authenticate(request, token_of(early_key), upload=True, scope="write")
    settings = request.app[SETTINGS]
    if request.content_length:
        request.app[SERVICES].uploads.check_free_space(request.content_length)
    form = await read_source_form(request, request.app[UPLOAD_TMP], settings.storage)
    try:
        fmt = (form.fields.get("format") or request.query.get("format") or "json").lower()
        if fmt == "txt":
            request[ERROR_SHAPE] = text_error
        if fmt not in FORMATS:
            raise ValidationError.field("format", "must be json, txt or redirect")
        who = await _caller(request, form, early)
        await _fetch_url(request, form)
        if not form.files:
            raise ValidationError.field(FIELD, "is required")
        outcome = await store_received(request, who, _options(form.fields), form.files[:1])
    finally:
        form.cleanup()
    image = outcome.images[0]
    if fmt == "txt":
        return with_rate_headers(request, web.Response(text=image.url + "\n"))
    base = base_url(request)
    if fmt == "redirect":
        return with_rate_headers(request, web.Response(
            status=303, headers={"Location": f"{base}/i/{image.id}"}))
    blob = await request.app[STORAGE].local(request.app[BLOBS].path(image.id,
                                                                     ext_of(image.format)))
    md5, _ = await asyncio.to_thread(digests, str(blob))
    body = answer(image, base, request.app[SERVICES].images.signing_key, md5)
    return with_rate_headers(request, web.json_response(body))


ROUTES = [web.post(path, upload) for path in CHEVERETO_PATHS]
