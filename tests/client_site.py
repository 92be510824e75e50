"""A PicHub on 127.0.0.1 for the client tests: the real app in-process (so the tests can read
its database and blobs), one user with a write token, and helpers to ask it things."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from conftest import make_settings

from pichub.app import create_app
from pichub.keys import DB, SERVICES
from pichub.services import accounts

PASSWORD = "correct horse battery"


@dataclass
class ClientSite:
    base: str
    app: web.Application
    token: str
    user_id: int
    data_dir: Path

    async def get(self, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with aiohttp.ClientSession() as session, session.get(
                self.base + path, headers=headers, **kwargs) as resp:
            return resp.status, (await resp.read()).decode("utf-8", "replace")

    async def integration(self, client: str) -> str:
        """The client's configuration with a fresh token, as a script would fetch it."""
        status, text = await self.get(f"/api/v1/integrations/{client}?create_token=1")
        assert status == 200, text
        return str(text)

    async def image(self, image_id: str) -> Any:
        """The stored row of an image (any owner), or None."""
        return await self.app[SERVICES].images.find(image_id)

    async def events(self, type_: str) -> list[str]:
        rows = await self.app[DB].fetchall("SELECT payload FROM events WHERE type = ?",
                                           (type_,))
        return [row["payload"] for row in rows]


async def start(aiohttp_server: Any, tmp_path: Path, **sections: dict[str, Any]) -> ClientSite:
    """PicHub with `sections` of settings; idle keep-alive connections close after 1 s, so
    that node clients sending `Connection: keep-alive` exit promptly."""
    settings = make_settings(tmp_path, **sections)
    app = create_app(settings)
    server = await aiohttp_server(app, host="127.0.0.1", keepalive_timeout=1)
    await accounts.create_user(app[DB], "bob", PASSWORD)
    token = await accounts.create_token(app[DB], "bob", name="tests")
    user = await app[DB].fetchone("SELECT id FROM users WHERE username = 'bob'")
    return ClientSite(str(server.make_url("")).rstrip("/"), app, token, int(user["id"]),
                      settings.storage.data_dir)
