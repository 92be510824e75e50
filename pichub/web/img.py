"""GET|HEAD /img/{id}[.{ext}] and /{id}.{ext}: originals and on-the-fly variants.

Parameters and caching: README, "Dynamic images".

Ids never change content, so every answer is cacheable forever and carries a
content ETag; conditional requests are answered with 304 before any file I/O.
"""

from __future__ import annotations

import asyncio
import functools
import os
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import ETAG_ANY

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
    TRUSTED_PROXIES,
)
from pichub.timeutil import parse_iso
from pichub.web.clientip import rate_limit_key, request_client_ip

CACHE_FOREVER = "public, max-age=31536000, immutable"
ACCEPT_ORDER = (("image/jxl", "jxl"), ("image/avif", "avif"), ("image/webp", "webp"))
#: Conditional or partial requests that FileResponse answers in full (412, 206, 416).
FILE_RESPONSE_HEADERS = (hdrs.RANGE, hdrs.IF_RANGE, hdrs.IF_MATCH, hdrs.IF_UNMODIFIED_SINCE)


class ImmutableFileResponse(web.FileResponse):
    """A FileResponse (sendfile) whose ETag and Last-Modified describe the content.

    aiohttp derives both from the file's mtime, which the variant cache touches
    to track recency; a content ETag stays the same for the life of the id.
    """

    def __init__(self, path: Path, *, etag: str, modified: datetime,
                 headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._content_etag = etag
        self._modified = modified

    @property
    def etag(self) -> Any:
        return super().etag

    @etag.setter
    def etag(self, value: Any) -> None:
        web.StreamResponse.etag.fset(self, self._content_etag)  # type: ignore[attr-defined]

    @property
    def last_modified(self) -> Any:
        return super().last_modified

    @last_modified.setter
    def last_modified(self, value: Any) -> None:
        web.StreamResponse.last_modified.fset(self, self._modified)  # type: ignore[attr-defined]


class VariantResponse(web.StreamResponse):
    """A cached variant, already open, sent whole with sendfile and then closed.

    aiohttp's FileResponse stats and opens the file in a thread and closes it
    in another: two thread round trips that cost more than the rest of a cache
    hit. A variant is an immutable file the cache indexes, opened by the view
    (on the loop when recently used, see CacheHit.recent), so only the
    sending is left. Range and precondition requests still go to FileResponse.
    """

    def __init__(self, file: IO[bytes], size: int, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._file = file
        self.content_length = size

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            size = self.content_length or 0
            if request.method != hdrs.METH_HEAD and size:
                transport = request.transport
                if transport is None:
                    raise ConnectionResetError("Connection lost")
                await asyncio.get_running_loop().sendfile(transport, self._file, 0, size)
            await super().write_eof()
            return writer
        finally:
            self._file.close()


@functools.lru_cache(maxsize=1024)
def _http_date(moment: datetime) -> str:
    """Last-Modified for a (UTC, whole-second) creation time; the same few on every hit."""
    return format_datetime(moment, usegmt=True)


def _open_variant(path: Path) -> tuple[IO[bytes], int]:
    file = open(path, "rb")  # noqa: SIM115 - VariantResponse closes it
    try:
        return file, os.fstat(file.fileno()).st_size
    except BaseException:
        file.close()
        raise


def negotiate(accept: str, stored_format: str) -> str:
    """`fm=auto`: the best format the client says it takes (JPEG XL, then AVIF, then WebP:
    the smallest first at equal quality); JPEG (PNG for alpha) else."""
    for mime, fmt in ACCEPT_ORDER:
        if mime in accept:
            return fmt
    return "png" if stored_format in ("png", "gif") else "jpeg"


def _not_modified(request: web.Request, etag: str, modified: datetime) -> bool:
    if (tags := request.if_none_match) is not None:
        return any(tag.value in (etag, ETAG_ANY) for tag in tags)
    since = request.if_modified_since
    return since is not None and modified.replace(microsecond=0) <= since


def _answer(request: web.Request, path: Path, mime: str, etag: str, modified: datetime,
            vary: bool) -> web.StreamResponse:
    headers: dict[str, str] = {hdrs.CACHE_CONTROL: CACHE_FOREVER}
    if vary:
        headers[hdrs.VARY] = "Accept"
    if _not_modified(request, etag, modified):
        response = web.Response(status=304, headers=headers)
        response.etag = etag
        response.last_modified = modified
        return response
    headers[hdrs.CONTENT_TYPE] = mime
    return ImmutableFileResponse(path, etag=etag, modified=modified, headers=headers)


async def _answer_variant(request: web.Request, variant: Variant, modified: datetime,
                          vary: bool) -> web.StreamResponse:
    etag = variant.etag.strip('"')
    if _not_modified(request, etag, modified) or any(
            name in request.headers for name in FILE_RESPONSE_HEADERS):
        return _answer(request, variant.path, variant.mime, etag, modified, vary)
    try:
        if variant.recent:  # µs on a local disk: cheaper than a thread round trip
            file, size = _open_variant(variant.path)
        else:
            file, size = await asyncio.to_thread(_open_variant, variant.path)
    except FileNotFoundError:
        raise NotFound("image") from None  # purged meanwhile: the image was deleted
    headers: dict[str, str] = {
        hdrs.CACHE_CONTROL: CACHE_FOREVER, hdrs.CONTENT_TYPE: variant.mime,
        hdrs.ETAG: variant.etag, hdrs.LAST_MODIFIED: _http_date(modified),
        hdrs.ACCEPT_RANGES: "bytes",  # as FileResponse, which answers Range requests
    }
    if vary:
        headers[hdrs.VARY] = "Accept"
    return VariantResponse(file, size, headers)


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
                    row["width"], row["height"], row["frames"])
    pipeline.remember(image_id, source, generation)
    return source


async def serve_image(request: web.Request) -> web.StreamResponse:
    app = request.app
    image_id = request.match_info["id"]
    ext = request.match_info.get("ext")
    if ext is not None and canonical(ext) is None:
        raise NotFound("image")
    source = await _source(app, image_id)
    stored, modified = source.format, source.modified
    query: dict[str, str] = dict(request.query)
    vary = query.get("fm", "").lower() == "auto"
    if vary:
        query["fm"] = negotiate(request.headers.get(hdrs.ACCEPT, ""), stored)
    spec = TransformSpec.parse(query, ext, stored, app[SETTINGS].images.max_dimension)
    if spec.is_identity(stored):
        blob = app[BLOBS].path(image_id, ext_of(stored))
        return _answer(request, blob, mime_of(stored), source.etag, modified, vary)
    key = app[SETTINGS].images.signing_key
    if key is not None and not verify(request.path, request.query, key.get_secret_value()):
        raise Forbidden("Invalid or missing signature", "Variant URLs must be signed (s=)")
    pipeline = app[PIPELINE]
    variant = pipeline.cached(image_id, spec)
    if variant is None:
        await _limit_miss(request, decode_units(source.width, source.height, source.frames,
                                                spec))
        blob = app[BLOBS].path(image_id, ext_of(stored))  # resolves symlinks: misses only
        original = Original(blob, stored, (source.width, source.height), source.frames)
        variant = await pipeline.variant(image_id, original, spec)
    return await _answer_variant(request, variant, modified, vary)


ID = r"[A-Za-z0-9_-]{8,32}"
EXT = r"[A-Za-z0-9]{2,5}"
ROUTES = [
    web.get(f"/img/{{id:{ID}}}", serve_image),
    web.get(f"/img/{{id:{ID}}}.{{ext:{EXT}}}", serve_image),
]
ROOT_ROUTES = [web.get(f"/{{id:{ID}}}.{{ext:{EXT}}}", serve_image)]
