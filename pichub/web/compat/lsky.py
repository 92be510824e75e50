"""Lsky Pro V2's API under `/compat/lsky/api/v1/…`, for clients written for Lsky Pro.

The unmodified `picgo-plugin-lankong` (V2 mode, server `http(s)://HOST/compat/lsky`)
uploads, and with "sync delete" deletes, through these routes. What it reads,
and what they answer: `status` (true/false), `message`, and on upload `data.links.url`
(the image) and `data.key` (what it deletes later). The rest follows Lsky Pro's own
answers (`size` in KB, `links` with `thumbnail_url`), plus `data.delete_url`.

- `Authorization` is taken as the plugin sends it, with or without `Bearer `.
- Upload options: `file`, `album_id`, `permission` (1 public / 0 not listed: `is_public`);
  `strategy_id` is ignored. PicHub's upload rules and limits apply as to any upload.
- Errors are `{"status": false, "message", "data": {}}` (`web.shapes.lsky_error`).
- Deleting an image that is not (or no longer) yours answers success, as Lsky Pro does.
- The image list's `md5`/`sha1` are empty (PicHub keeps SHA-256; the upload answer has both).
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import Any, Final

from aiohttp import web

from pichub.errors import NotFound
from pichub.imaging.formats import ext_of
from pichub.keys import BLOBS, SERVICES, STORAGE
from pichub.models.albums import Album
from pichub.models.base import parse_int
from pichub.models.images import Image, UploadedImage, markdown_text
from pichub.services.common import PageRequest
from pichub.web.api.upload import receive_and_store
from pichub.web.common import base_url
from pichub.web.compat.common import authenticate, digests, token_of, with_rate_headers
from pichub.web.shapes import LSKY_PREFIX, lsky_body

BASE: Final = LSKY_PREFIX + "api/v1"
PER_PAGE: Final = 40  # Lsky Pro's page size


def _fields(fields: dict[str, str]) -> dict[str, str]:
    """Lsky's upload fields as PicHub's options: `permission` 1/0 is `is_public`."""
    options = {k: v for k, v in fields.items() if k in ("album_id", "description")}
    if fields.get("permission", "").strip() in ("0", "1"):
        options["is_public"] = fields["permission"].strip()
    return options


def _item(image: Image) -> dict[str, Any]:
    """An image as Lsky Pro shows it (its `size` is in KB)."""
    url, name = image.url, image.original_name
    ext = ext_of(image.format)
    alt = escape(name)
    return {
        "key": image.id, "name": f"{image.id}.{ext}", "pathname": f"img/{image.id}.{ext}",
        "origin_name": name, "size": round(image.size / 1024, 2), "mimetype": image.mime,
        "extension": ext, "md5": "", "sha1": "", "width": image.width, "height": image.height,
        "links": {"url": url, "html": f'<img src="{url}" alt="{alt}" title="{alt}" />',
                  "bbcode": f"[img]{url}[/img]",
                  "markdown": f"![{markdown_text(name)}]({url})",
                  "markdown_with_link": f"[![{markdown_text(name)}]({url})]({url})",
                  "thumbnail_url": image.links.thumbnail},
    }


async def upload(request: web.Request) -> web.Response:
    token = token_of(request.headers.get("Authorization"))
    who = await authenticate(request, token, upload=True, scope="write")
    stored = await receive_and_store(request, who, _fields)
    image: UploadedImage = stored.outcome.images[0]
    item = _item(image)
    blob = await request.app[STORAGE].local(request.app[BLOBS].path(image.id,
                                                                     ext_of(image.format)))
    item["md5"], item["sha1"] = await asyncio.to_thread(digests, str(blob))
    for key in ("width", "height"):
        del item[key]  # the upload answer has none (Lsky Pro's `only(...)` list)
    item["delete_url"] = image.delete_url
    response = with_rate_headers(request, web.json_response(lsky_body(True, "Uploaded", item)))
    if not stored.complete:
        response.force_close()
    return response


def _page(request: web.Request) -> int:
    number = parse_int(request.query.get("page", "1")) or 1
    return max(1, min(number, 10**9))


def _paginated(items: list[dict[str, Any]], page: int, total: int) -> dict[str, Any]:
    """Laravel's paginator, as Lsky Pro answers lists."""
    last = max(1, (total + PER_PAGE - 1) // PER_PAGE)
    first = (page - 1) * PER_PAGE + 1
    return {"current_page": page, "last_page": last, "per_page": PER_PAGE, "total": total,
            "from": first if items else None, "to": first + len(items) - 1 if items else None,
            "data": items}


async def list_images(request: web.Request) -> web.Response:
    who = await authenticate(request, token_of(request.headers.get("Authorization")))
    page = _page(request)
    album_id = parse_int(request.query.get("album_id", ""))
    listed = await request.app[SERVICES].images.page(
        who.user_id, base_url(request), PageRequest(PER_PAGE, page), album_id)
    items = []
    for image in listed.items:
        item = _item(image)
        item["date"] = image.created_at.replace("T", " ").removesuffix("Z")
        items.append(item)
    body = lsky_body(True, "success", _paginated(items, page, listed.meta.total))
    return with_rate_headers(request, web.json_response(body))


def _album(album: Album) -> dict[str, Any]:
    return {"id": album.id, "name": album.name, "intro": album.description,
            "image_num": album.image_count}


async def list_albums(request: web.Request) -> web.Response:
    who = await authenticate(request, token_of(request.headers.get("Authorization")))
    page = _page(request)
    listed = await request.app[SERVICES].albums.page(who.user_id, base_url(request),
                                                     PageRequest(PER_PAGE, page))
    items = [_album(album) for album in listed.items]
    body = lsky_body(True, "success", _paginated(items, page, listed.meta.total))
    return with_rate_headers(request, web.json_response(body))


async def delete_image(request: web.Request) -> web.Response:
    token = token_of(request.headers.get("Authorization"))
    who = await authenticate(request, token, scope="write")
    try:
        await request.app[SERVICES].images.delete(who.user_id, request.match_info["key"],
                                                  base_url(request))
    except NotFound:
        pass  # Lsky Pro answers success for a key that is not (or no longer) yours
    return with_rate_headers(request, web.json_response(lsky_body(True, "Deleted")))


ROUTES = [
    web.post(BASE + "/upload", upload),
    web.get(BASE + "/images", list_images),
    web.delete(BASE + "/images/{key}", delete_image),
    web.get(BASE + "/albums", list_albums),
]
