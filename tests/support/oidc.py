"""A real OpenID provider on 127.0.0.1 for the single sign-on tests, and a driver that walks
the authorization code flow with plain HTTP (no browser).

The provider is the certified `oidc-provider` package (tests/clients/package.json) run by
tests/clients/oidc-server.mjs. Like the other npm tools (`npm_clients`), it is skipped with
the reason outside CI when node or the package is missing, and must run under `CI=true`.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.npm_clients import CLIENTS, NODE, NODE_MODULES

PUBLIC_URL = "http://pichub.test"  # PicHub's public_url: the provider sends browsers here
CALLBACK = PUBLIC_URL + "/login/oidc/callback"
CLIENT_ID = "pichub"
CLIENT_SECRET = "pichub-test-secret"


def _skip_reason() -> str | None:
    if os.environ.get("CI") == "true":
        return None
    if NODE is None:
        return "node is missing (apt-get install nodejs npm); these tests always run in CI"
    if not (NODE_MODULES / "oidc-provider").is_dir():
        return ("oidc-provider is not installed (npm ci --prefix tests/clients); "
                "these tests always run in CI")
    return None


SKIP_REASON = _skip_reason()
requires_provider = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


@asynccontextmanager
async def provider(accounts: dict[str, dict[str, Any]]) -> AsyncIterator[str]:
    """Run the provider with `accounts` (by `sub`); yields its issuer URL."""
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE, str(CLIENTS / "oidc-server.mjs"), cwd=CLIENTS,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "OIDC_ACCOUNTS": json.dumps(accounts), "OIDC_REDIRECT_URI": CALLBACK,
             "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the OpenID provider did not start"
        yield str(json.loads(line)["issuer"])
    finally:
        proc.terminate()
        await proc.wait()


def oidc_section(issuer: str, **overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "issuer": issuer, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "scopes": "openid profile email groups",
            "button_label": "Sign in with TestID", **overrides}


@dataclass
class Browser:
    """PicHub's test client plus a cookie jar for the provider: one browser, two sites."""

    pichub: TestClient[Any, Any]
    at_provider: aiohttp.ClientSession

    def new_browser(self) -> None:
        """Forget every cookie, at PicHub and at the provider (another browser, signed out)."""
        self.pichub.session.cookie_jar.clear()
        self.at_provider.cookie_jar.clear()

    async def start(self) -> str:
        """GET /login/oidc; the provider's authorization URL it redirects to."""
        async with self.pichub.get("/login/oidc", allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            return resp.headers["Location"]

    async def at_the_provider(self, url: str, login: str) -> str:
        """Follow the provider's redirects (signing in `login`) until it sends the browser
        back to PicHub; that callback URL."""
        url = _with(url, login_hint=login)
        for _ in range(10):
            async with self.at_provider.get(url, allow_redirects=False) as resp:
                assert resp.status in (302, 303), (resp.status, await resp.text())
                location = urllib.parse.urljoin(url, resp.headers["Location"])
            if location.startswith(PUBLIC_URL):
                return location
            url = location
        raise AssertionError("the provider never sent the browser back")

    async def callback(self, url: str) -> tuple[int, str, str]:
        """GET the callback on PicHub: (status, Location or "", body)."""
        path = url.removeprefix(PUBLIC_URL)
        async with self.pichub.get(path, allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", ""), await resp.text()

    async def sign_in(self, login: str) -> tuple[int, str, str]:
        return await self.callback(await self.at_the_provider(await self.start(), login))


def _with(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(params)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def replace_param(url: str, **params: str) -> str:
    """`url` with some query parameters set to other values (tampering)."""
    return _with(url, **params)
