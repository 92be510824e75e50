"""`/webhooks` of the JSON API: thin adapters over `services.webhooks`."""

from __future__ import annotations

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.webhooks import WebhookCreate, WebhookUpdate
from pichub.views.common import actor, body_as, deleted, ok, ok_page
from pichub.views.params import pagination, path_id


async def create_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    body = await body_as(request, WebhookCreate)
    return ok(await request.app[SERVICES].webhooks.create(who.user_id, body), status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    who = actor(request, "read")
    return ok(await request.app[SERVICES].webhooks.list(who.user_id))


async def get_webhook(request: web.Request) -> web.Response:
    who = actor(request, "read")
    webhook_id = path_id(request, "webhook")
    return ok(await request.app[SERVICES].webhooks.get(who.user_id, webhook_id))


async def patch_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    webhook_id = path_id(request, "webhook")
    body = await body_as(request, WebhookUpdate)
    return ok(await request.app[SERVICES].webhooks.update(who.user_id, webhook_id, body))


async def delete_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    webhook_id = path_id(request, "webhook")
    await request.app[SERVICES].webhooks.delete(who.user_id, webhook_id)
    return deleted(webhook_id)


async def list_deliveries(request: web.Request) -> web.Response:
    who = actor(request, "read")
    webhook_id = path_id(request, "webhook")
    page, per_page = pagination(request.query)
    webhooks = request.app[SERVICES].webhooks
    return ok_page(await webhooks.deliveries(who.user_id, webhook_id, page, per_page))


async def test_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    webhook_id = path_id(request, "webhook")
    return ok(await request.app[SERVICES].webhooks.ping(who.user_id, webhook_id), status=202)


ROUTES = [
    ("POST", "/webhooks", create_webhook),
    ("GET", "/webhooks", list_webhooks),
    ("GET", "/webhooks/{id}", get_webhook),
    ("PATCH", "/webhooks/{id}", patch_webhook),
    ("DELETE", "/webhooks/{id}", delete_webhook),
    ("GET", "/webhooks/{id}/deliveries", list_deliveries),
    ("POST", "/webhooks/{id}/test", test_webhook),
]
