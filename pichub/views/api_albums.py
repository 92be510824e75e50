"""Albums CRUD (SPEC §4)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.db import albums as albums_db
from pichub.errors import NotFound, ValidationError
from pichub.keys import DB, GALLERY
from pichub.serialize import album_obj
from pichub.validate import Problems, json_bool, json_text
from pichub.views.common import actor, base_url, json_body, ok
from pichub.views.params import meta, pagination, path_id


def _fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    problems = Problems()
    changes: dict[str, Any] = {}
    if creating and "name" not in body:
        problems.add("name", "is required")
    if (name := json_text(problems, body, "name", low=1, high=100)) is not None:
        changes["name"] = name
    if (desc := json_text(problems, body, "description", low=0, high=1000,
                          nullable=True)) is not None:
        changes["description"] = desc
    if (is_public := json_bool(problems, body, "is_public")) is not None:
        changes["is_public"] = int(is_public)
    problems.raise_if_any()
    return changes


async def create_album(request: web.Request) -> web.Response:
    who = actor(request, "write")
    fields = _fields(await json_body(request), creating=True)
    row = await request.app[GALLERY].create_album(who.user_id, fields, base_url(request))
    return ok(album_obj(row, base_url(request)), status=201)


async def list_albums(request: web.Request) -> web.Response:
    who = actor(request, "read")
    page, per_page = pagination(request.query)
    rows, total = await albums_db.page(request.app[DB], who.user_id, per_page,
                                       (page - 1) * per_page)
    base = base_url(request)
    return ok([album_obj(r, base) for r in rows], meta=meta(page, per_page, total))


async def get_album(request: web.Request) -> web.Response:
    who = actor(request, "read")
    row = await albums_db.get(request.app[DB], who.user_id, path_id(request, "album"))
    if row is None:
        raise NotFound("album")
    return ok(album_obj(row, base_url(request)))


async def patch_album(request: web.Request) -> web.Response:
    who = actor(request, "write")
    album_id = path_id(request, "album")
    fields = _fields(await json_body(request), creating=False)
    if not fields:
        raise ValidationError.field("body", "send name, description or is_public")
    row = await request.app[GALLERY].update_album(who.user_id, album_id, fields,
                                                  base_url(request))
    return ok(album_obj(row, base_url(request)))


async def delete_album(request: web.Request) -> web.Response:
    who = actor(request, "write")
    album_id = path_id(request, "album")
    await request.app[GALLERY].delete_album(who.user_id, album_id, base_url(request))
    return ok({"id": album_id, "deleted": True})


ROUTES = [
    ("POST", "/albums", create_album),
    ("GET", "/albums", list_albums),
    ("GET", "/albums/{id}", get_album),
    ("PATCH", "/albums/{id}", patch_album),
    ("DELETE", "/albums/{id}", delete_album),
]
