"""Webhook endpoints of a user: create (with a secret shown once), list, change, delete, the
delivery log, and test pings. Delivery itself is the worker's (`pichub.webhooks.worker`).

Targets are checked against private networks (`webhooks.ssrf`) whenever a URL
is set; the global endpoint of the config is the operator's and is not.
`wake` tells the worker that something may be deliverable now (a ping, or an
endpoint resumed with deliveries waiting).
"""

from __future__ import annotations

from collections.abc import Callable

from pichub.config import WebhookSettings
from pichub.db import deliveries as deliveries_db
from pichub.db import webhooks as webhooks_db
from pichub.db.database import Database
from pichub.errors import NotFound
from pichub.models.base import changes
from pichub.models.webhooks import Delivery, Webhook, WebhookCreate, WebhookCreated, WebhookUpdate
from pichub.services.common import Page, PageRequest, read_page
from pichub.webhooks import signing, ssrf


class Webhooks:
    """Webhook endpoint rules for the API and the web pages alike."""

    def __init__(self, db: Database, settings: WebhookSettings, wake: Callable[[], None]) -> None:
        self.db = db
        self.settings = settings
        self.wake = wake

    async def create(self, user_id: int, body: WebhookCreate) -> WebhookCreated:
        await ssrf.check_url(body.url, self.settings.allow_private_networks)
        async with self.db.transaction() as conn:
            webhook_id = await webhooks_db.create(
                conn, user_id, body.url, signing.new_secret(), body.events, body.description,
                body.is_active)
            row = await webhooks_db.get(conn, user_id, webhook_id)
        assert row is not None
        return WebhookCreated.from_row(row)

    async def list(self, user_id: int) -> list[Webhook]:
        return [Webhook.from_row(row) for row in await webhooks_db.list_for_user(self.db, user_id)]

    async def get(self, user_id: int, webhook_id: int) -> Webhook:
        row = await webhooks_db.get(self.db, user_id, webhook_id)
        if row is None:
            raise NotFound("webhook")
        return Webhook.from_row(row)

    async def update(self, user_id: int, webhook_id: int, body: WebhookUpdate) -> Webhook:
        fields = changes(body, "url, events, description or is_active")
        if body.url is not None:
            await ssrf.check_url(body.url, self.settings.allow_private_networks)
        async with self.db.transaction() as conn:
            if not await webhooks_db.update(conn, user_id, webhook_id, fields):
                raise NotFound("webhook")
            row = await webhooks_db.get(conn, user_id, webhook_id)
        assert row is not None
        self.wake()  # a resumed endpoint may have deliveries waiting
        return Webhook.from_row(row)

    async def delete(self, user_id: int, webhook_id: int) -> None:
        """The endpoint and its delivery log."""
        async with self.db.transaction() as conn:
            if not await webhooks_db.delete(conn, user_id, webhook_id):
                raise NotFound("webhook")

    async def deliveries(self, user_id: int, webhook_id: int,
                         request: PageRequest) -> Page[Delivery]:
        """The endpoint's deliveries, newest first."""
        row = await webhooks_db.get(self.db, user_id, webhook_id)
        if row is None:
            raise NotFound("webhook")
        return await read_page(self.db, deliveries_db.listing(webhook_id),
                               deliveries_db.KEY_SHAPE, request, row["delivery_count"],
                               Delivery.from_row)

    async def ping(self, user_id: int, webhook_id: int) -> Delivery:
        """Queue a `ping` event for this endpoint only (even a paused one)."""
        async with self.db.transaction() as conn:
            row = await deliveries_db.create_ping(conn, user_id, webhook_id)
        if row is None:
            raise NotFound("webhook")
        self.wake()
        return Delivery.from_row(row)
