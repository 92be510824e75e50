"""Middleware: the caller, the error envelope, body draining and security headers.

Every error leaves through `error_middleware`, so the envelope of SPEC §2 is
built in exactly one place. Unknown routes (404) and wrong methods (405)
raised by aiohttp's router are mapped too; anything unexpected becomes a 500
with no stack trace in the body (it goes to the log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from pichub.auth import actor_from_token, bearer
from pichub.errors import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PichubError,
)
from pichub.keys import ACTOR, DB, SETTINGS

log = logging.getLogger("pichub")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DRAIN_TIMEOUT_S = 30.0


def error_response(exc: PichubError) -> web.Response:
    response = web.json_response(exc.envelope(), status=exc.status)
    for name, value in exc.headers.items():
        if name.lower() != "connection":
            response.headers[name] = value
    if exc.headers.get("Connection") == "close":
        response.force_close()
    return response


def _from_http(request: web.Request, exc: web.HTTPException) -> PichubError | None:
    if exc.status == 404:
        return NotFound("route")
    if exc.status == 405:
        return MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}")
    if exc.status == 413:
        return PayloadTooLarge()
    return None


async def drain_body(request: web.Request, budget: int) -> bool:
    """Discard what is left of the request body, at most `budget` bytes.

    Answering before the body is consumed makes many clients see a reset
    instead of the response; past the budget the connection is closed instead.
    """
    if not request.body_exists or request.content.at_eof():
        return True
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while budget >= 0:
                chunk = await request.content.readany()
                if not chunk:
                    return True
                budget -= len(chunk)
    except (TimeoutError, ConnectionError):
        return False
    return request.content.at_eof()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PichubError as exc:
        error = exc
    except web.HTTPException as exc:
        mapped = _from_http(request, exc)
        if mapped is None:
            raise
        error = mapped
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        error = PichubError()
    response = error_response(error)
    if response.keep_alive is False:
        return response  # already given up on the body: aiohttp lingers, then closes
    budget = request.app[SETTINGS].storage.max_upload_mb * 2**20
    if not await drain_body(request, budget):
        response.force_close()
    return response


@web.middleware
async def actor_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the bearer token (if any) before the handler; a bad token is a 401 at once."""
    token = bearer(request.headers.get("Authorization"))
    request[ACTOR] = None
    if token is not None:
        request[ACTOR] = await actor_from_token(request.app[DB], token)
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    return response
