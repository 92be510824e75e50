"""The route table of the JSON API: each route with what the OpenAPI document says of it.

One `ApiRoute` per operation, declared next to its handler: the app registers
the handler under every API prefix from it, and `views.openapi` builds the
path, parameters, request body (from the very model the handler validates
with) and responses from it. So a route cannot exist undocumented, and a
body cannot be documented with rules other than the ones it is checked by.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

API_PREFIXES = ("/api/v1", "/v1")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ApiRoute:
    """One operation of the JSON API.

    `body`: the JSON request model; `form`: the multipart form model (its
    fields besides the files); a route with both takes either. `data`: the
    model of the answer's `data` (a list of them when `many`, plus `meta`
    when `listed`); None for an answer described by `extra_data` (a raw JSON
    Schema). `scope`: the token scope needed, None for a public route.
    `errors`: the statuses it can answer besides those every route may (400 for
    a Host outside `server.allowed_hosts`, 401/403 from `scope`, 405, 408 with
    a body, 429, 500, 503 while busy or shutting down).
    """

    method: str
    path: str
    handler: Handler
    operation_id: str
    tag: str
    summary: str
    description: str = ""
    scope: str | None = "read"
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    data: type[BaseModel] | None = None
    many: bool = False
    listed: bool = False
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[str, ...] = ()  # names of shared query parameters (`page`, `per_page`, ...)
    extra_data: dict[str, Any] | None = None
    #: Optional top-level lists of the success envelope besides `data`: (name, item model).
    extra_lists: tuple[tuple[str, type[BaseModel], str], ...] = ()
    #: The success answer's OpenAPI `content` when it is a file, not the JSON envelope.
    content: dict[str, Any] | None = None
    #: OpenAPI parameter objects of this route alone (a path parameter other than `{id}`).
    parameters: tuple[dict[str, Any], ...] = ()


def register(app: web.Application, table: Iterable[ApiRoute]) -> None:
    """Add every route of `table` under each API prefix."""
    app.add_routes([web.route(route.method, prefix + route.path, route.handler)
                    for prefix in API_PREFIXES for route in table])
