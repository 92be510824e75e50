"""Webhook endpoints of the caller (SPEC §7): CRUD, delivery log, test ping."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.db import webhooks as webhooks_db
from pichub.errors import NotFound
from pichub.keys import DB, SETTINGS, WEBHOOKS
from pichub.views.common import actor, json_body, ok
from pichub.views.params import meta, pagination, path_id
from pichub.webhooks import signing, ssrf
from pichub.webhooks.serialize import delivery_obj, validate_webhook_input, webhook_obj


async def _fields(request: web.Request, *, partial: bool) -> dict[str, Any]:
    fields = validate_webhook_input(await json_body(request), partial)
    if "url" in fields:
        allow = request.app[SETTINGS].webhooks.allow_private_networks
        await ssrf.check_url(fields["url"], allow)
    return fields


async def create_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    fields = await _fields(request, partial=False)
    secret = signing.new_secret()
    async with request.app[DB].transaction() as conn:
        webhook_id = await webhooks_db.create(
            conn, who.user_id, fields["url"], secret, fields.get("events"),
            fields.get("description", ""), fields.get("is_active", True))
        row = await webhooks_db.get(conn, who.user_id, webhook_id)
    assert row is not None
    return ok(webhook_obj(row, with_secret=True), status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    who = actor(request, "read")
    rows = await webhooks_db.list_for_user(request.app[DB], who.user_id)
    return ok([webhook_obj(row) for row in rows])


async def get_webhook(request: web.Request) -> web.Response:
    who = actor(request, "read")
    row = await webhooks_db.get(request.app[DB], who.user_id, path_id(request, "webhook"))
    if row is None:
        raise NotFound("webhook")
    return ok(webhook_obj(row))


async def patch_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    webhook_id = path_id(request, "webhook")
    fields = await _fields(request, partial=True)
    async with request.app[DB].transaction() as conn:
        if not await webhooks_db.update(conn, who.user_id, webhook_id, fields):
            raise NotFound("webhook")
        row = await webhooks_db.get(conn, who.user_id, webhook_id)
    assert row is not None
    request.app[WEBHOOKS].wake()  # a re-activated endpoint may have deliveries waiting
    return ok(webhook_obj(row))


async def delete_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    webhook_id = path_id(request, "webhook")
    async with request.app[DB].transaction() as conn:
        if not await webhooks_db.delete(conn, who.user_id, webhook_id):
            raise NotFound("webhook")
    return ok({"id": webhook_id, "deleted": True})


async def list_deliveries(request: web.Request) -> web.Response:
    who = actor(request, "read")
    webhook_id = path_id(request, "webhook")
    page, per_page = pagination(request.query)
    db = request.app[DB]
    if await webhooks_db.get(db, who.user_id, webhook_id) is None:
        raise NotFound("webhook")
    rows, total = await webhooks_db.deliveries_page(db, who.user_id, webhook_id, per_page,
                                                    (page - 1) * per_page)
    return ok([delivery_obj(row) for row in rows], meta=meta(page, per_page, total))


async def test_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    async with request.app[DB].transaction() as conn:
        delivery = await webhooks_db.create_ping(conn, who.user_id, path_id(request, "webhook"))
    if delivery is None:
        raise NotFound("webhook")
    request.app[WEBHOOKS].wake()
    return ok(delivery_obj(delivery), status=202)


ROUTES = [
    ("POST", "/webhooks", create_webhook),
    ("GET", "/webhooks", list_webhooks),
    ("GET", "/webhooks/{id}", get_webhook),
    ("PATCH", "/webhooks/{id}", patch_webhook),
    ("DELETE", "/webhooks/{id}", delete_webhook),
    ("GET", "/webhooks/{id}/deliveries", list_deliveries),
    ("POST", "/webhooks/{id}/test", test_webhook),
]
