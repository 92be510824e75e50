"""Pages anyone may see: the public square, an image's page, the API docs and their document."""

from __future__ import annotations

import functools

from aiohttp import web

from pichub.errors import NotFound, PichubError
from pichub.keys import CLOCK, SERVICES
from pichub.services.sharing import Link, admit, moment
from pichub.web.common import base_url
from pichub.web.routes import API_PREFIXES
from pichub.web.ui.forms import paged
from pichub.web.ui.guards import current_session
from pichub.web.ui.templates import error_page, render

SQUARE_PER_PAGE = 30
OPENAPI_PATH = "/openapi.json"


async def square(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    listed, pages = await paged(request, SQUARE_PER_PAGE, functools.partial(
        request.app[SERVICES].images.square, base_url(request)))
    return render(request, "square.html", {"images": listed.items, "pager": pages},
                  session=session)


async def image_page(request: web.Request) -> web.StreamResponse:
    """An image by its unguessable id, to whoever `/img` would serve it (a private one only
    to its owner); `public` only adds listing on the square."""
    session = await current_session(request)
    services = request.app[SERVICES]
    row = await services.images.find(request.match_info["id"])
    if row is None:
        return error_page(request, NotFound("image"), session)
    owner = session is not None and session.user_id == row["user_id"]
    try:
        admit(visibility=row["visibility"], owner=owner, expires_at=moment(row["expires_at"]),
              link=Link.NONE, now=request.app[CLOCK]())
    except PichubError as refused:  # 404 as for no image, or 410
        return error_page(request, refused, session)
    if not owner and await services.albums.locked(row["album_id"]):
        # in a password-protected album: only its album's page (with the password) shows it
        return error_page(request, NotFound("image"), session)
    album_name = None
    if owner and session is not None and row["album_id"] is not None:
        album = await services.albums.get(session.user_id, row["album_id"], base_url(request))
        album_name = album.name
    image = services.images.image(row, base_url(request))
    return render(request, "image.html", {
        "image": image, "owner": owner, "src": image.url.removeprefix(base_url(request)),
        "album_name": album_name,
    }, session=session)


async def docs(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    return render(request, "docs.html", {"spec_url": API_PREFIXES[0] + OPENAPI_PATH},
                  session=session)


ROUTES = [
    web.get("/", square),
    web.get("/i/{id}", image_page),
    web.get("/docs", docs),
]
