"""Ready-to-use configurations for the upload tools people already have.

Each client gets the file it reads (a ShareX `.sxcu`, the JSON of PicGo's
`~/.picgo/config.json`, a uPic host export, a shell script for Flameshot and
curl), filled in with the server's absolute base URL and a token: a fresh
`write` token named after the client when asked for (`create_token`), else a
placeholder to replace. The uploaders point at the native API, except
`picgo-lankong`, whose plugin speaks only Lsky Pro's API (`/compat/lsky`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pichub.db.database import Database
from pichub.errors import NotFound
from pichub.services import accounts

TOKEN_PLACEHOLDER: Final = "YOUR_PICHUB_TOKEN"
LSKY_BASE: Final = "/compat/lsky"


@dataclass(frozen=True)
class Integration:
    """One client's configuration: the file's text, its name and type, and what to do."""

    client: str
    title: str
    filename: str
    media_type: str
    content: str
    steps: str


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _sharex(base: str, token: str) -> str:
    return _json({
        "Version": "14.0.0", "Name": f"PicHub ({_host(base)})",
        "DestinationType": "ImageUploader", "RequestMethod": "POST",
        "RequestURL": f"{base}/api/v1/upload", "Headers": {"Authorization": f"Bearer {token}"},
        "Body": "MultipartFormData", "FileFormName": "file",
        "URL": "{json:data[0].url}", "ThumbnailURL": "{json:data[0].links.thumbnail}",
        "DeletionURL": "{json:data[0].delete_url}", "ErrorMessage": "{json:message}"})


def _picgo_web_uploader(base: str, token: str) -> str:
    settings = {"url": f"{base}/api/v1/upload", "paramName": "file", "jsonPath": "data.0.url",
                "customHeader": json.dumps({"Authorization": f"Bearer {token}"}),
                "customBody": ""}
    return _json({"picBed": {"current": "web-uploader", "uploader": "web-uploader",
                             "web-uploader": settings},
                  "picgoPlugins": {"picgo-plugin-web-uploader": True}})


def _picgo_lankong(base: str, token: str) -> str:
    settings = {"lskyProVersion": "V2", "server": base + LSKY_BASE, "token": f"Bearer {token}",
                "strategyId": "", "albumId": "", "permission": 1, "ignoreCertErr": False,
                "syncDelete": True}
    return _json({"picBed": {"current": "lankong", "uploader": "lankong", "lankong": settings},
                  "picgoPlugins": {"picgo-plugin-lankong": True}})


def _upic(base: str, token: str) -> str:
    host = {"url": f"{base}/api/v1/upload", "method": "POST", "field": "file", "bodys": "[]",
            "headers": json.dumps([{"key": "Authorization", "value": f"Bearer {token}"}]),
            "resultPath": json.dumps(["data", 0, "url"]), "domain": "", "saveKeyPath": "",
            "suffix": ""}
    return _json([{"name": f"PicHub ({_host(base)})", "type": -1, "data": json.dumps(host)}])


def _curl_call(base: str, token: str, source: str) -> str:
    return (f'curl --silent --show-error --fail-with-body -H "Authorization: Bearer {token}" '
            f'-F "file=@{source}" "{base}/api/v1/upload?format=txt"')


def _flameshot(base: str, token: str) -> str:
    upload = _curl_call(base, token, "-;filename=screenshot.png")
    return f"""#!/bin/sh
# Flameshot → PicHub: pick an area, upload it, print its URL (and copy it when wl-copy or
# xclip is installed). Save as ~/bin/pichub-shot, chmod +x, bind it to a key (e.g. Print).
set -eu
url=$(flameshot gui --raw | {upload}) || {{ echo "PicHub: $url" >&2; exit 1; }}
echo "$url"
if command -v wl-copy >/dev/null 2>&1; then printf %s "$url" | wl-copy || true
elif command -v xclip >/dev/null 2>&1; then printf %s "$url" | xclip -selection clipboard || true
fi
"""


def _curl(base: str, token: str) -> str:
    return f"""#!/bin/sh
# Upload images to PicHub from a shell; prints each image's URL. Usage: pichub-upload FILE...
set -eu
for file in "$@"; do
  {_curl_call(base, token, "$file")}
done
"""


def _host(base: str) -> str:
    return base.split("://", 1)[-1]


_Render = Callable[[str, str], str]


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction only")
    """Marks the set-up steps for the web UI's catalogue (babel.cfg); the page translates them."""
    return message


CLIENTS: Final[dict[str, tuple[str, str, str, _Render, str]]] = {
    "sharex": ("ShareX (14 or later)", "PicHub.sxcu", "application/json", _sharex,
               N_("Double-click the .sxcu file (or Destinations → Custom uploader settings → "
               "Import → From file), then pick it as the image uploader. History → Delete "
               "opens the image's delete link.")),
    "picgo-web-uploader": ("PicGo with picgo-plugin-web-uploader", "picgo-web-uploader.json",
                           "application/json", _picgo_web_uploader,
                           N_("Install the plugin (picgo install web-uploader), then merge "
                           "this JSON into ~/.picgo/config.json (PicGo-Core) or set the same "
                           "fields in the plugin's settings (PicGo app).")),
    "picgo-lankong": ("PicGo with picgo-plugin-lankong (Lsky Pro V2)", "picgo-lankong.json",
                      "application/json", _picgo_lankong,
                      N_("Install the plugin (picgo install lankong), then merge this JSON into "
                      "~/.picgo/config.json; in the PicGo app choose Lsky Pro V2, server "
                      "and token as below. Deleting in PicGo's album deletes on PicHub.")),
    "flameshot": ("Flameshot (Linux)", "pichub-shot.sh", "text/x-shellscript", _flameshot,
                  N_("Save the script, make it executable and bind it to a key; it needs curl.")),
    "upic": ("uPic (macOS)", "pichub-upic.json", "application/json", _upic,
             N_("Preferences → Hosts → Import hosts, choose this file (a custom host).")),
    "curl": ("curl / shell", "pichub-upload.sh", "text/x-shellscript", _curl,
             N_("Save the script and run: pichub-upload photo.jpg; it prints each URL.")),
}


def render(client: str, base_url: str, token: str | None = None) -> Integration:
    """The configuration of `client` for this server; 404 for an unknown client."""
    found = CLIENTS.get(client)
    if found is None:
        raise NotFound("client", f"Known clients: {', '.join(CLIENTS)}")
    title, filename, media_type, make, steps = found
    content = make(base_url, token or TOKEN_PLACEHOLDER)
    return Integration(client, title, filename, media_type, content, steps)


async def create_token(db: Database, username: str, client: str) -> str:
    """A fresh `write` token named after `client` (404 for an unknown client)."""
    if client not in CLIENTS:
        raise NotFound("client", f"Known clients: {', '.join(CLIENTS)}")
    return await accounts.create_token(db, username, name=client, scope="write")
