"""Albums in the web UI: list, create, rename, toggle public, delete (same rules as the API)."""

from __future__ import annotations

import functools

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.albums import AlbumCreate, AlbumUpdate
from pichub.models.base import validate
from pichub.services.sessions import Session
from pichub.web.common import base_url
from pichub.web.params import path_id
from pichub.web.ui.forms import Form, flash, paged, redirect, text_field
from pichub.web.ui.guards import action, page
from pichub.web.ui.templates import render

PER_PAGE = 50
BACK = "/dashboard/albums"


@page
async def albums_page(request: web.Request, session: Session) -> web.StreamResponse:
    listed, pages = await paged(request, PER_PAGE, functools.partial(
        request.app[SERVICES].albums.page, session.user_id, base_url(request)))
    return render(request, "albums.html", {"albums": listed.items, "pager": pages},
                  session=session)


def _done(text: str) -> web.Response:
    response = redirect(BACK)
    flash(response, text)
    return response


def _visibility(form: Form) -> bool:
    return text_field(form, "is_public", "1") != "0"


@action(BACK)
async def create_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    body = validate(AlbumCreate, {"name": text_field(form, "name"),
                                  "description": text_field(form, "description"),
                                  "is_public": _visibility(form)})
    await request.app[SERVICES].albums.create(session.user_id, body, base_url(request))
    return _done(f"Album “{body.name}” created.")


@action(BACK)
async def update_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    body = validate(AlbumUpdate, {"name": text_field(form, "name"),
                                  "description": text_field(form, "description")})
    await request.app[SERVICES].albums.update(session.user_id, path_id(request, "album"), body,
                                              base_url(request))
    return _done("Album saved.")


@action(BACK)
async def set_visibility(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    body = AlbumUpdate(is_public=_visibility(form))
    album = await request.app[SERVICES].albums.update(
        session.user_id, path_id(request, "album"), body, base_url(request))
    return _done(f"“{album.name}” is now {'public' if album.is_public else 'private'}.")


@action(BACK)
async def delete_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    await request.app[SERVICES].albums.delete(session.user_id, path_id(request, "album"),
                                              base_url(request))
    return _done("Album deleted; its images are kept.")


ROUTES = [
    web.get("/dashboard/albums", albums_page),
    web.post("/dashboard/albums", create_album),
    web.post("/dashboard/albums/{id}", update_album),
    web.post("/dashboard/albums/{id}/visibility", set_visibility),
    web.post("/dashboard/albums/{id}/delete", delete_album),
]
