"""The admin's users page (`/admin/users`): search, create, disable/enable, make or unmake
admin, set the quota or the e-mail, reset the password or the two-factor sign-in, delete
with all their data. Each form posts to
its own small action, which builds the same `AdminUserUpdate` the JSON API validates."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.models.admin import AdminUserCreate, AdminUserUpdate
from pichub.models.base import validate
from pichub.services.sessions import Session
from pichub.web.common import base_url
from pichub.web.params import path_id
from pichub.web.ui.admin import PER_PAGE, admin_action, admin_page, done, images_of, service
from pichub.web.ui.forms import Form, paged, text_field
from pichub.web.ui.i18n import gettext
from pichub.web.ui.templates import render

BACK = "/admin/users"


def _quota(raw: str) -> int | str | None:
    """A quota field: empty = no limit; digits = megabytes; anything else goes to the model,
    which refuses it with its message."""
    text = raw.strip()
    if not text:
        return None
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else text


@admin_page
async def users_page(request: web.Request, session: Session) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:64]
    listed, pager = await paged(request, PER_PAGE,
                                lambda listed: service(request).users(listed, q))
    return render(request, "admin_users.html",
                  {"users": listed.items, "pager": pager, "q": q, "next": request.path_qs,
                   "images_of": images_of}, session=session)


@admin_action(BACK)
async def create_user(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    body = validate(AdminUserCreate, {
        "username": text_field(form, "username"), "password": text_field(form, "password"),
        "is_admin": text_field(form, "is_admin") == "1",
        "quota_mb": _quota(text_field(form, "quota_mb"))})
    user = await service(request).create_user(body)
    return done(form, BACK, gettext("User {name} created.").format(name=user.username))


async def _update(request: web.Request, session: Session, form: Form,
                  fields: dict[str, Any], text: str) -> web.StreamResponse:
    user_id = path_id(request, "user")
    user = await service(request).update_user(session.actor(), user_id,
                                              validate(AdminUserUpdate, fields))
    return done(form, BACK, text.format(name=user.username))


@admin_action(BACK)
async def set_active(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    active = text_field(form, "is_active") == "1"
    return await _update(request, session, form, {"is_active": active},
                         gettext("{name} enabled.") if active else
                         gettext("{name} disabled: their tokens and sessions no longer work."))


@admin_action(BACK)
async def set_admin(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    promote = text_field(form, "is_admin") == "1"
    return await _update(request, session, form, {"is_admin": promote},
                         gettext("{name} is now an admin.") if promote
                         else gettext("{name} is no longer an admin."))


@admin_action(BACK)
async def set_quota(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    return await _update(request, session, form,
                         {"quota_mb": _quota(text_field(form, "quota_mb"))},
                         gettext("Quota of {name} saved."))


@admin_action(BACK)
async def set_email(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    email = text_field(form, "email").strip()
    return await _update(request, session, form, {"email": email},
                         gettext("E-mail of {name} saved.") if email
                         else gettext("E-mail of {name} removed."))


@admin_action(BACK)
async def set_password(request: web.Request, session: Session,
                       form: Form) -> web.StreamResponse:
    return await _update(request, session, form, {"password": text_field(form, "password")},
                         gettext("Password of {name} reset; their sessions were signed out."))


@admin_action(BACK)
async def reset_totp(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    user = await service(request).reset_totp(session.actor(), path_id(request, "user"))
    return done(form, BACK, gettext("Two-factor sign-in of {name} reset: their next sign-in "
                                    "needs only the password.").format(name=user.username))


@admin_action(BACK)
async def delete_user(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    user_id = path_id(request, "user")
    user = await service(request).user(user_id)
    await service(request).delete_user(session.actor(), user_id, base_url(request))
    return done(form, BACK, gettext("User {name} and all their data deleted.").format(
        name=user.username))


ROUTES = [
    web.get(BACK, users_page),
    web.post(BACK, create_user),
    web.post(BACK + "/{id}/active", set_active),
    web.post(BACK + "/{id}/admin", set_admin),
    web.post(BACK + "/{id}/quota", set_quota),
    web.post(BACK + "/{id}/email", set_email),
    web.post(BACK + "/{id}/password", set_password),
    web.post(BACK + "/{id}/totp/reset", reset_totp),
    web.post(BACK + "/{id}/delete", delete_user),
]
