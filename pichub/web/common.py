"""Small helpers every API view shares: responses, JSON bodies, the caller, the base URL."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from pichub.errors import BadRequest, Unauthorized
from pichub.keys import ACTOR, SETTINGS, TRUSTED_PROXIES
from pichub.models.base import M, validate
from pichub.models.common import Deleted, Meta
from pichub.services.accounts import Actor
from pichub.services.common import Page
from pichub.web.clientip import request_base_url


def dump(value: Any) -> Any:
    """Models (also inside lists and dicts) as JSON-ready data; anything else as it is."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [dump(item) for item in value]
    if isinstance(value, dict):
        return {key: dump(item) for key, item in value.items()}
    return value


def ok(data: Any, *, status: int = 200, meta: Meta | None = None,
       extra: dict[str, Any] | None = None) -> web.Response:
    """The success envelope `{"success": true, "data", "meta"?}` (+ `extra` keys)."""
    body: dict[str, Any] = {"success": True, "data": dump(data)}
    if meta is not None:
        body["meta"] = dump(meta)
    if extra:
        body.update(dump(extra))
    return web.json_response(body, status=status)


def ok_page(page: Page[Any]) -> web.Response:
    """A page of a list: its items in `data`, its place in `meta`."""
    return ok(page.items, meta=page.meta)


def deleted(resource_id: int | str) -> web.Response:
    """The answer to every DELETE."""
    return ok(Deleted(id=resource_id, deleted=True))


async def body_as(request: web.Request, model: type[M]) -> M:
    """The JSON body validated as `model`: 400 when not a JSON object, 422 per bad field."""
    return validate(model, await json_body(request))


def actor(request: web.Request, scope: str = "read") -> Actor:
    """The authenticated caller with at least `scope`; 401/403 otherwise."""
    who: Actor | None = request.get(ACTOR)
    if who is None:
        raise Unauthorized()
    who.require(scope)
    return who


def base_url(request: web.Request) -> str:
    """Base of absolute URLs: `server.public_url`, else the request's (or trusted proxy's)."""
    app = request.app
    return request_base_url(request, app[TRUSTED_PROXIES], app[SETTINGS].server.public_url)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body: 400 when it is not JSON or not an object."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body
