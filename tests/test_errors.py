"""The error envelope everywhere: unknown routes, wrong methods, unexpected exceptions."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pichub.app import create_app
from pichub.config import Settings


def assert_envelope(body: dict[str, Any], code: str) -> None:
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["message"] == body["error"]["message"]


async def test_unknown_route_404_and_wrong_method_405(aiohttp_client: Any,
                                                      settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    for path in ("/api/v1/nope", "/v1/nope", "/img/zz"):
        async with client.get(path) as resp:
            assert resp.status == 404
            assert_envelope(await resp.json(), "NOT_FOUND")
    async with client.put("/api/v1/upload") as resp:
        assert resp.status == 405
        assert_envelope(await resp.json(), "METHOD_NOT_ALLOWED")


async def test_unexpected_exception_is_500_without_trace(aiohttp_client: Any,
                                                         settings: Settings) -> None:
    app = create_app(settings)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /etc/passwd")

    app.router.add_get("/api/v1/boom", boom)
    client = await aiohttp_client(app)
    async with client.get("/api/v1/boom") as resp:
        assert resp.status == 500
        text = await resp.text()
    assert "secret" not in text and "Traceback" not in text
    async with client.get("/api/v1/boom") as resp:
        assert_envelope(await resp.json(), "INTERNAL_ERROR")


async def test_browser_gets_an_html_404_api_keeps_the_envelope(aiohttp_client: Any,
                                                               settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with client.get("/dashboard/nope", headers=html) as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "<html" in (await resp.text()).lower()
    async with client.get("/api/v1/nope", headers=html) as resp:
        assert resp.status == 404
        assert_envelope(await resp.json(), "NOT_FOUND")
    async with client.get("/dashboard/nope") as resp:
        assert_envelope(await resp.json(), "NOT_FOUND")
