"""`/albums` of the JSON API: thin adapters over `services.albums`."""

from __future__ import annotations

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.albums import Album, AlbumCreate, AlbumUpdate
from pichub.models.common import Deleted
from pichub.web.common import actor, base_url, body_as, deleted, ok, ok_page
from pichub.web.params import pagination, path_id
from pichub.web.routes import ApiRoute


async def create_album(request: web.Request) -> web.Response:
    who = actor(request, "write")
    body = await body_as(request, AlbumCreate)
    album = await request.app[SERVICES].albums.create(who.user_id, body, base_url(request))
    return ok(album, status=201)


async def list_albums(request: web.Request) -> web.Response:
    who = actor(request, "read")
    listed = pagination(request.query)
    albums = request.app[SERVICES].albums
    return ok_page(await albums.page(who.user_id, base_url(request), listed))


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
    ApiRoute("POST", "/albums", create_album, "createAlbum", "Albums", "Create an album",
             "Fires `album.created`.", scope="write", body=AlbumCreate, data=Album,
             status=201, errors=(400, 422)),
    ApiRoute("GET", "/albums", list_albums, "listAlbums", "Albums", "List my albums",
             "Newest first.", data=Album, many=True, listed=True, errors=(422,),
             query=("page", "cursor", "per_page")),
    ApiRoute("GET", "/albums/{id}", get_album, "getAlbum", "Albums", "Get an album",
             data=Album, errors=(404,)),
    ApiRoute("PATCH", "/albums/{id}", patch_album, "updateAlbum", "Albums",
             "Rename, describe or toggle public", "Send at least one field. Fires "
             "`album.updated`.", scope="write", body=AlbumUpdate, data=Album,
             errors=(400, 404, 422)),
    ApiRoute("DELETE", "/albums/{id}", delete_album, "deleteAlbum", "Albums", "Delete an album",
             "Its images are kept, with `album_id` set to null. Fires `album.deleted`.",
             scope="write", data=Deleted, errors=(404,)),
]
