"""Webhook endpoints and deliveries: the objects the API answers with, and the bodies it takes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field

from pichub.db.database import Row
from pichub.models.base import BOOLEAN, TIMESTAMP_EXAMPLE, Checked, Model, Text, problem

EVENT_TYPES: Final = ("image.uploaded", "image.deleted", "album.created", "album.updated",
                      "album.deleted")
PING: Final = "ping"
MAX_URL_LENGTH: Final = 2048
EventType = Literal["image.uploaded", "image.deleted", "album.created", "album.updated",
                    "album.deleted"]
DeliveryType = Literal["image.uploaded", "image.deleted", "album.created", "album.updated",
                       "album.deleted", "ping"]


def _url(value: object) -> str:
    if not isinstance(value, str):
        raise problem("must be a string")
    url = value.strip()
    if not 1 <= len(url) <= MAX_URL_LENGTH:
        raise problem(f"must be 1-{MAX_URL_LENGTH} characters")
    if not url.lower().startswith(("http://", "https://")):
        raise problem("must start with http:// or https://")
    return url


def _events(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise problem("must be a non-empty list of event types, or null for all")
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise problem(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(value))


URL = Checked(_url, (("type", "string"), ("format", "uri"), ("maxLength", MAX_URL_LENGTH),
                     ("description", "http(s); targets on private or loopback networks are "
                                     "refused unless allowed in the config.")), replace=True)
EVENTS = Checked(_events, (("type", ["array", "null"]), ("minItems", 1),
                           ("items", {"enum": list(EVENT_TYPES)}),
                           ("description", "Omitted or null = every event type, including "
                                           "types added later.")), replace=True)


_WEBHOOK_EXAMPLE: Final[dict[str, Any]] = {
    "id": 7, "url": "https://example.com/hooks/pichub", "events": ["image.uploaded"],
    "description": "", "is_active": True, "created_at": TIMESTAMP_EXAMPLE,
    "updated_at": TIMESTAMP_EXAMPLE}


class Webhook(Model):
    """A webhook endpoint of the caller's."""

    model_config = ConfigDict(json_schema_extra={"examples": [_WEBHOOK_EXAMPLE]})

    id: int
    url: str
    events: list[EventType] = Field(description="The event types sent to it.")
    description: str
    is_active: bool = Field(description="Paused endpoints keep their deliveries until resumed.")
    created_at: str = Field(examples=[TIMESTAMP_EXAMPLE])
    updated_at: str = Field(examples=[TIMESTAMP_EXAMPLE])

    @classmethod
    def from_row(cls, row: Row) -> Webhook:
        return cls.model_construct(**_webhook_fields(row))


class WebhookCreated(Webhook):
    """The answer to `POST /webhooks`: the endpoint and its signing secret, shown only here."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {**_WEBHOOK_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]})

    secret: str = Field(description="`whsec_<base64>`: the Standard Webhooks signing secret.")

    @classmethod
    def from_row(cls, row: Row) -> WebhookCreated:
        return cls.model_construct(**_webhook_fields(row), secret=row["secret"])


def _webhook_fields(row: Row) -> dict[str, Any]:
    events = list(EVENT_TYPES) if row["events"] is None else json.loads(row["events"])
    return {"id": row["id"], "url": row["url"], "events": events,
            "description": row["description"], "is_active": bool(row["is_active"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _seconds(stamp: str | None) -> str | None:
    """`…06:50:33.250Z` → `…06:50:33Z`: the API shows whole seconds like every other time."""
    return None if stamp is None else stamp[:19] + "Z"


class Delivery(Model):
    """One event on its way to one endpoint, with the outcome of its latest attempt."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 41, "event_id": "evt_Q2h1Y2sgTm9ycmlzIQ", "type": "image.uploaded", "attempt": 1,
        "status": "delivered", "response_status": 200, "error": None,
        "created_at": TIMESTAMP_EXAMPLE, "next_attempt_at": None,
        "delivered_at": TIMESTAMP_EXAMPLE}]})

    id: int
    event_id: str = Field(description="`evt_…`: also the `webhook-id` header.")
    type: DeliveryType
    attempt: int = Field(description="Attempts made so far.")
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`pending` (waiting for its next attempt), `delivered`, or `failed` "
                    "(attempts exhausted).")
    response_status: int | None
    error: str | None
    created_at: str = Field(examples=[TIMESTAMP_EXAMPLE])
    next_attempt_at: str | None
    delivered_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        return cls.model_construct(
            id=row["id"], event_id=row["event_id"], type=row["type"], attempt=row["attempt"],
            status=row["status"], response_status=row["response_status"], error=row["error"],
            created_at=row["created_at"], next_attempt_at=_seconds(row["next_attempt_at"]),
            delivered_at=row["delivered_at"])


class WebhookCreate(Model):
    """`POST /webhooks`."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://example.com/hooks/pichub", "events": ["image.uploaded"]}]})

    url: Annotated[str, URL]
    events: Annotated[list[EventType] | None, EVENTS] = None
    description: Annotated[str, Text(0, 1000, nullable=True)] = ""
    is_active: Annotated[bool, BOOLEAN] = True


class WebhookUpdate(Model):
    """`PATCH /webhooks/{id}`: at least one field."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"is_active": False}]})

    url: Annotated[str | None, URL] = None
    events: Annotated[list[EventType] | None, EVENTS] = None
    description: Annotated[str | None, Text(0, 1000, nullable=True)] = None
    is_active: Annotated[bool | None, BOOLEAN] = None


class Event(Model):
    """The body of every webhook request PicHub sends."""

    id: str = Field(description="`evt_…`, the same on every attempt (deduplicate on it).")
    type: DeliveryType
    created_at: str = Field(description="When the change was committed.",
                            examples=[TIMESTAMP_EXAMPLE])
    data: dict[str, Any] = Field(description="The Image or Album as the API shows it; for "
                                             "`ping`, `{webhook_id, message}`.")
