"""The dashboard: my images, the browser uploader, and editing or deleting an image.

The uploader sends one XHR per file (dropped, picked or pasted) or per URL (the
"from URL" box) to `POST /dashboard/upload`, so each has its own progress row and
stands or falls alone. That endpoint takes the
session cookie plus the `X-CSRF-Token` header, counts against the `upload`
rate limit per user, then reads and stores the files the way the API does
(same fields, defaults, errors and JSON) and adds `html`: the new cards,
rendered by the template the page itself uses. The JSON API stays bearer-only.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from markupsafe import Markup

from pichub.errors import ValidationError
from pichub.keys import JINJA, LIMITER, SERVICES, SETTINGS
from pichub.models.base import parse_int, validate
from pichub.models.images import ImageUpdate
from pichub.models.sharing import LinkRequest
from pichub.ratelimit import user_rate_key
from pichub.services.sessions import Session
from pichub.web.api.upload import receive_and_store
from pichub.web.common import base_url, ok
from pichub.web.params import row_id
from pichub.web.ui.forms import Form, flash, paged, redirect, safe_next, text_field
from pichub.web.ui.guards import action, page, xhr
from pichub.web.ui.i18n import gettext
from pichub.web.ui.templates import EXPIRY_CHOICES, LINK_CHOICES, render

PER_PAGE = 24


async def album_choices(request: web.Request, user_id: int) -> list[dict[str, Any]]:
    """The user's albums (newest first) for the album pickers."""
    choices = await request.app[SERVICES].albums.choices(user_id)
    return [{"id": album_id, "name": name} for album_id, name in choices]


def _album_filter(request: web.Request) -> int | None:
    """`?album_id=`: ignored unless it is an integer; one no album can have is a 404."""
    raw = request.query.get("album_id", "")
    return row_id(raw, "album") if parse_int(raw) is not None else None


@page
async def dashboard(request: web.Request, session: Session) -> web.StreamResponse:
    album_id = _album_filter(request)
    albums = await album_choices(request, session.user_id)
    current = next((a for a in albums if a["id"] == album_id), None)
    images = request.app[SERVICES].images
    listed, pages = await paged(request, PER_PAGE, lambda wanted: images.page(
        session.user_id, base_url(request), wanted, album_id))
    settings = request.app[SETTINGS]
    return render(request, "dashboard.html", {
        "images": listed.items, "albums": albums, "album_id": album_id,
        "current_album": current, "next": request.path_qs,
        "pager": pages,
        "default_quality": settings.images.default_quality,
        "max_upload_mb": settings.storage.max_upload_mb,
    }, session=session)


@xhr
async def upload(request: web.Request, session: Session) -> web.StreamResponse:
    """One file of the browser uploader: the API's upload, counted against the user's
    `upload` budget, answered with the API's JSON plus the new cards' HTML."""
    decision = await request.app[LIMITER].check("upload", user_rate_key(session.user_id))
    if not decision.allowed:
        raise decision.error()
    stored = await receive_and_store(request, session.actor())
    albums = await album_choices(request, session.user_id)
    macros = request.app[JINJA].get_template("_macros.html").module
    cards = [macros.owner_card(image, albums, session.csrf_token, "/dashboard")  # type: ignore[attr-defined]
             for image in stored.outcome.images]
    extra: dict[str, Any] = {"html": str(Markup("").join(cards))}
    if stored.outcome.errors:
        extra["errors"] = stored.failures()
    response = ok(stored.outcome.images, status=201, extra=extra)
    response.headers.update(decision.headers())
    if not stored.complete:
        response.force_close()
    return response


_EXPIRY_SECONDS: Final = frozenset(str(seconds) for seconds, _ in EXPIRY_CHOICES)
_LINK_SECONDS: Final = frozenset(str(seconds) for seconds, _ in LINK_CHOICES)


def _expiry_change(form: Form) -> dict[str, Any]:
    """The edit form's `expires` as PATCH fields: `keep` (or absent) changes nothing,
    `never` sends `expires_in: null`, one of the choices `expires_in` seconds."""
    chosen = text_field(form, "expires", "keep").strip()
    if chosen == "keep":
        return {}
    if chosen == "never":
        return {"expires_in": None}
    if chosen not in _EXPIRY_SECONDS:
        raise ValidationError.field("expires", "must be one of the offered choices")
    return {"expires_in": int(chosen)}


def _image_changes(form: Form) -> ImageUpdate:
    """The edit form as the API's PATCH body: album (or none), visibility, description,
    expiry."""
    album_raw = text_field(form, "album_id").strip()
    if album_raw and parse_int(album_raw) is None:
        raise ValidationError.field("album_id", "must be an album")
    shown = text_field(form, "is_public", "1")  # 1 public, 0 unlisted, or "private"
    return validate(ImageUpdate, {
        "album_id": row_id(album_raw, "album") if album_raw else None,
        "visibility": "private" if shown == "private" else (
            "unlisted" if shown == "0" else "public"),
        "description": text_field(form, "description"), **_expiry_change(form)})


@action("/dashboard")
async def edit_image(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    await request.app[SERVICES].images.update(session.user_id, request.match_info["id"],
                                              _image_changes(form), base_url(request))
    response = redirect(safe_next(form.get("next"), "/dashboard"))
    flash(response, gettext("Image saved."))
    return response


@xhr
async def signed_link(request: web.Request, session: Session) -> web.StreamResponse:
    """The card's "copy a signed link valid for …": the API's `POST /images/{id}/links`
    (same service, same answer) with one of the offered lifetimes, for app.js to copy."""
    form = await request.post()
    chosen = text_field(form, "expires_in").strip()
    if chosen not in _LINK_SECONDS:
        raise ValidationError.field("expires_in", "must be one of the offered choices")
    link = await request.app[SERVICES].images.link(
        session.user_id, request.match_info["id"], LinkRequest(expires_in=int(chosen)),
        base_url(request))
    return ok(link, status=201)


@action("/dashboard")
async def delete_image(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    await request.app[SERVICES].images.delete(session.user_id, request.match_info["id"],
                                              base_url(request))
    response = redirect(safe_next(form.get("next"), "/dashboard"))
    flash(response, gettext("Image deleted."))
    return response


ROUTES = [
    web.get("/dashboard", dashboard),
    web.post("/dashboard/upload", upload),
    web.post("/dashboard/images/{id}", edit_image),
    web.post("/dashboard/images/{id}/delete", delete_image),
    web.post("/dashboard/images/{id}/link", signed_link),
]
