"""Middleware: the caller, the error envelope, body draining and security headers.

Every error leaves through `front_middleware`, so the envelope of docs/rules.md is
built in exactly one place. Unknown routes (404) and wrong methods (405)
raised by aiohttp's router are mapped too; anything unexpected becomes a 500
with no stack trace in the body (it goes to the log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from pichub.errors import (
    BadRequest,
    InsufficientStorage,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PichubError,
    Unauthorized,
    is_disk_full,
)
from pichub.keys import ACTOR, ALLOWED_HOSTS, DB, JINJA, LIMITER, RATE, SETTINGS, TRUSTED_PROXIES
from pichub.ratelimit import user_rate_key
from pichub.services.accounts import Actor, actor_from_token
from pichub.web.clientip import forwarded_host, rate_limit_key, request_client_ip
from pichub.web.routes import API_PREFIXES
from pichub.web.shapes import error_shape
from pichub.web.ui.templates import error_page

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


def wants_html(request: web.Request) -> bool:
    """A browser asking for a page: API and image URLs always answer with the envelope."""
    if is_api(request.path) or request.path.startswith("/img/") or request.method != "GET":
        return False
    return "text/html" in request.headers.get("Accept", "") and JINJA in request.app


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


#: On every answer: front_middleware sets them (unless a view did), the cache-hit lane too.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


@web.middleware
async def front_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The allowed-host check, the error envelope and the security headers, around all."""
    try:
        check_host(request)
        response = await handler(request)
    except Exception as exc:  # noqa: BLE001 - every error is answered with the envelope
        error = _as_error(request, exc)
        if error is None:
            raise  # one of aiohttp's non-error answers (a redirect): it sends it itself
        response = await _error_answer(request, error)
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    return response


def check_host(request: web.Request) -> None:
    """Refuse (400) a `Host`, or a trusted proxy's `X-Forwarded-Host`, not in allowed_hosts.

    Both name the base of absolute URLs when `server.public_url` is unset, and a
    DNS-rebinding page makes a browser send its own name in `Host`.
    """
    value = foreign_host(request.app, request)
    if value is not None:
        raise _foreign_host(value)


def foreign_host(app: web.Application, request: web.BaseRequest) -> str | None:
    """The `Host` (or trusted `X-Forwarded-Host`) value outside allowed_hosts, if any."""
    allowed = app[ALLOWED_HOSTS]
    claimed = request.headers.get("Host", "")  # none at all (HTTP/1.0) is refused too
    if not allowed.allows_header(claimed):
        return claimed
    trusted = app[TRUSTED_PROXIES]
    if trusted and app[SETTINGS].server.public_url is None:
        forwarded = forwarded_host(request.remote, request.headers, trusted)
        if forwarded is not None and not allowed.allows_header(forwarded):
            return forwarded
    return None


def _foreign_host(value: str) -> BadRequest:
    return BadRequest(f"This server does not answer to the host {value!r}", {"host": value})


def _as_error(request: web.Request, exc: Exception) -> PichubError | None:
    """The error to answer `exc` with; None for aiohttp's answers that are no error."""
    if isinstance(exc, PichubError):
        return exc
    if isinstance(exc, web.HTTPException):
        return _from_http(request, exc)
    if is_disk_full(exc):
        log.error("disk full on %s %s: %s", request.method, request.path, exc)
        return InsufficientStorage.disk_full()
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return PichubError()


async def _error_answer(request: web.Request, error: PichubError) -> web.StreamResponse:
    """The envelope (or, for a browser outside the API, an HTML page) of `error`."""
    shape = error_shape(request)  # text, Lsky's or Chevereto's answer, for their clients
    if shape is not None:
        response = shape(error)
    elif wants_html(request):
        response = error_page(request, error, None)
    else:
        response = error_response(error)
    if (decision := request.get(RATE)) is not None:
        response.headers.update(decision.headers())
    if response.keep_alive is False:
        return response  # already given up on the body: aiohttp lingers, then closes
    budget = request.app[SETTINGS].storage.max_upload_mb * 2**20
    if not await drain_body(request, budget):
        response.force_close()
    return response


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def rate_key(request: web.Request, who: Actor | None) -> str:
    """Whose budget a request spends: the user's (every token and the web session of a user
    share one, so creating tokens buys no extra), else the client IP's."""
    if who is not None:
        return user_rate_key(who.user_id)
    return rate_limit_key(request_client_ip(request, request.app[TRUSTED_PROXIES]))


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On API routes: who is calling, then the rate limits, before any work is done.

    A bad token is a 401 at once, but still counts against the caller's IP and
    carries the rate-limit headers, like every API response.
    """
    request[ACTOR] = None
    if not is_api(request.path):
        return await handler(request)
    who, auth_error = None, None
    token = bearer(request.headers.get("Authorization"))
    if token is not None:
        try:
            who = await actor_from_token(request.app[DB], token)
        except Unauthorized as exc:
            auth_error = exc
    key = rate_key(request, who)
    checks = [("api", key)]
    if request.method == "POST" and request.path.endswith("/upload"):
        checks.append(("upload", key))
    decision = await request.app[LIMITER].check_all(checks)
    request[RATE] = decision
    if not decision.allowed:
        raise decision.error()
    if auth_error is not None:
        raise auth_error
    request[ACTOR] = who
    response = await handler(request)
    response.headers.update(decision.headers())
    return response
