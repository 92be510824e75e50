"""Static assets of the web UI: package data served under content-hashed names.

Files are read once through `importlib.resources` (so they work from a wheel,
a shiv zipapp or a plain checkout) and served from memory as
`/static/<name>.<hash>.<ext>` with a one-year immutable cache: a changed file
gets a new name, so browsers never see a stale one. Text assets are gzipped
on first request (off the event loop) when the client accepts it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import mimetypes
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from pichub.errors import NotFound
from pichub.web.files import CACHE_FOREVER

PREFIX = "/static/"
_COMPRESSIBLE = ("text/", "application/javascript", "image/svg+xml", "application/json")
_TYPES = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".txt": "text/plain", "": "text/plain"}


@dataclass
class Asset:
    """One static file, with its hashed URL name and a lazily built gzip copy."""

    body: bytes
    content_type: str
    etag: str
    gzipped: bytes | None = field(default=None, repr=False)

    @property
    def compressible(self) -> bool:
        return self.content_type.startswith(_COMPRESSIBLE) and len(self.body) > 1024


def hashed_name(name: str, body: bytes) -> str:
    """`js/app.js` → `js/app.<10 hex of sha256>.js` (a name without a suffix gets it appended)."""
    digest = hashlib.sha256(body).hexdigest()[:10]
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    hashed = f"{stem}.{digest}.{ext}" if dot and stem else f"{base}.{digest}"
    return f"{folder}/{hashed}" if folder else hashed


def _content_type(name: str) -> str:
    ext = "." + name.rpartition(".")[2] if "." in name else ""
    known = _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{known}; charset=utf-8" if known.startswith("text/") or ext == ".js" else known


def _walk(folder: Traversable, prefix: str = "") -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for entry in folder.iterdir():
        if entry.name.startswith((".", "__")):
            continue
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found += _walk(entry, name + "/")
        else:
            found.append((name, entry.read_bytes()))
    return found


class Assets:
    """Every file under `pichub/static`, by logical name and by hashed URL name."""

    def __init__(self, files: list[tuple[str, bytes]]) -> None:
        self._urls: dict[str, str] = {}
        self._served: dict[str, Asset] = {}
        for name, body in files:
            hashed = hashed_name(name, body)
            self._urls[name] = PREFIX + hashed
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self._served[hashed] = Asset(body, _content_type(name), etag)

    @classmethod
    def from_package(cls, package: str = "pichub", folder: str = "static") -> Assets:
        return cls(_walk(resources.files(package) / folder))

    def url(self, name: str) -> str:
        """The URL of a logical name (`css/app.css`); KeyError for a file that does not exist."""
        return self._urls[name]

    def get(self, hashed: str) -> Asset | None:
        return self._served.get(hashed)


def _accepts_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


async def _body_for(request: web.Request, asset: Asset) -> tuple[bytes, bool]:
    if not (asset.compressible and _accepts_gzip(request)):
        return asset.body, False
    if asset.gzipped is None:
        asset.gzipped = await asyncio.to_thread(gzip.compress, asset.body, 6, mtime=0)
    return asset.gzipped, True


def make_handler(assets: Assets) -> web.RouteDef:
    """`GET /static/{path}`: only hashed names exist; anything else is a 404."""

    async def static(request: web.Request) -> web.StreamResponse:
        asset = assets.get(request.match_info["path"])
        if asset is None:
            raise NotFound("file")
        headers = {"Cache-Control": CACHE_FOREVER, "ETag": asset.etag,
                   "Vary": "Accept-Encoding"}
        if asset.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body, compressed = await _body_for(request, asset)
        if compressed:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = asset.content_type
        return web.Response(body=body, headers=headers)

    return web.get(PREFIX + "{path:.+}", static)
