"""`GET /integrations/{client}`: a client's configuration file, for scripts (the dashboard's
Integrations page shows the same)."""

from __future__ import annotations

from aiohttp import web

from pichub.keys import DB
from pichub.services import integrations
from pichub.web.common import actor, base_url
from pichub.web.routes import ApiRoute

_TRUE = frozenset({"1", "true", "yes"})


async def get_integration(request: web.Request) -> web.Response:
    """The file's content as the client reads it; `?create_token=1` (write scope) fills in
    a fresh write token named after the client, else a placeholder."""
    client = request.match_info["client"]
    create = request.query.get("create_token", "").lower() in _TRUE
    who = actor(request, "write" if create else "read")
    token = None
    integrations.render(client, "")  # 404 for an unknown client before making a token
    if create:
        token = await integrations.create_token(request.app[DB], who.username, client)
    found = integrations.render(client, base_url(request), token)
    headers = {"Content-Disposition": f'attachment; filename="{found.filename}"'}
    if token is not None:
        headers["Cache-Control"] = "no-store"
    return web.Response(text=found.content, content_type=found.media_type, charset="utf-8",
                        headers=headers)


_FILE = {"schema": {"type": "string"}}
ROUTES = [
    ApiRoute(
        "GET", "/integrations/{client}", get_integration, "getIntegration", "Integrations",
        "Configuration for an upload tool",
        "The file the client reads, for this server's absolute base URL: a ShareX `.sxcu` "
        "(`sharex`), the JSON of PicGo's `~/.picgo/config.json` for picgo-plugin-web-uploader "
        "or picgo-plugin-lankong (which talks to the Lsky Pro compatible API at "
        "`/compat/lsky`), a uPic host export (`upic`), or a shell script (`flameshot`, "
        "`curl`). With `create_token=1` (for a token with write scope) a new `write` token named "
        "after the client is made and written into the file (answered with `Cache-Control: "
        "no-store`); otherwise the file holds the placeholder `YOUR_PICHUB_TOKEN`.",
        errors=(404,),
        content={"application/json": _FILE, "text/x-shellscript": _FILE},
        parameters=(
            {"name": "client", "in": "path", "required": True,
             "schema": {"enum": list(integrations.CLIENTS)}, "example": "sharex"},
            {"name": "create_token", "in": "query", "schema": {"type": "boolean",
                                                                "default": False},
             "description": "Make a fresh write token for the client and fill it in."},
        )),
]
