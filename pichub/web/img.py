"""GET|HEAD /img/{id}[.{ext}] and /{id}.{ext}: originals and on-the-fly variants.

Parameters and caching: README, "Dynamic images".

Ids never change content, so every answer carries a content ETag and
conditional requests are answered with 304 before any file I/O; the answers of
a shared image (not private, not expiring, no counted views) are cacheable
forever. Who may be answered at all, and how other answers may be cached:
web/access.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.helpers import ETAG_ANY

from pichub.config import ImageSettings
from pichub.errors import Forbidden, NotFound
from pichub.imaging.budget import decode_units
from pichub.imaging.formats import canonical, ext_of, mime_of
from pichub.imaging.pipeline import Original, Source, Variant
from pichub.imaging.spec import TransformSpec, verify
from pichub.keys import (
    BLOBS,
    LIMITER,
    PIPELINE,
    SERVICES,
    SETTINGS,
    STORAGE,
    TRUSTED_PROXIES,
)
from pichub.services.sharing import Link, moment
from pichub.timeutil import parse_iso
from pichub.web.access import admission, cache_headers
from pichub.web.clientip import rate_limit_key, request_client_ip
from pichub.web.files import (
    ImmutableFileResponse,
    VariantResponse,
    open_variant,
    variant_headers,
)

ACCEPT_ORDER = (("image/jxl", "jxl"), ("image/avif", "avif"), ("image/webp", "webp"))
#: Conditional or partial requests that FileResponse answers in full (412, 206, 416).
FILE_RESPONSE_HEADERS = (hdrs.RANGE, hdrs.IF_RANGE, hdrs.IF_MATCH, hdrs.IF_UNMODIFIED_SINCE)


def negotiate(accept: str, stored_format: str) -> str:
    """`fm=auto`: the best format the client says it takes (JPEG XL, then AVIF, then WebP:
    the smallest first at equal quality); JPEG (PNG for alpha) else."""
    for mime, fmt in ACCEPT_ORDER:
        if mime in accept:
            return fmt
    return "png" if stored_format in ("png", "gif") else "jpeg"


def requested_spec(query: Mapping[str, str], ext: str | None, accept: str, stored: str,
                   max_dimension: int) -> tuple[TransformSpec, bool]:
    """What the URL asks of the stored image, and whether that depends on `Accept`
    (`fm=auto`). Raises BadRequest naming a bad parameter."""
    params = dict(query)
    vary = params.get("fm", "").lower() == "auto"
    if vary:
        params["fm"] = negotiate(accept, stored)
    return TransformSpec.parse(params, ext, stored, max_dimension), vary


def signed(images: ImageSettings, path: str, query: Mapping[str, str]) -> bool:
    """True unless `images.signing_key` is set and `s` is not the URL's signature."""
    key = images.signing_key
    return key is None or verify(path, query, key.get_secret_value())


def _not_modified(request: web.Request, etag: str, modified: datetime) -> bool:
    if (tags := request.if_none_match) is not None:
        return any(tag.value in (etag, ETAG_ANY) for tag in tags)
    since = request.if_modified_since
    return since is not None and modified.replace(microsecond=0) <= since


def _answer(request: web.Request, path: Path, mime: str, etag: str, modified: datetime,
            vary: bool, cache: Mapping[str, str]) -> web.StreamResponse:
    headers: dict[str, str] = dict(cache)
    if vary:
        headers[hdrs.VARY] = "Accept"
    if _not_modified(request, etag, modified):
        response = web.Response(status=304, headers=headers)
        response.etag = etag
        response.last_modified = modified
        return response
    headers[hdrs.CONTENT_TYPE] = mime
    return ImmutableFileResponse(path, etag=etag, modified=modified, headers=headers)


async def variant_response(variant: Variant, modified: datetime, vary: bool,
                           cache: Mapping[str, str] | None = None) -> VariantResponse:
    """A cached variant sent whole (200); NotFound if it was purged (deleted) meanwhile.
    `cache`: its caching headers, when not those of a shared image."""
    try:
        if not variant.recent:  # its inode may need the disk: look it up in a thread first
            await asyncio.to_thread(os.stat, variant.path)
        fd, size = open_variant(variant.path)  # µs once cached: no thread round trip
    except FileNotFoundError:
        raise NotFound("image") from None
    return VariantResponse(fd, size, variant_headers(variant.mime, variant.etag, modified,
                                                       vary, cache))


async def _remote_original(request: web.Request, blob: Path, mime: str,
                           vary: bool) -> web.Response | None:
    """The stored file kept in the bucket: a redirect to a presigned URL (`serve =
    "redirect"`; not cacheable past the URL's life), else None once the local copy is
    here (fetched when missing), for the caller to send as any stored file."""
    storage = request.app[STORAGE]
    url = await storage.link(blob, mime=mime)
    if url is None:
        await storage.local(blob)
        return None
    headers = {hdrs.LOCATION: url, hdrs.CACHE_CONTROL: "private, no-store"}
    if vary:
        headers[hdrs.VARY] = "Accept"
    return web.Response(status=302, headers=headers)


async def _answer_variant(request: web.Request, variant: Variant, modified: datetime,
                          vary: bool, cache: Mapping[str, str]) -> web.StreamResponse:
    etag = variant.etag.strip('"')
    if _not_modified(request, etag, modified) or any(
            name in request.headers for name in FILE_RESPONSE_HEADERS):
        return _answer(request, variant.path, variant.mime, etag, modified, vary, cache)
    return await variant_response(variant, modified, vary, cache)


async def _limit_miss(request: web.Request, units: int) -> None:
    """Charge a cache miss to the client IP's `img_miss` budget, by its decode cost."""
    ip = request_client_ip(request, request.app[TRUSTED_PROXIES])
    decision = await request.app[LIMITER].check("img_miss", rate_limit_key(ip), units)
    if not decision.allowed:
        raise decision.error()


async def _source(app: web.Application, image_id: str) -> Source:
    """The stored image's facts: remembered by the pipeline, else from the database."""
    pipeline = app[PIPELINE]
    if (source := pipeline.source(image_id)) is not None:
        return source
    generation = pipeline.generation
    row = await app[SERVICES].images.find(image_id)
    if row is None:
        raise NotFound("image")
    source = Source(row["format"], parse_iso(row["created_at"]), row["sha256"][:32],
                    row["width"], row["height"], row["frames"], owner=row["user_id"],
                    visibility=row["visibility"], expires_at=moment(row["expires_at"]),
                    max_views=row["max_views"],
                    locked=await app[SERVICES].albums.locked(row["album_id"]))
    pipeline.remember(image_id, source, generation)
    return source


async def serve_image(request: web.Request) -> web.StreamResponse:
    """The image or variant a URL names (the cache-hit lane, web/hits.py, answers most hits
    before they get here; this view answers everything, hits included)."""
    app = request.app
    image_id = request.match_info["id"]
    ext = request.match_info.get("ext")
    if ext is not None and canonical(ext) is None:
        raise NotFound("image")
    source = await _source(app, image_id)
    admitted = await admission(request, source)  # 404 or 410 when it may not be answered
    cache = cache_headers(request, source)
    stored, modified = source.format, source.modified
    images = app[SETTINGS].images
    spec, vary = requested_spec(request.query, ext, request.headers.get(hdrs.ACCEPT, ""),
                                stored, images.max_dimension)
    if spec.is_identity(stored):
        blob = app[BLOBS].path(image_id, ext_of(stored))
        if admitted.counts_view(source, request.method):
            await app[SERVICES].images.count_view(image_id)
        if app[STORAGE].remote and not _not_modified(request, source.etag, modified):
            redirect = await _remote_original(request, blob, mime_of(stored), vary)
            if redirect is not None:
                return redirect
        return _answer(request, blob, mime_of(stored), source.etag, modified, vary, cache)
    if admitted.link is not Link.VALID and not signed(images, request.path, request.query):
        raise Forbidden("Invalid or missing signature", "Variant URLs must be signed (s=)")
    pipeline = app[PIPELINE]
    variant = pipeline.cached(image_id, spec)
    if variant is None:
        await _limit_miss(request, decode_units(source.width, source.height, source.frames,
                                                spec))
        blob = app[BLOBS].path(image_id, ext_of(stored))  # resolves symlinks: misses only
        if app[STORAGE].remote:
            blob = await app[STORAGE].local_image(image_id, ext_of(stored))
        original = Original(blob, stored, (source.width, source.height), source.frames)
        variant = await pipeline.variant(image_id, original, spec)
    if admitted.counts_view(source, request.method):
        await app[SERVICES].images.count_view(image_id)
    return await _answer_variant(request, variant, modified, vary, cache)


ID = r"[A-Za-z0-9_-]{8,32}"
EXT = r"[A-Za-z0-9]{2,5}"
ROUTES = [
    web.get(f"/img/{{id:{ID}}}", serve_image),
    web.get(f"/img/{{id:{ID}}}.{{ext:{EXT}}}", serve_image),
]
ROOT_ROUTES = [web.get(f"/{{id:{ID}}}.{{ext:{EXT}}}", serve_image)]
