"""GET /images, GET/PATCH/DELETE /images/{id}, GET /square (SPEC §4)."""

from __future__ import annotations

from aiohttp import web

from pichub.db import images as images_db
from pichub.errors import NotFound
from pichub.keys import DB, GALLERY
from pichub.serialize import image_obj
from pichub.validate import Problems, json_bool, json_int, json_text
from pichub.views.common import actor, base_url, json_body, ok
from pichub.views.params import meta, pagination, query_id


async def list_images(request: web.Request) -> web.Response:
    who = actor(request, "read")
    page, per_page = pagination(request.query)
    album_id = query_id(request.query, "album_id", "album")
    gallery = request.app[GALLERY]
    if album_id is not None:
        await gallery.require_album(who.user_id, album_id)
    rows, total = await images_db.page(
        request.app[DB], user_id=who.user_id, album_id=album_id, public_only=False,
        limit=per_page, offset=(page - 1) * per_page,
    )
    base = base_url(request)
    return ok([image_obj(r, base) for r in rows], meta=meta(page, per_page, total))


async def square(request: web.Request) -> web.Response:
    page, per_page = pagination(request.query)
    rows, total = await images_db.page(
        request.app[DB], user_id=None, album_id=None, public_only=True,
        limit=per_page, offset=(page - 1) * per_page,
    )
    base = base_url(request)
    return ok([image_obj(r, base) for r in rows], meta=meta(page, per_page, total))


async def get_image(request: web.Request) -> web.Response:
    who = actor(request, "read")
    row = await images_db.get(request.app[DB], request.match_info["id"], who.user_id)
    if row is None:
        raise NotFound("image")
    return ok(image_obj(row, base_url(request)))


async def patch_image(request: web.Request) -> web.Response:
    who = actor(request, "write")
    body = await json_body(request)
    problems = Problems()
    changes: dict[str, object] = {}
    present, album_id = json_int(problems, body, "album_id")
    if present:
        changes["album_id"] = album_id
    if (is_public := json_bool(problems, body, "is_public")) is not None:
        changes["is_public"] = int(is_public)
    if (description := json_text(problems, body, "description", low=0, high=1000,
                                 nullable=True)) is not None:
        changes["description"] = description
    problems.raise_if_any()
    row = await request.app[GALLERY].update_image(who.user_id, request.match_info["id"], changes)
    return ok(image_obj(row, base_url(request)))


async def delete_image(request: web.Request) -> web.Response:
    who = actor(request, "write")
    image_id = request.match_info["id"]
    await request.app[GALLERY].delete_image(who.user_id, image_id, base_url(request))
    return ok({"id": image_id, "deleted": True})


ROUTES = [
    ("GET", "/images", list_images),
    ("GET", "/images/{id}", get_image),
    ("PATCH", "/images/{id}", patch_image),
    ("DELETE", "/images/{id}", delete_image),
    ("GET", "/square", square),
]
