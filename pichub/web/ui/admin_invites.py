"""The admin's invites page (`/admin/invites`): make a sign-up invite, see them, revoke one.

A new invite's link is rendered straight into the answer of the POST that made it, once:
never put in a redirect, a cookie or a URL (`Cache-Control: no-store`), since only its hash
is stored. Admins only, like every admin page (404 for anyone else).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.keys import CLOCK, DB, SETTINGS
from pichub.models.base import validate
from pichub.models.invites import InviteCreate
from pichub.services import registration
from pichub.services.sessions import Session
from pichub.web.common import base_url
from pichub.web.params import path_id
from pichub.web.ui.admin import admin_action, admin_page, done
from pichub.web.ui.forms import Form, text_field
from pichub.web.ui.i18n import gettext
from pichub.web.ui.templates import render

BACK = "/admin/invites"
#: The expiry choices of the form, in seconds.
EXPIRIES = ((3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"), (30 * 86400, "30 days"))


async def _render(request: web.Request, session: Session, **extra: Any) -> web.Response:
    invites = await registration.list_invites(request.app[DB], request.app[CLOCK]())
    return render(request, "admin_invites.html", {
        "invites": invites, "expiries": EXPIRIES, "created": None,
        "registration": request.app[SETTINGS].auth.registration, **extra}, session=session)


@admin_page
async def invites_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _render(request, session)


@admin_action(BACK)
async def create_invite(request: web.Request, session: Session,
                        form: Form) -> web.StreamResponse:
    quota = text_field(form, "quota_mb").strip()
    body = validate(InviteCreate, {"expires_in": text_field(form, "expires_in"),
                                   "note": text_field(form, "note"),
                                   "quota_mb": int(quota) if quota.isdigit() and len(quota) < 12
                                   else (quota or None)})
    created = await registration.create_invite(
        request.app[DB], body, created_by=session.user_id, base_url=base_url(request),
        at=request.app[CLOCK]())
    return await _render(request, session, created=created)


@admin_action(BACK)
async def revoke_invite(request: web.Request, session: Session,
                        form: Form) -> web.StreamResponse:
    invite_id = path_id(request, "invite")
    await registration.revoke_invite(request.app[DB], invite_id, request.app[CLOCK]())
    return done(form, BACK, gettext("Invite {id} revoked: its link no longer works.").format(
        id=invite_id))


ROUTES = [
    web.get(BACK, invites_page),
    web.post(BACK, create_invite),
    web.post(BACK + "/{id}/revoke", revoke_invite),
]
