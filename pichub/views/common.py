"""Small helpers every API view shares: responses, JSON bodies, the caller, the base URL."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from pichub.auth import Actor
from pichub.clientip import request_base_url
from pichub.errors import BadRequest, Unauthorized
from pichub.keys import ACTOR, SETTINGS, TRUSTED_PROXIES

API_PREFIXES = ("/api/v1", "/v1")


def ok(data: Any, *, status: int = 200, meta: dict[str, int] | None = None,
       extra: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        body["meta"] = meta
    if extra:
        body.update(extra)
    return web.json_response(body, status=status)


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


def routes(prefixes: tuple[str, ...], table: list[tuple[str, str, Any]]) -> list[web.RouteDef]:
    """The same (method, path, handler) table under each API prefix."""
    return [web.route(method, prefix + path, handler) for prefix in prefixes
            for method, path, handler in table]
