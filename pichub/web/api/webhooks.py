"""`/webhooks` of the JSON API: thin adapters over `services.webhooks`."""

from __future__ import annotations

from aiohttp import web

from pichub.keys import SERVICES
from pichub.models.common import Deleted
from pichub.models.webhooks import (
    Delivery,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookUpdate,
)
from pichub.web.common import actor, body_as, deleted, ok, ok_page
from pichub.web.params import pagination, path_id
from pichub.web.routes import ApiRoute


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
    listed = pagination(request.query)
    webhooks = request.app[SERVICES].webhooks
    return ok_page(await webhooks.deliveries(who.user_id, webhook_id, listed))


async def test_webhook(request: web.Request) -> web.Response:
    who = actor(request, "write")
    webhook_id = path_id(request, "webhook")
    return ok(await request.app[SERVICES].webhooks.ping(who.user_id, webhook_id), status=202)


ROUTES = [
    ApiRoute("POST", "/webhooks", create_webhook, "createWebhook", "Webhooks",
             "Add a webhook endpoint", "Targets resolving to loopback, private, link-local or "
             "reserved addresses are refused with 422 unless `webhooks.allow_private_networks` "
             "is set. The answer carries the signing `secret`, shown only here.",
             scope="write", body=WebhookCreate, data=WebhookCreated, status=201,
             errors=(400, 422)),
    ApiRoute("GET", "/webhooks", list_webhooks, "listWebhooks", "Webhooks", "List my webhooks",
             data=Webhook, many=True),
    ApiRoute("GET", "/webhooks/{id}", get_webhook, "getWebhook", "Webhooks", "Get a webhook",
             data=Webhook, errors=(404,)),
    ApiRoute("PATCH", "/webhooks/{id}", patch_webhook, "updateWebhook", "Webhooks",
             "Change a webhook", "Send at least one field. Resuming (`is_active: true`) sends "
             "the deliveries that waited.", scope="write", body=WebhookUpdate, data=Webhook,
             errors=(400, 404, 422)),
    ApiRoute("DELETE", "/webhooks/{id}", delete_webhook, "deleteWebhook", "Webhooks",
             "Delete a webhook", "Its delivery log goes with it.", scope="write", data=Deleted,
             errors=(404,)),
    ApiRoute("GET", "/webhooks/{id}/deliveries", list_deliveries, "listDeliveries", "Webhooks",
             "Delivery log", "Attempts for this endpoint, newest first.", data=Delivery,
             many=True, listed=True, errors=(404, 422),
             query=("page", "cursor", "per_page")),
    ApiRoute("POST", "/webhooks/{id}/test", test_webhook, "testWebhook", "Webhooks",
             "Send a test event", "Queues a `ping` event for this endpoint only (even a "
             "paused one); the answer is the queued delivery.", scope="write", data=Delivery,
             status=202, errors=(404,)),
]
