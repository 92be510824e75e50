"""The account page (`/account`): two-factor sign-in, password, the user's sessions, and
deleting the account (after the password again: `services.admin.delete_own_account`, the
admin's one durable delete of a user and all their data).

Two-factor set-up: "Set up" makes a secret (shown as a QR code drawn here as
SVG by segno, and as text), the first code from the app turns it on, and the
ten recovery codes are rendered straight into that POST's answer, once (never
put in a redirect, a cookie or a URL; `Cache-Control: no-store`). Turning it
off takes the password and a code. Every form carries the session's CSRF
token (`guards.action`); codes count against the `two_factor` rate limit.
"""

from __future__ import annotations

from typing import Any

import segno
from aiohttp import web

from pichub.errors import ValidationError
from pichub.keys import DB, LIMITER, SERVICES, SETTINGS, TWO_FACTOR
from pichub.services import accounts, sessions
from pichub.services.admin import delete_own_account
from pichub.services.sessions import Session
from pichub.web.common import base_url
from pichub.web.params import path_id
from pichub.web.ui.auth import code_attempt
from pichub.web.ui.forms import Form, flash, redirect, text_field
from pichub.web.ui.guards import action, page
from pichub.web.ui.i18n import gettext, ngettext
from pichub.web.ui.templates import render

BACK = "/account"


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as a QR code: an SVG `data:` URI for an `<img>` (no script)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


async def _render(request: web.Request, session: Session, **extra: Any) -> web.Response:
    status = await request.app[TWO_FACTOR].status(session.user_id, session.username)
    context = {
        "totp": status,
        "qr": qr_svg(status.enrolment.uri) if status.enrolment else None,
        "recovery_codes": None,
        "required": session.must_enrol(request.app[SETTINGS].auth.require_totp_for_admins),
        "sessions": await sessions.list_own(request.app[DB], session),
        **extra,
    }
    return render(request, "account.html", context, session=session)


async def _count_code(request: web.Request, session: Session) -> None:
    decision = await code_attempt(request, session.user_id)
    if not decision.allowed:
        raise decision.error()


@page
async def account_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _render(request, session)


@action(BACK)
async def begin_totp(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    await request.app[TWO_FACTOR].begin(session.user_id, session.username)
    return redirect(BACK + "#two-factor")


@action(BACK)
async def confirm_totp(request: web.Request, session: Session,
                       form: Form) -> web.StreamResponse:
    await _count_code(request, session)
    codes = await request.app[TWO_FACTOR].confirm(session.user_id, text_field(form, "code"))
    fresh = await sessions.lookup(request.app[DB], request.cookies.get(sessions.COOKIE))
    return await _render(request, fresh or session, recovery_codes=codes)


@action(BACK)
async def disable_totp(request: web.Request, session: Session,
                       form: Form) -> web.StreamResponse:
    await _count_code(request, session)
    await request.app[TWO_FACTOR].disable(session.user_id, text_field(form, "password"),
                                          text_field(form, "code"))
    response = redirect(BACK)
    flash(response, gettext("Two-factor sign-in is off."))
    return response


async def _count_password(request: web.Request, session: Session) -> None:
    """A password re-entered on this page counts as a sign-in attempt of the user."""
    decision = await request.app[LIMITER].check("login", "user:" + session.username.lower())
    if not decision.allowed:
        raise decision.error()


@action(BACK)
async def change_password(request: web.Request, session: Session,
                          form: Form) -> web.StreamResponse:
    await _count_password(request, session)
    new = text_field(form, "new_password")
    if new != text_field(form, "confirm_password"):
        raise ValidationError(gettext("The two new passwords differ."))
    ended = await accounts.change_password(
        request.app[DB], session.user_id, text_field(form, "current_password"), new,
        keep_session=session.id_hash)
    response = redirect(BACK)
    others = (" " + ngettext("{n} other session signed out.", "{n} other sessions signed out.",
                             ended).format(n=ended)) if ended else ""
    flash(response, gettext("Password changed.") + others)
    return response


@action(BACK)
async def end_session(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    session_id = path_id(request, "session")
    mine = {row["id"]: row["current"] for row in await sessions.list_own(request.app[DB],
                                                                          session)}
    await sessions.end_own(request.app[DB], session.user_id, session_id)
    if mine.get(session_id):  # this very browser: as good as signing out
        response = redirect("/login")
        response.del_cookie(sessions.COOKIE, path="/")
        return response
    response = redirect(BACK + "#sessions")
    flash(response, gettext("Session ended: that browser is signed out."))
    return response


@action(BACK + "#delete")
async def delete_account(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    await _count_password(request, session)
    await delete_own_account(request.app[DB], request.app[SERVICES].images, session.user_id,
                             text_field(form, "password"), base_url(request))
    response = redirect("/")
    response.del_cookie(sessions.COOKIE, path="/")
    flash(response, gettext("Your account and all its data were deleted."))
    return response


ROUTES = [
    web.get(BACK, account_page),
    web.post(BACK + "/totp", begin_totp),
    web.post(BACK + "/totp/confirm", confirm_totp),
    web.post(BACK + "/totp/disable", disable_totp),
    web.post(BACK + "/password", change_password),
    web.post(BACK + "/sessions/{id}/end", end_session),
    web.post(BACK + "/delete", delete_account),
]
