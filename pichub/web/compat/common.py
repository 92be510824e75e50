"""What both compatible APIs share: who is calling, and counting them against the limits.

The `/api/v1` middleware does neither for these routes (they are not under the
API prefixes and answer in other shapes), so the adapters do it themselves,
the same way: a token finds the user (`services.accounts`), and the request
counts against that user's `api` budget (plus `upload` for an upload), the
very budgets of the native API (`ratelimit.user_rate_key`); a bad or missing
token still counts against the client's IP before it is refused.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from pichub.errors import Unauthorized
from pichub.keys import DB, LIMITER, RATE, TRUSTED_PROXIES
from pichub.ratelimit import Decision, user_rate_key
from pichub.services.accounts import Actor, actor_from_token
from pichub.web.clientip import rate_limit_key, request_client_ip


def token_of(value: str | None) -> str | None:
    """A token as clients send it: `Bearer <token>`, or the bare token."""
    if not value or not value.strip():
        return None
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() or None if scheme.lower() == "bearer" else value.strip()


async def authenticate(request: web.Request, token: str | None, *,
                       upload: bool = False, scope: str = "read") -> Actor:
    """The caller of `token` with `scope`, counted against the rate limits first; 401 for
    a missing or bad token, 403 for too little scope, 429 over a limit."""
    who = None
    if token is not None:
        try:
            who = await actor_from_token(request.app[DB], token)
        except Unauthorized:
            who = None
    key = (user_rate_key(who.user_id) if who is not None else
           rate_limit_key(request_client_ip(request, request.app[TRUSTED_PROXIES])))
    checks = [("api", key)] + ([("upload", key)] if upload else [])
    decision: Decision = await request.app[LIMITER].check_all(checks)
    request[RATE] = decision
    if not decision.allowed:
        raise decision.error()
    if who is None:
        raise Unauthorized()
    who.require(scope)
    return who


def with_rate_headers(request: web.Request, response: web.Response) -> web.Response:
    """A success answer carries the rate-limit headers too, like the native API's."""
    decision = request.get(RATE)
    if decision is not None:
        response.headers.update(decision.headers())
    return response


def digests(path: str) -> tuple[str, str]:
    """Blocking: the MD5 and SHA-1 (hex) of a stored file, which Lsky and Chevereto answers
    carry (PicHub keeps only SHA-256)."""
    md5, sha1 = hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            md5.update(block)
            sha1.update(block)
    return md5.hexdigest(), sha1.hexdigest()
