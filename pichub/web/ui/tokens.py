"""API tokens in the web UI: create (shown once), list, revoke.

A new token is rendered straight into the response of the POST (never put in
a redirect, a cookie or a URL), with `Cache-Control: no-store`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.keys import DB
from pichub.services import accounts
from pichub.services.sessions import Session
from pichub.web.params import path_id
from pichub.web.ui.forms import Form, flash, redirect, text_field
from pichub.web.ui.guards import action, page
from pichub.web.ui.i18n import gettext
from pichub.web.ui.templates import render

BACK = "/dashboard/tokens"


async def _render(request: web.Request, session: Session, **extra: Any) -> web.Response:
    tokens = await accounts.list_tokens(request.app[DB], session.username)
    context = {"tokens": [dict(row) for row in tokens], "new_token": None, **extra}
    return render(request, "tokens.html", context, session=session)


@page
async def tokens_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _render(request, session)


@action(BACK)
async def create_token(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    name = text_field(form, "name").strip()
    scope = text_field(form, "scope", "write")
    token = await accounts.create_token(request.app[DB], session.username, name, scope)
    return await _render(request, session, new_token=token, new_token_name=name,
                         new_token_scope=scope)


@action(BACK)
async def revoke_token(request: web.Request, session: Session, form: Form) -> web.StreamResponse:
    token_id = path_id(request, "token")
    await accounts.revoke_token(request.app[DB], token_id, session.user_id)
    response = redirect(BACK)
    flash(response, gettext("Token {id} revoked.").format(id=token_id))
    return response


ROUTES = [
    web.get(BACK, tokens_page),
    web.post(BACK, create_token),
    web.post(BACK + "/{id}/revoke", revoke_token),
]
