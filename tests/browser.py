"""Helpers for the web UI tests: a live PicHub on 127.0.0.1, a real headless Chromium, and a
form-speaking HTTP client for the tests that need no browser.

The browser is Debian's `chromium` (/usr/bin/chromium) driven by Playwright's
Python package; Playwright's own browser downloads are never used. Browser
tests are skipped only on a machine without Chromium *and* outside CI: with
`CI=true` they must run, so a missing browser fails loudly.

Every page collects console errors, uncaught exceptions and failed requests;
`Tab.assert_clean()` fails a test on any of them (a CSP violation shows up as
a console error, a broken asset as a failed request).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import make_settings

from pichub.app import create_app
from pichub.keys import DB
from pichub.services import accounts

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PASSWORD = "correct horse battery"


def _skip_reason() -> str | None:
    """Skip only without Chromium and outside CI; in CI a missing browser must fail loudly."""
    if os.environ.get("CI") == "true" or CHROMIUM.exists():
        return None
    return f"{CHROMIUM} is missing (apt-get install chromium); these tests always run in CI"


SKIP_REASON = _skip_reason()
requires_browser = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


@dataclass
class Site:
    """A running PicHub (with the web UI) on 127.0.0.1."""

    base: str
    app: web.Application

    async def new_user(self, name: str, password: str = PASSWORD) -> str:
        """Create a user; returns a write token for API checks."""
        await accounts.create_user(self.app[DB], name, password)
        return await accounts.create_token(self.app[DB], name, name="test")


async def start_site(aiohttp_server: Any, tmp_path: Path, **sections: dict[str, Any]) -> Site:
    app = create_app(make_settings(tmp_path, **sections))
    server = await aiohttp_server(app, host="127.0.0.1")
    return Site(str(server.make_url("")).rstrip("/"), app)


@dataclass
class Tab:
    """A browser page plus everything that went wrong on it."""

    page: Page
    site: Site
    problems: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.site.base + path

    async def goto(self, path: str) -> None:
        await self.page.goto(self.url(path))

    async def login(self, username: str, password: str = PASSWORD) -> None:
        await self.goto("/login")
        await self.page.fill("input[name=username]", username)
        await self.page.fill("input[name=password]", password)
        await self.page.click("#login-form button[type=submit]")
        await self.page.wait_for_url(self.url("/dashboard"))

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        await self.page.evaluate("() => window.scrollTo(0, 0)")  # the sticky header on top
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        assert self.problems == [], "browser reported problems"


def _watch(tab: Tab) -> None:
    page = tab.page
    page.on("console", lambda msg: tab.problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
    # ERR_ABORTED is a request cancelled by navigating away (lazy images): not a fault.
    page.on("requestfailed", lambda req: tab.problems.append(
        f"request failed: {req.url} {req.failure}") if "ERR_ABORTED" not in str(req.failure)
        else None)
    page.on("response", lambda resp: tab.problems.append(f"HTTP {resp.status}: {resp.url}")
            if resp.status >= 400 and resp.request.resource_type != "document" else None)
    # Dialogs (delete confirmations) are accepted; tests that care install their own handler.
    page.on("dialog", lambda dialog: dialog.accept())


@asynccontextmanager
async def launch() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, through Playwright (never Playwright's own browsers)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_tab(browser: Browser, site: Site, *, width: int = 1280,
                   height: int = 900) -> Tab:
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        base_url=site.base)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    tab = Tab(await context.new_page(), site)
    _watch(tab)
    return tab


def expect(target: Any) -> Any:
    """Playwright's auto-waiting `expect`, imported lazily (the module must import without it)."""
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None, "page has no csrf_token field"
    return found.group(1)


class FormClient:
    """An aiohttp test client that signs in and posts forms like a browser (cookies kept)."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    @property
    def app(self) -> web.Application:
        return self.client.server.app

    async def text(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.client.get(path, allow_redirects=False, **kwargs) as resp:
            return resp.status, await resp.text()

    async def token(self, path: str = "/dashboard") -> str:
        status, html = await self.text(path)
        assert status == 200, (path, status)
        return csrf_from(html)

    async def login(self, username: str, password: str = PASSWORD,
                    **kwargs: Any) -> Any:
        token = csrf_from((await self.text("/login"))[1])
        data = {"username": username, "password": password, "csrf_token": token}
        async with self.client.post("/login", data=data, allow_redirects=False,
                                    **kwargs) as resp:
            await resp.read()
            return resp

    async def post(self, path: str, data: dict[str, str] | None = None, *,
                   csrf: bool = True, **kwargs: Any) -> tuple[int, str, Any]:
        """POST a form (with the page's CSRF token unless `csrf=False`); no redirects followed."""
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = await self.token()
        async with self.client.post(path, data=form, allow_redirects=False, **kwargs) as resp:
            return resp.status, await resp.text(), resp


async def form_client(aiohttp_client: Any, tmp_path: Path, user: str = "alice",
                      **sections: dict[str, Any]) -> FormClient:
    """A PicHub with the UI, one user (`user`, password PASSWORD) and a client for it."""
    app = create_app(make_settings(tmp_path, **sections))
    client = FormClient(await aiohttp_client(app))
    await accounts.create_user(app[DB], user, PASSWORD)
    return client
