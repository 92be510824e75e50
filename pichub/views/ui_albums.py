"""Albums in the web UI: list, create, rename, toggle public, delete (same rules as the API)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.db import albums as albums_db
from pichub.keys import DB, GALLERY
from pichub.serialize import album_obj
from pichub.sessions import Session
from pichub.validate import Problems, json_text
from pichub.views.common import base_url
from pichub.views.params import page_number, path_id
from pichub.views.ui_common import (
    Form,
    action,
    flash,
    page,
    pager,
    redirect,
    render,
    text_field,
)

PER_PAGE = 50
BACK = "/dashboard/albums"


def _fields(form: Form, *, with_visibility: bool) -> dict[str, Any]:
    """Name (1–100 chars) and description (≤ 1000), validated like the API's JSON body."""
    body = {"name": text_field(form, "name"), "description": text_field(form, "description")}
    problems = Problems()
    fields: dict[str, Any] = {
        "name": json_text(problems, body, "name", low=1, high=100),
        "description": json_text(problems, body, "description", low=0, high=1000),
    }
    problems.raise_if_any()
    if with_visibility:
        fields["is_public"] = 0 if text_field(form, "is_public", "1") == "0" else 1
    return fields


@page
async def albums_page(request: web.Request, session: Session) -> web.StreamResponse:
    number = page_number(request.query)
    rows, total = await albums_db.page(request.app[DB], session.user_id, PER_PAGE,
                                       (number - 1) * PER_PAGE)
    base = base_url(request)
    albums = [{**album_obj(row, base), "cover_id": row["cover"].split(".", 1)[0]
               if row["cover"] else None} for row in rows]
    return render(request, "albums.html", {
        "albums": albums, "pager": pager(request, number, PER_PAGE, total),
    }, session=session)


def _done(text: str) -> web.Response:
    response = redirect(BACK)
    flash(response, text)
    return response


@action(BACK)
async def create_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    fields = _fields(form, with_visibility=True)
    await request.app[GALLERY].create_album(session.user_id, fields, base_url(request))
    return _done(f"Album “{fields['name']}” created.")


@action(BACK)
async def update_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    fields = _fields(form, with_visibility=False)
    await request.app[GALLERY].update_album(session.user_id, path_id(request, "album"), fields,
                                            base_url(request))
    return _done("Album saved.")


@action(BACK)
async def set_visibility(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    is_public = 0 if text_field(form, "is_public") == "0" else 1
    row = await request.app[GALLERY].update_album(
        session.user_id, path_id(request, "album"), {"is_public": is_public}, base_url(request))
    return _done(f"“{row['name']}” is now {'public' if is_public else 'private'}.")


@action(BACK)
async def delete_album(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    await request.app[GALLERY].delete_album(session.user_id, path_id(request, "album"),
                                            base_url(request))
    return _done("Album deleted; its images are kept.")


ROUTES = [
    web.get("/dashboard/albums", albums_page),
    web.post("/dashboard/albums", create_album),
    web.post("/dashboard/albums/{id}", update_album),
    web.post("/dashboard/albums/{id}/visibility", set_visibility),
    web.post("/dashboard/albums/{id}/delete", delete_album),
]
