"""Webhook API shapes, in and out (SPEC §7).

Out: the webhook object (the secret only in the creation response) and the
delivery object. In: `validate_webhook_input` for POST (all fields) and PATCH
(`partial=True`) bodies. The SSRF check of `url` needs DNS, so it is not done
here: callers `await ssrf.check_url(...)` on the validated url.
"""

from __future__ import annotations

import json
from typing import Any

from pichub.db.database import Row
from pichub.errors import ValidationError
from pichub.validate import Problems, json_bool, json_text

EVENT_TYPES = ("image.uploaded", "image.deleted", "album.created", "album.updated",
               "album.deleted")
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1000


def webhook_obj(row: Row, *, with_secret: bool = False) -> dict[str, Any]:
    """The webhook object; `events` lists every type when the row stores NULL."""
    events = list(EVENT_TYPES) if row["events"] is None else json.loads(row["events"])
    obj: dict[str, Any] = {
        "id": row["id"],
        "url": row["url"],
        "events": events,
        "description": row["description"],
        "is_active": bool(row["is_active"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if with_secret:
        obj["secret"] = row["secret"]
    return obj


def _seconds(stamp: str | None) -> str | None:
    """`…06:50:33.250Z` → `…06:50:33Z`: the API shows whole seconds like every other time."""
    return None if stamp is None else stamp[:19] + "Z"


def delivery_obj(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "type": row["type"],
        "attempt": row["attempt"],
        "status": row["status"],
        "response_status": row["response_status"],
        "error": row["error"],
        "created_at": row["created_at"],
        "next_attempt_at": _seconds(row["next_attempt_at"]),
        "delivered_at": row["delivered_at"],
    }


def _events(problems: Problems, body: dict[str, Any]) -> list[str] | None:
    value = body["events"]
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        problems.add("events", "must be a non-empty list of event types, or null for all")
        return None
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        problems.add("events", f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        return None
    return list(dict.fromkeys(value))


def _url(problems: Problems, body: dict[str, Any]) -> str | None:
    url = json_text(problems, body, "url", low=1, high=MAX_URL_LENGTH)
    if url is not None and not url.lower().startswith(("http://", "https://")):
        problems.add("url", "must start with http:// or https://")
        return None
    return url


def validate_webhook_input(payload: Any, partial: bool) -> dict[str, Any]:
    """The fields of a webhook POST/PATCH body, or ValidationError listing each bad field.

    Returns only the keys present in the body (url, events, description,
    is_active), ready for `db.webhooks.create`/`update`; `events` None means
    all types. POST (`partial=False`) requires `url`; PATCH needs at least one field.
    """
    if not isinstance(payload, dict):
        raise ValidationError("Request body must be a JSON object",
                              [{"field": "body", "message": "must be a JSON object"}])
    problems = Problems()
    fields: dict[str, Any] = {}
    if "url" in payload:
        fields["url"] = _url(problems, payload)
    elif not partial:
        problems.add("url", "is required")
    if "events" in payload:
        fields["events"] = _events(problems, payload)
    if "description" in payload:
        fields["description"] = json_text(problems, payload, "description", low=0,
                                          high=MAX_DESCRIPTION_LENGTH, nullable=True)
    if "is_active" in payload:
        fields["is_active"] = json_bool(problems, payload, "is_active")
    if partial and not payload.keys() & {"url", "events", "description", "is_active"}:
        problems.add("body", "nothing to change: give url, events, description or is_active")
    problems.raise_if_any()
    return fields
