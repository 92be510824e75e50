"""Every route of the JSON API (`/api/v1/…` and `/v1/…`), as one table."""

from __future__ import annotations

from aiohttp import web

from pichub.keys import SETTINGS
from pichub.web.api import admin, albums, images, integrations, invites, upload, webhooks
from pichub.web.openapi import build_openapi
from pichub.web.routes import ApiRoute


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document; no auth (the API middleware still rate limits it)."""
    document = build_openapi(request.app[SETTINGS], ROUTES)
    return web.json_response(document, headers={"Cache-Control": "no-cache",
                                                "Access-Control-Allow-Origin": "*"})


ROUTES: list[ApiRoute] = [
    *upload.ROUTES,
    *images.ROUTES,
    *albums.ROUTES,
    *webhooks.ROUTES,
    *integrations.ROUTES,
    *admin.ROUTES,
    *invites.ROUTES,
    ApiRoute("GET", "/openapi.json", openapi_json, "openapi", "Meta", "This document",
             "No authentication; rendered by the `/docs` page.", scope=None,
             extra_data={"type": "object", "description": "The OpenAPI 3.1 document."}),
]
