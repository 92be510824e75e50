"""The Integrations page: ready-to-use configurations for upload tools (ShareX, PicGo, …).

Each configuration is shown with a placeholder token; "Create a token" makes a
fresh `write` token named after the client and renders that client's file with
it, in the POST's own answer (`Cache-Control: no-store`), like the tokens page:
the token is never put in a redirect, a cookie or a URL.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from pichub.keys import DB
from pichub.services import integrations
from pichub.services.sessions import Session
from pichub.web.common import base_url
from pichub.web.ui.forms import Form, text_field
from pichub.web.ui.guards import action, page
from pichub.web.ui.templates import render

BACK = "/dashboard/integrations"


def _render(request: web.Request, session: Session, fresh: str | None = None,
            token: str | None = None) -> web.Response:
    base = base_url(request)
    items = []
    for client in integrations.CLIENTS:
        found = integrations.render(client, base, token if client == fresh else None)
        download = (f"data:{found.media_type};charset=utf-8,"
                    + urllib.parse.quote(found.content))
        items.append({"it": found, "download": download, "fresh": client == fresh})
    return render(request, "integrations.html", {
        "base_url": base, "items": items, "placeholder": integrations.TOKEN_PLACEHOLDER,
        "lsky_base": base + integrations.LSKY_BASE}, session=session)


@page
async def integrations_page(request: web.Request, session: Session) -> web.StreamResponse:
    return _render(request, session)


@action(BACK)
async def create_token(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    client = text_field(form, "client")
    token = await integrations.create_token(request.app[DB], session.username, client)
    return _render(request, session, fresh=client, token=token)


ROUTES = [
    web.get(BACK, integrations_page),
    web.post(BACK, create_token),
]
