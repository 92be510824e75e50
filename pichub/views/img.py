"""GET|HEAD /img/{id}[.{ext}] and /{id}.{ext}: stored bytes (transforms: SPEC §5)."""

from __future__ import annotations

from aiohttp import web

from pichub.db import images as images_db
from pichub.errors import NotFound
from pichub.imaging.formats import EXT_TO_FORMAT, ext_of, mime_of
from pichub.keys import BLOBS, DB

CACHE_FOREVER = "public, max-age=31536000, immutable"


async def serve_image(request: web.Request) -> web.StreamResponse:
    image_id = request.match_info["id"]
    ext = request.match_info.get("ext")
    if ext is not None and ext.lower() not in EXT_TO_FORMAT:
        raise NotFound("image")
    row = await images_db.get(request.app[DB], image_id)
    if row is None:
        raise NotFound("image")
    fmt = row["format"]
    path = request.app[BLOBS].path(image_id, ext_of(fmt))
    response = web.FileResponse(path, headers={
        "Content-Type": mime_of(fmt),
        "Cache-Control": CACHE_FOREVER,
        "ETag": f'"{row["sha256"][:32]}"',
    })
    return response


ID = r"[A-Za-z0-9_-]{8,32}"
EXT = r"[A-Za-z0-9]{2,5}"
ROUTES = [
    web.get(f"/img/{{id:{ID}}}", serve_image),
    web.get(f"/img/{{id:{ID}}}.{{ext:{EXT}}}", serve_image),
]
ROOT_ROUTES = [web.get(f"/{{id:{ID}}}.{{ext:{EXT}}}", serve_image)]
