"""`/images` and `/square` of the JSON API: thin adapters over `services.images`."""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import hdrs, web
from multidict import MultiMapping

from pichub.errors import NotFound, ValidationError
from pichub.keys import SERVICES, STORAGE
from pichub.models.common import Deleted
from pichub.models.images import Image, ImageUpdate
from pichub.models.sharing import LinkRequest, SignedLink
from pichub.web.common import actor, base_url, body_as, deleted, ok, ok_page
from pichub.web.params import pagination, query_id
from pichub.web.routes import ApiRoute

#: Says whether `/original` answered a kept original upload or the stored file.
ORIGINAL_HEADER = "X-PicHub-Original"
#: What `GET /images/{id}?include=` may add to the answer.
INCLUDES: Final = frozenset({"gps"})


async def list_images(request: web.Request) -> web.Response:
    who = actor(request, "read")
    listed = pagination(request.query)
    album_id = query_id(request.query, "album_id", "album")
    images = request.app[SERVICES].images
    return ok_page(await images.page(who.user_id, base_url(request), listed, album_id))


async def square(request: web.Request) -> web.Response:
    listed = pagination(request.query)
    return ok_page(await request.app[SERVICES].images.square(base_url(request), listed))


async def get_image(request: web.Request) -> web.Response:
    who = actor(request, "read")
    include = includes(request.query)
    images = request.app[SERVICES].images
    return ok(await images.get(who.user_id, request.match_info["id"], base_url(request),
                               include_gps="gps" in include))


def includes(query: MultiMapping[str]) -> set[str]:
    """`?include=gps`: what to add to the answer (repeated, or comma-separated); 422 for a
    name it does not know."""
    names = {name.strip() for value in query.getall("include", ())
             for name in value.split(",")} - {""}
    if unknown := names - INCLUDES:
        allowed = ", ".join(sorted(INCLUDES))
        raise ValidationError.field("include",
                                    f"unknown value {sorted(unknown)[0]!r}; allowed: {allowed}")
    return names


async def get_original(request: web.Request) -> web.StreamResponse:
    who = actor(request, "read")
    found = await request.app[SERVICES].images.original(who.user_id, request.match_info["id"])
    disposition = f'attachment; filename="{found.filename}"'
    headers = {hdrs.CONTENT_TYPE: found.mime, hdrs.CONTENT_DISPOSITION: disposition,
               hdrs.CACHE_CONTROL: "private, no-cache", ORIGINAL_HEADER:
               "upload" if found.kept else "stored"}
    storage = request.app[STORAGE]
    if storage.remote:
        url = await storage.link(found.path, mime=found.mime, disposition=disposition)
        if url is not None:
            return web.Response(status=302, headers={
                hdrs.LOCATION: url, hdrs.CACHE_CONTROL: "private, no-store",
                ORIGINAL_HEADER: headers[ORIGINAL_HEADER]})
        await storage.local(found.path)
    if not await asyncio.to_thread(found.path.is_file):
        raise NotFound("image")  # deleted meanwhile
    return web.FileResponse(found.path, headers=headers)


async def patch_image(request: web.Request) -> web.Response:
    who = actor(request, "write")
    body = await body_as(request, ImageUpdate)
    images = request.app[SERVICES].images
    return ok(await images.update(who.user_id, request.match_info["id"], body,
                                  base_url(request)))


async def create_link(request: web.Request) -> web.Response:
    who = actor(request, "read")
    body = await body_as(request, LinkRequest)
    images = request.app[SERVICES].images
    return ok(await images.link(who.user_id, request.match_info["id"], body,
                                base_url(request)), status=201)


async def delete_image(request: web.Request) -> web.Response:
    who = actor(request, "write")
    image_id = request.match_info["id"]
    await request.app[SERVICES].images.delete(who.user_id, image_id, base_url(request))
    return deleted(image_id)


ROUTES = [
    ApiRoute("GET", "/images", list_images, "listImages", "Images", "List my images",
             "Your images, newest first (ties in the same second keep upload order).",
             data=Image, many=True, listed=True, errors=(404, 422),
             query=("page", "cursor", "per_page", "album_id")),
    ApiRoute("GET", "/images/{id}", get_image, "getImage", "Images", "Get one of my images",
             "With `?include=gps`, `exif.gps` holds the position where the picture was taken "
             "when the image kept its location (uploaded with `keep_location=true`); no other "
             "answer, list, event or page ever carries it.",
             data=Image, errors=(404, 422),
             parameters=({"name": "include", "in": "query", "required": False,
                          "schema": {"type": "string", "enum": sorted(INCLUDES)},
                          "description": "`gps`: add the stored GPS position to `exif` (null "
                                         "when the image did not keep one). Any other value "
                                         "→ 422."},)),
    ApiRoute("GET", "/images/{id}/original", get_original, "getImageOriginal", "Images",
             "Download the original upload",
             "The file as it was uploaded, for its owner only (another user's image → 404). "
             "A HEIC/HEIF photo is stored as WebP or JPEG for browsers and its uploaded bytes "
             "are kept beside, byte for byte (metadata, location included, as uploaded): this "
             "answers them (`image/heic`, `X-PicHub-Original: upload`). Any other image "
             "answers its stored file, the bytes `url` serves (`X-PicHub-Original: stored`): "
             "the upload itself when it was kept as it came, else its only version. Sent as "
             "an attachment named after `filename`.",
             data=None, errors=(404,),
             content={media: {"schema": {"type": "string", "format": "binary"}}
                      for media in ("image/heic", "image/jpeg", "image/png", "image/webp",
                                    "image/gif", "image/avif", "image/jxl")}),
    ApiRoute("PATCH", "/images/{id}", patch_image, "updateImage", "Images",
             "Change album, visibility, expiry or description", "Send any of the fields; "
             "`album_id: null` takes the image out of its album, `expires_at: null` removes "
             "its expiry, `max_views: null` its view limit. Fires no webhook event. Making a "
             "public image private does not recall copies that shared caches (a CDN, a "
             "proxy) already hold.",
             scope="write", body=ImageUpdate, data=Image, errors=(400, 404, 422)),
    ApiRoute("POST", "/images/{id}/links", create_link, "createImageLink", "Images",
             "Make a time-limited link",
             "A signed URL that opens one of your images — a private one too — for "
             "`expires_in` seconds: the stored image, or the variant the body names "
             "(`w`, `h`, `q`, `fit`, `fm`, as `/img`; a bad one → 400). The signature "
             "(HMAC-SHA256 with a key of this instance) binds the image, the extension, every "
             "parameter and the expiry: a changed link, or one past its `expires_at`, "
             "answers 404 (410 if the image itself expired). For a public or unlisted image "
             "the link works like its plain URL. A link cannot be revoked on its own: delete "
             "the image to stop every link to it.",
             status=201, body=LinkRequest, data=SignedLink, errors=(400, 404, 422)),
    ApiRoute("DELETE", "/images/{id}", delete_image, "deleteImage", "Images", "Delete an image",
             "Removes the row, the stored file and every cached variant; fires "
             "`image.deleted`. Irreversible.", scope="write", data=Deleted, errors=(404,)),
    ApiRoute("GET", "/square", square, "square", "Images", "Public square",
             "Public images of all users, newest first. No authentication.", scope=None,
             data=Image, many=True, listed=True, errors=(422,),
             query=("page", "cursor", "per_page")),
]
