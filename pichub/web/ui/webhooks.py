"""Webhooks in the web UI: create (secret shown once), list, deliveries log, test, pause, delete.

The same service and rules as the API's `/webhooks` (`services.webhooks`).
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.base import validate
from pichub.models.webhooks import EVENT_TYPES, WebhookCreate, WebhookUpdate
from pichub.services.sessions import Session
from pichub.web.params import path_id
from pichub.web.ui.forms import Form, flash, paged, redirect, text_field
from pichub.web.ui.guards import action, page
from pichub.web.ui.i18n import gettext
from pichub.web.ui.templates import render

BACK = "/dashboard/webhooks"
PER_PAGE = 50


async def _render_list(request: web.Request, session: Session, **extra: Any) -> web.Response:
    return render(request, "webhooks.html", {
        "webhooks": await request.app[SERVICES].webhooks.list(session.user_id),
        "event_types": EVENT_TYPES, "new_webhook": None, **extra}, session=session)


@page
async def webhooks_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _render_list(request, session)


def _create_body(form: Form) -> WebhookCreate:
    chosen = [v for v in form.getall("events", []) if isinstance(v, str)]
    events: list[str] | None = chosen
    if set(chosen) == set(EVENT_TYPES):
        events = None  # all, including event types added later
    return validate(WebhookCreate, {"url": text_field(form, "url"), "events": events,
                                    "description": text_field(form, "description")})


@action(BACK)
async def create_webhook(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    created = await request.app[SERVICES].webhooks.create(session.user_id, _create_body(form))
    return await _render_list(request, session, new_webhook=created)


@page
async def webhook_page(request: web.Request, session: Session) -> web.StreamResponse:
    webhooks, webhook_id = request.app[SERVICES].webhooks, path_id(request, "webhook")
    webhook = await webhooks.get(session.user_id, webhook_id)
    listed, pages = await paged(request, PER_PAGE, functools.partial(
        webhooks.deliveries, session.user_id, webhook_id))
    return render(request, "webhook.html", {
        "webhook": webhook, "deliveries": listed.items, "pager": pages}, session=session)


def _back_to(webhook_id: int, text: str) -> web.Response:
    response = redirect(f"{BACK}/{webhook_id}")
    flash(response, text)
    return response


@action(BACK)
async def send_test(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    webhook_id = path_id(request, "webhook")
    delivery = await request.app[SERVICES].webhooks.ping(session.user_id, webhook_id)
    return _back_to(webhook_id, gettext("Test event {id} queued.").format(id=delivery.event_id))


@action(BACK)
async def set_active(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    webhook_id = path_id(request, "webhook")
    active = text_field(form, "is_active") != "0"
    await request.app[SERVICES].webhooks.update(session.user_id, webhook_id,
                                                WebhookUpdate(is_active=active))
    return _back_to(webhook_id, gettext("Webhook resumed.") if active
                    else gettext("Webhook paused."))


@action(BACK)
async def delete_webhook(request: web.Request, session: Session,
                         form: Form) -> web.StreamResponse:
    await request.app[SERVICES].webhooks.delete(session.user_id, path_id(request, "webhook"))
    response = redirect(BACK)
    flash(response, gettext("Webhook deleted."))
    return response


ROUTES = [
    web.get(BACK, webhooks_page),
    web.post(BACK, create_webhook),
    web.get(BACK + "/{id}", webhook_page),
    web.post(BACK + "/{id}/test", send_test),
    web.post(BACK + "/{id}/active", set_active),
    web.post(BACK + "/{id}/delete", delete_webhook),
]
