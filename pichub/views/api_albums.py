"""`/albums` of the JSON API: thin adapters over `services.albums`."""

from __future__ import annotations

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.albums import AlbumCreate, AlbumUpdate
from pichub.views.common import actor, base_url, body_as, deleted, ok, ok_page
from pichub.views.params import pagination, path_id


async def create_album(request: web.Request) -> web.Response:
    who = actor(request, "write")
    body = await body_as(request, AlbumCreate)
    album = await request.app[SERVICES].albums.create(who.user_id, body, base_url(request))
    return ok(album, status=201)


async def list_albums(request: web.Request) -> web.Response:
    who = actor(request, "read")
    page, per_page = pagination(request.query)
    albums = request.app[SERVICES].albums
    return ok_page(await albums.page(who.user_id, base_url(request), page, per_page))


async def get_album(request: web.Request) -> web.Response:
    who = actor(request, "read")
    album_id = path_id(request, "album")
    return ok(await request.app[SERVICES].albums.get(who.user_id, album_id, base_url(request)))


async def patch_album(request: web.Request) -> web.Response:
    who = actor(request, "write")
    album_id = path_id(request, "album")
    body = await body_as(request, AlbumUpdate)
    albums = request.app[SERVICES].albums
    return ok(await albums.update(who.user_id, album_id, body, base_url(request)))


async def delete_album(request: web.Request) -> web.Response:
    who = actor(request, "write")
    album_id = path_id(request, "album")
    await request.app[SERVICES].albums.delete(who.user_id, album_id, base_url(request))
    return deleted(album_id)


ROUTES = [
    ("POST", "/albums", create_album),
    ("GET", "/albums", list_albums),
    ("GET", "/albums/{id}", get_album),
    ("PATCH", "/albums/{id}", patch_album),
    ("DELETE", "/albums/{id}", delete_album),
]
