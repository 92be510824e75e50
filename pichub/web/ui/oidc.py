"""Single sign-on pages: `GET /login/oidc` (off to the provider) and its callback.

The flow itself is `web/oidc.py`, the choice of account `services/oidc.py`. Signing in here
skips PicHub's own two-factor step: the provider checked the user (and does MFA if it is set
up there), so the session is marked `sso` and `auth.require_totp_for_admins` does not send an
admin to set up TOTP. Every way it can fail ends on a page that says what happened, never a 500: the
provider down or answering nonsense (502), an answer that does not belong to this browser's
sign-in or whose ID token does not check out (400), no account or a disabled one (403).
"""

from __future__ import annotations

from aiohttp import web

from pichub.errors import PichubError
from pichub.keys import DB, OIDC
from pichub.services import oidc
from pichub.web.common import base_url
from pichub.web.oidc import FLOW_S, FlowError, ProviderError
from pichub.web.ui.auth import DISABLED, signed_in
from pichub.web.ui.forms import safe_next
from pichub.web.ui.guards import current_session, set_cookie
from pichub.web.ui.i18n import N_, error_text, gettext
from pichub.web.ui.templates import render

FLOW_COOKIE = "pichub_oidc"
CALLBACK = "/login/oidc/callback"
NO_ACCOUNT = N_("There is no PicHub account for you yet, and accounts are not created on "
                "first sign-in here. Ask an administrator to create one for you.")


def _page(request: web.Request, status: int, message: str) -> web.Response:
    response = render(request, "error.html", {"status": status, "message": message},
                      status=status)
    response.del_cookie(FLOW_COOKIE, path="/")
    return response


async def start(request: web.Request) -> web.StreamResponse:
    """GET /login/oidc: to the provider's sign-in, with a fresh flow in a signed cookie."""
    client = request.app[OIDC]
    if not client.settings.enabled:
        return _page(request, 404, gettext("Single sign-on is not set up on this PicHub."))
    next_path = safe_next(request.query.get("next"), "/dashboard")
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(next_path)
    try:
        url, flow = await client.begin(base_url(request) + CALLBACK, next_path)
    except ProviderError as exc:
        return _page(request, 502, _down_message(exc))
    response = web.Response(status=303, headers={"Location": url})
    set_cookie(request, response, FLOW_COOKIE, flow, max_age=FLOW_S)
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    """GET /login/oidc/callback: check the provider's answer, then sign the browser in."""
    client = request.app[OIDC]
    if not client.settings.enabled:
        return _page(request, 404, gettext("Single sign-on is not set up on this PicHub."))
    try:
        done = await client.finish(request.cookies.get(FLOW_COOKIE), dict(request.query),
                                   base_url(request) + CALLBACK)
        settings = client.settings
        account = await oidc.sign_in(request.app[DB], done.identity, oidc.Policy(
            settings.auto_create, settings.link_by_email, settings.admin_group))
    except ProviderError as exc:
        return _page(request, 502, _down_message(exc))
    except FlowError as exc:
        return _page(request, 400, f"{exc} " + gettext("Please start the sign-in again."))
    except oidc.NoAccount:
        return _page(request, 403, gettext(NO_ACCOUNT))
    except oidc.AccountDisabled:
        return _page(request, 403, gettext(DISABLED))
    except PichubError as exc:
        return _page(request, exc.status, error_text(exc.message))
    response = await signed_in(request, account.user_id, done.next, "sso")
    response.del_cookie(FLOW_COOKIE, path="/")
    return response


def _down_message(exc: ProviderError) -> str:
    return gettext("Single sign-on is not available right now. {error} Try again later, or "
                   "tell the administrator.").format(error=exc)


ROUTES = [
    web.get("/login/oidc", start),
    web.get(CALLBACK, callback),
]
