"""An album's own page (`/a/{id}`), its JSON twin, its zip, and its password form.

Every route sits under `/a/{id}` so the album's unlock cookie (Path=/a/{id}) reaches them
all and no other album's: `GET /a/{id}` (HTML; JSON with `Accept: application/json`),
`GET /a/{id}/album.json`, `GET /a/{id}/album.zip`, `POST /a/{id}/unlock`. Who may see what:
services/albumpages.py. A wrong password is counted against the `login` limits, per client
IP and per album, like a sign-in.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web

from pichub.db.database import Row
from pichub.errors import Unauthorized
from pichub.hashing import same_secret
from pichub.keys import LIMITER, SERVICES, STORAGE, TRUSTED_PROXIES
from pichub.models.base import parse_int
from pichub.services import sessions
from pichub.services.albumpages import UNLOCK_S, SharedAlbum
from pichub.services.sessions import Session
from pichub.web.clientip import rate_limit_key, request_client_ip
from pichub.web.common import base_url
from pichub.web.params import MAX_PER_PAGE, html_page, path_id
from pichub.web.ui.forms import paged, redirect, text_field
from pichub.web.ui.guards import current_session, is_https
from pichub.web.ui.i18n import N_, gettext
from pichub.web.ui.templates import render
from pichub.web.zipstream import stream_zip

COOKIE = "pichub_album"
PER_PAGE = 60
THUMB_WIDTH = 400
WRONG = N_("Wrong password.")


def _path(album_id: int) -> str:
    return f"/a/{album_id}"


async def _open(request: web.Request) -> tuple[SharedAlbum, Session | None]:
    session = await current_session(request)
    album = await request.app[SERVICES].album_pages.open(
        path_id(request, "album"), None if session is None else session.user_id,
        request.cookies.get(COOKIE))
    return album, session


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get(hdrs.ACCEPT, "")
    return "application/json" in accept and "text/html" not in accept


def _headers(album: SharedAlbum) -> dict[str, str]:
    """A page behind a password, or a private album's, is nobody else's to keep."""
    if album.has_password or album.row["visibility"] == "private" or album.owner:
        return {hdrs.CACHE_CONTROL: "private, no-store"}
    return {hdrs.CACHE_CONTROL: "no-cache"}


async def album_page(request: web.Request) -> web.StreamResponse:
    if _wants_json(request):
        return await album_json(request)
    album, session = await _open(request)
    if album.locked:
        return _password_form(request, album, session)
    pages = request.app[SERVICES].album_pages
    listed, pager = await paged(request, PER_PAGE,
                                lambda page_request: pages.page(album, page_request))
    first = await pages.first(album)
    tiles = [_tile(request, album, row) for row in listed.items]
    og_image = None
    if first is not None and not album.has_password:
        og_image = base_url(request) + pages.src(album, first)
    response = render(request, "album_page.html", {
        "album": album.row, "tiles": tiles, "pager": pager, "og_image": og_image,
        "page_url": base_url(request) + _path(album.id), "owner": album.owner,
        "has_password": album.has_password}, session=session)
    response.headers.update(_headers(album))
    return response


def _tile(request: web.Request, album: SharedAlbum, row: Row) -> dict[str, Any]:
    pages = request.app[SERVICES].album_pages
    return {"id": row["id"], "name": row["original_name"], "description": row["description"],
            "width": row["width"], "height": row["height"], "href": pages.src(album, row),
            "thumb": pages.src(album, row, THUMB_WIDTH),
            "thumb2x": pages.src(album, row, THUMB_WIDTH * 2),
            "dominant_color": row["dominant_color"], "blurhash": row["blurhash"]}


def _password_form(request: web.Request, album: SharedAlbum, session: Session | None, *,
                   error: str = "", status: int = 200) -> web.Response:
    token = request.cookies.get(sessions.CSRF_COOKIE) or sessions.new_csrf_token()
    response = render(request, "album_password.html", {"album_id": album.id, "error": error},
                      session=session, status=status, csrf_token=token)
    if request.cookies.get(sessions.CSRF_COOKIE) != token:
        response.set_cookie(sessions.CSRF_COOKIE, token, path="/", httponly=True,
                            samesite="Lax", secure=is_https(request))
    response.headers.update({hdrs.CACHE_CONTROL: "private, no-store"})
    return response


async def unlock(request: web.Request) -> web.StreamResponse:
    """The password form's POST: CSRF token (cookie and field), rate limit, password."""
    album, session = await _open(request)
    form = await request.post()
    if not same_secret(request.cookies.get(sessions.CSRF_COOKIE),
                       text_field(form, sessions.CSRF_FIELD)):
        return _password_form(request, album, session, status=403,
                              error=gettext("The form had expired. Please try again."))
    if not album.locked:
        return redirect(_path(album.id))
    ip_key = rate_limit_key(request_client_ip(request, request.app[TRUSTED_PROXIES]))
    decision = await request.app[LIMITER].check_all(
        [("login", "album-" + ip_key), ("login", f"album:{album.id}")])
    if not decision.allowed:
        response = _password_form(
            request, album, session, status=429,
            error=gettext("Too many attempts. Try again in {n} seconds.").format(
                n=decision.retry_after))
        response.headers.update(decision.headers())
        return response
    pages = request.app[SERVICES].album_pages
    if not await pages.check_password(album, text_field(form, "password")):
        return _password_form(request, album, session, status=403, error=gettext(WRONG))
    response = redirect(_path(album.id))
    response.set_cookie(COOKIE, pages.unlock_token(album), path=_path(album.id),
                        httponly=True, samesite="Lax", secure=is_https(request),
                        max_age=UNLOCK_S)
    return response


async def album_json(request: web.Request) -> web.StreamResponse:
    """The page's twin for API clients: the album and a page of its images (`?page=`,
    `?per_page=` up to 100, `?cursor=`)."""
    album, _ = await _open(request)
    if album.locked:
        raise Unauthorized("This album needs its password",
                           f"Give it at {_path(album.id)} (the form sets a cookie)")
    per_page = _per_page(request)
    pages = request.app[SERVICES].album_pages
    listed = await pages.page(album, html_page(request.query, per_page))
    root = base_url(request)
    row = album.row
    data = {
        "id": row["id"], "name": row["name"], "description": row["description"],
        "visibility": row["visibility"], "has_password": album.has_password,
        "image_count": listed.meta.total, "created_at": row["created_at"],
        "updated_at": row["updated_at"], "url": root + _path(album.id),
        "download_url": root + _path(album.id) + "/album.zip",
        "images": [_image_json(root, album, image, request) for image in listed.items],
    }
    response = web.json_response({"success": True, "data": data,
                                  "meta": listed.meta.model_dump()})
    response.headers.update(_headers(album))
    return response


def _per_page(request: web.Request) -> int:
    """`?per_page=` clamped to 1..100; anything that is not a number is the default."""
    value = parse_int(request.query.get("per_page", ""))
    return PER_PAGE if value is None else min(MAX_PER_PAGE, max(1, value))


def _image_json(root: str, album: SharedAlbum, row: Row,
                request: web.Request) -> dict[str, Any]:
    pages = request.app[SERVICES].album_pages
    return {"id": row["id"], "filename": row["filename"], "description": row["description"],
            "format": row["format"], "width": row["width"], "height": row["height"],
            "size": row["size"], "visibility": row["visibility"],
            "url": root + pages.src(album, row),
            "thumbnail": root + pages.src(album, row, THUMB_WIDTH),
            "blurhash": row["blurhash"], "dominant_color": row["dominant_color"],
            "created_at": row["created_at"], "expires_at": row["expires_at"]}


async def album_zip(request: web.Request) -> web.StreamResponse:
    """Every image the page shows, as stored, in one zip made as it is sent."""
    album, _ = await _open(request)
    if album.locked:
        raise Unauthorized("This album needs its password",
                           f"Give it at {_path(album.id)} (the form sets a cookie)")
    entries = await request.app[SERVICES].album_pages.entries(album)
    response = web.StreamResponse(headers={
        hdrs.CONTENT_TYPE: "application/zip",
        hdrs.CONTENT_DISPOSITION: f'attachment; filename="album-{album.id}.zip"',
        **_headers(album)})
    return await stream_zip(request, response, entries, request.app[STORAGE])


ROUTES = [
    web.get("/a/{id}", album_page),
    web.post("/a/{id}/unlock", unlock),
    web.get("/a/{id}/album.json", album_json),
    web.get("/a/{id}/album.zip", album_zip),
]
