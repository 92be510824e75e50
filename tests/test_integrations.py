"""Integrations: the API route and the dashboard page hand out each client's configuration;
`create_token` makes a write token named after the client. Plus the plain-text upload answer
and signed variant links."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import samples
from browser import FormClient, form_client
from conftest import Api, form, make_settings

from pichub.keys import DB
from pichub.services import accounts
from pichub.services.integrations import CLIENTS, TOKEN_PLACEHOLDER


async def _get(api: Api, path: str, token: str | None = None) -> tuple[int, str, Any]:
    async with api.client.get(path, headers=api.headers(token)) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_every_client_with_and_without_a_token(api: Api) -> None:
    before = len(await accounts.list_tokens(api.app[DB], "alice"))
    for client in CLIENTS:
        status, text, headers = await _get(api, f"/api/v1/integrations/{client}")
        assert status == 200 and TOKEN_PLACEHOLDER in text, client
        assert "attachment; filename=" in headers["Content-Disposition"]
        status, text, headers = await _get(api,
                                           f"/api/v1/integrations/{client}?create_token=1")
        assert status == 200 and TOKEN_PLACEHOLDER not in text
        assert headers["Cache-Control"] == "no-store"
        if headers["Content-Type"].startswith("application/json"):
            json.loads(text)
        else:
            assert text.startswith("#!/bin/sh\n")
    tokens = await accounts.list_tokens(api.app[DB], "alice")
    made = [dict(t) for t in tokens][before:]
    assert [(t["name"], t["scope"]) for t in made] == [(c, "write") for c in CLIENTS]


async def test_base_url_honours_public_url(make_api: Any, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, server={"public_url": "https://img.example"}))
    _, text, _ = await _get(api, "/api/v1/integrations/sharex")
    assert json.loads(text)["RequestURL"] == "https://img.example/api/v1/upload"
    _, text, _ = await _get(api, "/api/v1/integrations/picgo-lankong")
    assert json.loads(text)["picBed"]["lankong"]["server"] == "https://img.example/compat/lsky"


async def test_unknown_client_and_read_tokens(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/integrations/imgur")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    reader = await accounts.create_token(api.app[DB], "alice", scope="read")
    status, _, _ = await _get(api, "/api/v1/integrations/curl", reader)
    assert status == 200
    status, body = await api.call("GET", "/api/v1/integrations/curl?create_token=1",
                                  token=reader)
    assert status == 403


async def test_dashboard_page_creates_a_token(aiohttp_client: Any, tmp_path: Path) -> None:
    client: FormClient = await form_client(aiohttp_client, tmp_path)
    await client.login("alice")
    status, html = await client.text("/dashboard/integrations")
    assert status == 200 and html.count(TOKEN_PLACEHOLDER) >= len(CLIENTS)
    assert 'id="integration-sharex"' in html and "/compat/lsky" in html
    token = await client.token("/dashboard/integrations")
    status, html, resp = await client.post("/dashboard/integrations",
                                           {"client": "flameshot", "csrf_token": token},
                                           csrf=False)
    assert status == 200 and resp.headers["Cache-Control"] == "no-store"
    [made] = await accounts.list_tokens(client.app[DB], "alice")
    assert made["name"] == "flameshot" and made["scope"] == "write"
    assert "A new token is in this file" in html


async def test_plain_text_upload(api: Api) -> None:
    data = form(("a.jpg", samples.jpeg()), ("b.png", samples.png_alpha()))
    async with api.client.post("/api/v1/upload?format=txt", data=data,
                               headers=api.headers()) as resp:
        assert resp.status == 201 and resp.content_type == "text/plain"
        lines = (await resp.text()).splitlines()
    assert len(lines) == 2 and all(line.endswith(".webp") for line in lines)
    headers = {**api.headers(), "Accept": "text/plain"}
    async with api.client.post("/api/v1/upload", data=form(("x.svg", samples.SVG)),
                               headers=headers) as resp:
        assert resp.status == 415 and await resp.text() == "Unsupported file format\n"
    async with api.client.post("/api/v1/upload?format=txt", data=form(("a.jpg", b"x")),
                               headers=api.headers("ph_wrong")) as resp:
        assert resp.status == 401 and await resp.text() == "Invalid or expired API token\n"


async def test_signed_thumbnail_links_answer(make_api: Any, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, images={"signing_key": "secret-key-0123"}))
    status, body = await api.upload(("a.jpg", samples.jpeg()))
    thumbnail = body["data"][0]["links"]["thumbnail"]
    assert "&s=" in thumbnail
    async with api.client.get("/" + thumbnail.split("/", 3)[3]) as resp:
        assert resp.status == 200
    status, listed = await api.call("GET", "/api/v1/images")
    assert listed["data"][0]["links"]["thumbnail"] == thumbnail
