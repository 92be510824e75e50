"""Delete links (`/delete/{token}`): the page a ShareX "Delete" or a pasted link opens.

The token in the link is the authority (no session): it is handed out once, in
the upload answer, and stored only as its SHA-256. A GET only shows what would
be deleted, since link previews, crawlers and prefetchers fetch GETs; the
page's button POSTs, which deletes through `services.images` like any delete
(blob, variants, `image.deleted` event). A wrong or used token is a 404.
"""

from __future__ import annotations

from aiohttp import web

from pichub.errors import NotFound
from pichub.keys import SERVICES
from pichub.services.uploads import DELETE_PATH
from pichub.web.common import base_url
from pichub.web.ui.guards import current_session
from pichub.web.ui.templates import error_page, render

#: The link is a secret: the page is never cached, indexed, or named in a Referer.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Robots-Tag": "noindex"}


async def confirm_page(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    images = request.app[SERVICES].images
    row = await images.find_by_delete_link(request.match_info["token"])
    if row is None:
        return _private(error_page(request, NotFound("delete link"), session))
    image = images.image(row, base_url(request))
    return _private(render(request, "delete.html", {
        "deleted": False, "image": image, "action": request.path,
        "thumbnail": image.links.thumbnail.removeprefix(base_url(request))}, session=session))


async def delete(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    try:
        row = await request.app[SERVICES].images.delete_by_link(request.match_info["token"],
                                                               base_url(request))
    except NotFound:
        return _private(error_page(request, NotFound("delete link"), session))
    return _private(render(request, "delete.html", {"deleted": True,
                                                    "filename": row["filename"]},
                           session=session))


def _private(response: web.Response) -> web.Response:
    response.headers.update(PRIVATE)
    return response


ROUTES = [
    web.get(DELETE_PATH + "{token}", confirm_page),
    web.post(DELETE_PATH + "{token}", delete),
]
