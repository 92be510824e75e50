"""The server-rendered web UI (README: Web UI): `setup_ui(app)` wires it all.

Routes (all outside the API prefixes):

| page | what |
|---|---|
| `GET /` | public square (`?page=`) |
| `GET /i/{id}` | an image's page: the full image and its links |
| `GET /a/{id}[/album.json, /album.zip]` | an album's page, its JSON twin, its zip |
| `POST /a/{id}/unlock` | an album's password form |
| `GET/POST /login`, `GET/POST /logout` | sign-in form (rate limited), sign-out |
| `GET/POST /login/totp` | the second step of two-factor sign-in (code or recovery code) |
| `GET /login/oidc`, `GET /login/oidc/callback` | single sign-on (OpenID Connect) |
| `GET /account`, `POST /account/…` | two-factor, password, own sessions, delete the account |
| `GET/POST /signup` | sign-up, as `auth.registration` allows (`?invite=` an invite link) |
| `GET /dashboard` | my images (`?album_id=`, `?page=`), the uploader |
| `POST /dashboard/upload` | XHR upload for the dashboard (session + `X-CSRF-Token`) |
| `POST /dashboard/images/{id}[/delete]` | edit (album, visibility, description) or delete |
| `/dashboard/albums…`, `/dashboard/tokens…`, `/dashboard/webhooks…` | the other nouns |
| `/dashboard/integrations` | ready-made configurations for upload tools (tokens on request) |
| `GET/POST /delete/{token}` | a delete link: confirmation page; its POST deletes (no session) |
| `/admin`, `/admin/users…`, `/admin/images…`, `/admin/tokens…`, `/admin/invites…` | admins only |
| `GET /lang/{code}` | the footer's language switcher: a `lang` cookie, then back (`?next=`) |
| `GET /docs` | Swagger UI over the OpenAPI document, with Try it out |
| `GET /static/{name}.{hash}.{ext}` | assets, cached for a year |

Sessions authenticate the UI only; the JSON API accepts bearer tokens only.
"""

from __future__ import annotations

from aiohttp import web

from pichub.keys import ASSETS, JINJA, SETTINGS
from pichub.web.ui import (
    account,
    admin,
    admin_invites,
    admin_users,
    albumpage,
    albums,
    auth,
    dashboard,
    deletelinks,
    i18n,
    integrations,
    oidc,
    public,
    signup,
    tokens,
    webhooks,
)
from pichub.web.ui.assets import Assets, make_handler
from pichub.web.ui.templates import make_env

__all__ = ["setup_ui"]


def setup_ui(app: web.Application) -> None:
    """Register every UI route and the static assets on `app`."""
    assets = Assets.from_package()
    app[ASSETS] = assets
    app[JINJA] = make_env(assets, app[SETTINGS])
    app.add_routes([
        *public.ROUTES,
        *albumpage.ROUTES,
        *auth.ROUTES,
        *oidc.ROUTES,
        *signup.ROUTES,
        *account.ROUTES,
        *dashboard.ROUTES,
        *albums.ROUTES,
        *tokens.ROUTES,
        *webhooks.ROUTES,
        *integrations.ROUTES,
        *deletelinks.ROUTES,
        *admin.ROUTES,
        *admin_users.ROUTES,
        *admin_invites.ROUTES,
        *i18n.ROUTES,
        make_handler(assets),
    ])
