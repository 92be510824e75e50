"""`/images` and `/square` of the JSON API: thin adapters over `services.images`."""

from __future__ import annotations

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.images import ImageUpdate
from pichub.views.common import actor, base_url, body_as, deleted, ok, ok_page
from pichub.views.params import pagination, query_id


async def list_images(request: web.Request) -> web.Response:
    who = actor(request, "read")
    page, per_page = pagination(request.query)
    album_id = query_id(request.query, "album_id", "album")
    images = request.app[SERVICES].images
    return ok_page(await images.page(who.user_id, base_url(request), page, per_page, album_id))


async def square(request: web.Request) -> web.Response:
    page, per_page = pagination(request.query)
    return ok_page(await request.app[SERVICES].images.square(base_url(request), page, per_page))


async def get_image(request: web.Request) -> web.Response:
    who = actor(request, "read")
    images = request.app[SERVICES].images
    return ok(await images.get(who.user_id, request.match_info["id"], base_url(request)))


async def patch_image(request: web.Request) -> web.Response:
    who = actor(request, "write")
    body = await body_as(request, ImageUpdate)
    images = request.app[SERVICES].images
    return ok(await images.update(who.user_id, request.match_info["id"], body,
                                  base_url(request)))


async def delete_image(request: web.Request) -> web.Response:
    who = actor(request, "write")
    image_id = request.match_info["id"]
    await request.app[SERVICES].images.delete(who.user_id, image_id, base_url(request))
    return deleted(image_id)


ROUTES = [
    ("GET", "/images", list_images),
    ("GET", "/images/{id}", get_image),
    ("PATCH", "/images/{id}", patch_image),
    ("DELETE", "/images/{id}", delete_image),
    ("GET", "/square", square),
]
