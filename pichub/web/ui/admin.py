"""The admin pages (`/admin…`): the overview, every image, every token; users are in
`admin_users`. Admins only: anyone else, signed in or not, gets the answer of a page that
does not exist (the 404 the middleware gives unknown routes), before any CSRF check.

Every action is a form POST with the session's CSRF token (`guards.action`) and calls the
same `services.admin` as the JSON API.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from functools import wraps

from aiohttp import web

from pichub.errors import NotFound, PichubError, ValidationError
from pichub.keys import SERVICES
from pichub.services.admin import Admin
from pichub.services.sessions import Session
from pichub.web.common import base_url
from pichub.web.params import path_id, query_id
from pichub.web.ui.forms import Form, flash, paged, redirect, safe_next
from pichub.web.ui.guards import ActionView, Handler, PageView, action, current_session
from pichub.web.ui.i18n import gettext
from pichub.web.ui.templates import error_page, render

PER_PAGE = 30


def service(request: web.Request) -> Admin:
    return request.app[SERVICES].admin


def admin_page(view: PageView) -> Handler:
    """A GET page for admins; 404 (as for no such page) for everyone else."""

    @wraps(view)
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None or not session.is_admin:
            raise NotFound("route")
        try:
            return await view(request, session)
        except PichubError as exc:
            return error_page(request, exc, session)

    return handler


def admin_action(default_back: str) -> Callable[[ActionView], Handler]:
    """A form POST for admins (then the CSRF check of `guards.action`); 404 for others."""

    def decorate(view: ActionView) -> Handler:
        inner = action(default_back)(view)

        @wraps(view)
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            if session is None or not session.is_admin:
                raise NotFound("route")
            return await inner(request)

        return handler

    return decorate


def done(form: Form, back: str, text: str) -> web.Response:
    """Back to the page the form was on, with a message."""
    response = redirect(safe_next(form.get("next"), back))
    flash(response, text)
    return response


@admin_page
async def overview(request: web.Request, session: Session) -> web.StreamResponse:
    stats = await service(request).stats()
    failing = await service(request).failing_webhooks()
    return render(request, "admin.html", {"stats": stats, "chart": stats.chart(),
                                          "failing": failing}, session=session)


@admin_page
async def images_page(request: web.Request, session: Session) -> web.StreamResponse:
    try:
        user_id = query_id(request.query, "user_id", "user")
    except ValidationError:
        user_id = None
    owner = await service(request).user(user_id) if user_id is not None else None
    listed, pager = await paged(request, PER_PAGE, lambda listed: service(request).image_page(
        base_url(request), listed, user_id))
    return render(request, "admin_images.html",
                  {"images": listed.items, "pager": pager, "owner": owner,
                   "next": request.path_qs}, session=session)


@admin_action("/admin/images")
async def delete_image(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    image_id = request.match_info["id"]
    await service(request).delete_image(image_id, base_url(request))
    return done(form, "/admin/images", gettext("Image {id} deleted.").format(id=image_id))


@admin_page
async def tokens_page(request: web.Request, session: Session) -> web.StreamResponse:
    listed, pager = await paged(request, PER_PAGE, service(request).tokens)
    return render(request, "admin_tokens.html",
                  {"tokens": listed.items, "pager": pager, "next": request.path_qs},
                  session=session)


@admin_action("/admin/tokens")
async def revoke_token(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    token_id = path_id(request, "token")
    await service(request).revoke_token(token_id)
    return done(form, "/admin/tokens", gettext("Token {id} revoked.").format(id=token_id))


def images_of(user_id: int) -> str:
    """The link to one user's images on the images page."""
    return "/admin/images?" + urllib.parse.urlencode({"user_id": user_id})


ROUTES = [
    web.get("/admin", overview),
    web.get("/admin/images", images_page),
    web.post("/admin/images/{id}/delete", delete_image),
    web.get("/admin/tokens", tokens_page),
    web.post("/admin/tokens/{id}/revoke", revoke_token),
]
