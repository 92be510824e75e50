"""Webhooks in the web UI: create (secret shown once), list, deliveries log, test, pause, delete.

Same rules as the API of SPEC §7: input validated by `webhooks.serialize`,
the target checked against private networks by `webhooks.ssrf`, the test
event written by `db.webhooks.create_ping` (delivered by the worker).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.db import webhooks as webhooks_db
from pichub.errors import NotFound
from pichub.keys import DB, GALLERY, SETTINGS
from pichub.sessions import Session
from pichub.views.params import page_number, path_id
from pichub.views.ui_common import (
    Form,
    action,
    flash,
    page,
    pager,
    redirect,
    render,
    text_field,
)
from pichub.webhooks import signing, ssrf
from pichub.webhooks.serialize import EVENT_TYPES, delivery_obj, validate_webhook_input, webhook_obj

BACK = "/dashboard/webhooks"
PER_PAGE = 50


async def _render_list(request: web.Request, session: Session, **extra: Any) -> web.Response:
    rows = await webhooks_db.list_for_user(request.app[DB], session.user_id)
    return render(request, "webhooks.html", {
        "webhooks": [webhook_obj(row) for row in rows], "event_types": EVENT_TYPES,
        "new_webhook": None, **extra}, session=session)


@page
async def webhooks_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _render_list(request, session)


def _input(form: Form) -> dict[str, Any]:
    chosen = [v for v in form.getall("events", []) if isinstance(v, str)]
    events: list[str] | None = chosen
    if set(chosen) == set(EVENT_TYPES):
        events = None  # all, including event types added later
    body = {"url": text_field(form, "url").strip(), "events": events,
            "description": text_field(form, "description")}
    return validate_webhook_input(body, partial=False)


@action(BACK)
async def create_webhook(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    fields = _input(form)
    await ssrf.check_url(fields["url"], request.app[SETTINGS].webhooks.allow_private_networks)
    db = request.app[DB]
    async with db.transaction() as conn:
        webhook_id = await webhooks_db.create(
            conn, session.user_id, fields["url"], signing.new_secret(), fields.get("events"),
            fields.get("description") or "")
        row = await webhooks_db.get(conn, session.user_id, webhook_id)
    assert row is not None
    return await _render_list(request, session, new_webhook=webhook_obj(row, with_secret=True))


@page
async def webhook_page(request: web.Request, session: Session) -> web.StreamResponse:
    db, webhook_id = request.app[DB], path_id(request, "webhook")
    row = await webhooks_db.get(db, session.user_id, webhook_id)
    if row is None:
        raise NotFound("webhook")
    number = page_number(request.query)
    deliveries, total = await webhooks_db.deliveries_page(
        db, session.user_id, webhook_id, PER_PAGE, (number - 1) * PER_PAGE)
    return render(request, "webhook.html", {
        "webhook": webhook_obj(row), "deliveries": [delivery_obj(d) for d in deliveries],
        "pager": pager(request, number, PER_PAGE, total)}, session=session)


def _back_to(webhook_id: int, text: str) -> web.Response:
    response = redirect(f"{BACK}/{webhook_id}")
    flash(response, text)
    return response


@action(BACK)
async def send_test(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    webhook_id = path_id(request, "webhook")
    async with request.app[DB].transaction() as conn:
        delivery = await webhooks_db.create_ping(conn, session.user_id, webhook_id)
    if delivery is None:
        raise NotFound("webhook")
    request.app[GALLERY].on_change()  # wakes the delivery worker
    return _back_to(webhook_id, f"Test event {delivery['event_id']} queued.")


@action(BACK)
async def set_active(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    webhook_id = path_id(request, "webhook")
    active = text_field(form, "is_active") != "0"
    async with request.app[DB].transaction() as conn:
        found = await webhooks_db.update(conn, session.user_id, webhook_id,
                                         {"is_active": active})
    if not found:
        raise NotFound("webhook")
    return _back_to(webhook_id, "Webhook resumed." if active else "Webhook paused.")


@action(BACK)
async def delete_webhook(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    async with request.app[DB].transaction() as conn:
        found = await webhooks_db.delete(conn, session.user_id, path_id(request, "webhook"))
    if not found:
        raise NotFound("webhook")
    response = redirect(BACK)
    flash(response, "Webhook deleted.")
    return response


ROUTES = [
    web.get(BACK, webhooks_page),
    web.post(BACK, create_webhook),
    web.get(BACK + "/{id}", webhook_page),
    web.post(BACK + "/{id}/test", send_test),
    web.post(BACK + "/{id}/active", set_active),
    web.post(BACK + "/{id}/delete", delete_webhook),
]
