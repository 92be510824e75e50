"""Small helpers every API view shares: responses, pagination, JSON bodies, the caller."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from pichub.auth import Actor
from pichub.clientip import request_base_url
from pichub.errors import BadRequest, Unauthorized, ValidationError
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


def _int(name: str, raw: str, low: int, high: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError.field(name, "must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError.field(name, f"must be {bound}")
    return value


def pagination(request: web.Request) -> tuple[int, int]:
    """(page, per_page) from the query: page ≥ 1, per_page 1–100 (default 20); else 422."""
    query = request.query
    page = _int("page", query.get("page", "1"), 1)
    per_page = _int("per_page", query.get("per_page", "20"), 1, 100)
    return page, per_page


def meta(page: int, per_page: int, total: int) -> dict[str, int]:
    return {"page": page, "per_page": per_page, "total": total,
            "total_pages": (total + per_page - 1) // per_page}


def optional_int(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    return _int(name, raw, -(2**63), 2**63 - 1)


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
