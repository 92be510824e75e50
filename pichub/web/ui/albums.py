"""Albums in the web UI: list, create, edit (name, description, visibility, password),
delete: the same service and rules as the API's album routes.

The password is write-only here as in the API: the edit form's password box is always
empty; a new password replaces the old one, the "remove" box takes it away, and the page
only says whether one is set."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.albums import AlbumCreate, AlbumUpdate
from pichub.models.base import validate
from pichub.services.sessions import Session
from pichub.web.common import base_url
from pichub.web.params import path_id
from pichub.web.ui.forms import Form, flash, paged, redirect, text_field
from pichub.web.ui.guards import action, page
from pichub.web.ui.i18n import gettext
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


def _chosen(form: Form) -> dict[str, Any]:
    """`visibility` (public, unlisted or private) when the form has it, else the seed's
    `is_public` checkbox value."""
    chosen = text_field(form, "visibility").strip()
    return {"visibility": chosen} if chosen else {"is_public": _visibility(form)}


def _album_changes(form: Form) -> AlbumUpdate:
    """The edit form as the API's PATCH body: a blank password keeps the current one, the
    "remove" box (which wins) sends null."""
    fields: dict[str, Any] = {"name": text_field(form, "name"),
                              "description": text_field(form, "description")}
    if text_field(form, "visibility").strip():
        fields["visibility"] = text_field(form, "visibility")
    password = text_field(form, "password")
    if text_field(form, "remove_password"):
        fields["password"] = None
    elif password:
        fields["password"] = password
    return validate(AlbumUpdate, fields)


@action(BACK)
async def create_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    body = validate(AlbumCreate, {"name": text_field(form, "name"),
                                  "description": text_field(form, "description"),
                                  **_chosen(form)})
    await request.app[SERVICES].albums.create(session.user_id, body, base_url(request))
    return _done(gettext("Album “{name}” created.").format(name=body.name))


@action(BACK)
async def update_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    body = _album_changes(form)
    await request.app[SERVICES].albums.update(session.user_id, path_id(request, "album"), body,
                                              base_url(request))
    if "password" not in body.model_fields_set:
        return _done(gettext("Album saved."))
    return _done(gettext("Album saved; password removed.") if body.password is None
                 else gettext("Album saved; password set."))


@action(BACK)
async def set_visibility(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    body = validate(AlbumUpdate, _chosen(form))
    album = await request.app[SERVICES].albums.update(
        session.user_id, path_id(request, "album"), body, base_url(request))
    return _done(f"“{album.name}” is now {album.visibility}.")


@action(BACK)
async def delete_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    await request.app[SERVICES].albums.delete(session.user_id, path_id(request, "album"),
                                              base_url(request))
    return _done(gettext("Album deleted; its images are kept."))


ROUTES = [
    web.get("/dashboard/albums", albums_page),
    web.post("/dashboard/albums", create_album),
    web.post("/dashboard/albums/{id}", update_album),
    web.post("/dashboard/albums/{id}/visibility", set_visibility),
    web.post("/dashboard/albums/{id}/delete", delete_album),
]
