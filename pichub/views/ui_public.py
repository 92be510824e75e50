"""Pages anyone may see: the public square, an image's page, the API docs and their document."""

from __future__ import annotations

from aiohttp import web

from pichub.db import albums as albums_db
from pichub.db import images as images_db
from pichub.errors import NotFound
from pichub.imaging.formats import ext_of
from pichub.keys import DB, SETTINGS
from pichub.openapi import build_openapi
from pichub.serialize import image_obj
from pichub.views.common import API_PREFIXES, base_url
from pichub.views.params import page_number
from pichub.views.ui_common import current_session, error_page, pager, render

SQUARE_PER_PAGE = 30
OPENAPI_PATH = "/openapi.json"


async def square(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    number = page_number(request.query)
    rows, total = await images_db.page(
        request.app[DB], user_id=None, album_id=None, public_only=True,
        limit=SQUARE_PER_PAGE, offset=(number - 1) * SQUARE_PER_PAGE)
    base = base_url(request)
    return render(request, "square.html", {
        "images": [image_obj(row, base) for row in rows],
        "pager": pager(request, number, SQUARE_PER_PAGE, total),
    }, session=session)


async def image_page(request: web.Request) -> web.StreamResponse:
    """Any image by its unguessable id (like `/img`); `is_public` only controls listing."""
    session = await current_session(request)
    row = await images_db.get(request.app[DB], request.match_info["id"])
    if row is None:
        return error_page(request, NotFound("image"), session)
    owner = session is not None and session.user_id == row["user_id"]
    album = None
    if owner and session is not None and row["album_id"] is not None:
        album = await albums_db.get(request.app[DB], session.user_id, row["album_id"])
    return render(request, "image.html", {
        "image": image_obj(row, base_url(request)), "owner": owner,
        "src": f"/img/{row['id']}.{ext_of(row['format'])}",
        "album_name": album["name"] if album is not None else None,
    }, session=session)


async def docs(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    return render(request, "docs.html", {"spec_url": API_PREFIXES[0] + OPENAPI_PATH},
                  session=session)


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document; no auth (the API middleware still rate limits it)."""
    document = build_openapi(request.app[SETTINGS])
    return web.json_response(document, headers={"Cache-Control": "no-cache",
                                                "Access-Control-Allow-Origin": "*"})


ROUTES = [
    web.get("/", square),
    web.get("/i/{id}", image_page),
    web.get("/docs", docs),
    *(web.get(prefix + OPENAPI_PATH, openapi_json) for prefix in API_PREFIXES),
]
