"""/healthz, /metrics and the access log."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from pichub.app import create_app
from pichub.config import Settings
from pichub.keys import DB, DEPENDENCIES, TRUSTED_PROXIES, UPLOAD_TMP
from pichub.services import accounts
from pichub.web import health
from pichub.web.observe import access_logger
from tests import samples
from tests.conftest import Api, ApiFactory, make_settings
from tests.support.redis import redis_server


async def test_healthz_ok(api: Api) -> None:
    async with api.client.get("/healthz") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]
    assert body["checks"]["disk"]["ok"] and body["checks"]["disk"]["free_mb"] > 0


async def test_healthz_503_when_disk_below_reserve(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"min_free_mb": 10**9}))
    async with api.client.get("/healthz") as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["failing"] == ["disk"] and body["checks"]["disk"]["ok"] is False


async def test_healthz_503_when_storage_unwritable(api: Api) -> None:
    tmp_dir: Path = api.app[UPLOAD_TMP]
    shutil.rmtree(tmp_dir)
    tmp_dir.write_text("not a directory any more")
    async with api.client.get("/healthz") as resp:
        assert resp.status == 503
        assert (await resp.json())["failing"] == ["storage"]


async def test_metrics_count_by_route_template(api: Api) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()))
    image_id = body["data"][0]["id"]
    for _ in range(3):
        await api.call("GET", f"/api/v1/images/{image_id}")
    await api.call("GET", "/api/v1/images/doesnotexist")
    async with api.client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert ('pichub_http_requests_total{method="GET",route="/api/v1/images/{id}",status="200"} 3.0'
            in text)
    assert ('pichub_http_requests_total{method="GET",route="/api/v1/images/{id}",status="404"} 1.0'
            in text)
    assert 'pichub_http_request_duration_seconds_count{route="/api/v1/upload"} 1.0' in text
    assert "pichub_uploads_total 1.0" in text
    assert image_id not in text  # labels are templates, never raw ids


async def _token(app: Any) -> str:
    await accounts.create_user(app[DB], "logger", "password-logger")
    return await accounts.create_token(app[DB], "logger")


async def test_access_log_line(aiohttp_server: Any, aiohttp_client: Any, settings: Settings,
                               caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings)
    server = await aiohttp_server(app, access_log_class=access_logger(app[TRUSTED_PROXIES]))
    client = await aiohttp_client(server)
    with caplog.at_level(logging.INFO, logger="pichub.access"):
        async with client.get("/api/v1/square?page=1") as resp:
            await resp.read()
    [line] = [r.getMessage() for r in caplog.records if r.name == "pichub.access"]
    assert 'method=GET path="/api/v1/square?page=1" status=200' in line
    assert "client=127.0.0.1" in line and "duration_ms=" in line and "bytes=" in line
    caplog.clear()
    status, body = await Api(client, await _token(app)).upload(("a.png", samples.png_alpha()),
                                                              convertToWebP="false")
    with caplog.at_level(logging.INFO, logger="pichub.access"):
        async with client.get(f"/img/{body['data'][0]['id']}.png") as resp:
            size = len(await resp.read())
        for _ in range(50):  # the line is written once the response has been sent
            if any("/img/" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    [line] = [r.getMessage() for r in caplog.records if "/img/" in r.getMessage()]
    assert f"bytes={size} " in line  # sendfile bytes are counted


async def test_healthz_names_each_dependency_and_503_when_redis_stops(
        make_api: ApiFactory, tmp_path: Path) -> None:
    with redis_server() as url:
        api = await make_api(make_settings(tmp_path, rate_limits={"enabled": True,
                                                                   "storage_uri": url}))
        async with api.client.get("/healthz") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["status"] == "ok"
        assert body["checks"]["database"] == {"ok": True}
        assert body["checks"]["redis"] == {"ok": True}
    async with api.client.get("/healthz") as resp:  # redis-server has stopped
        assert resp.status == 503
        body = await resp.json()
    assert body["status"] == "unhealthy" and body["failing"] == ["redis"]
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["database"]["ok"]


async def test_healthz_runs_registered_checks_within_a_timeout(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.05)

    async def hangs() -> bool:
        await asyncio.sleep(10)
        return True

    async def refuses() -> bool:
        raise ConnectionRefusedError

    api.app[DEPENDENCIES].update(object_storage=hangs, other=refuses)
    async with api.client.get("/healthz") as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["failing"] == ["object_storage", "other"]
    assert body["checks"]["object_storage"] == {"ok": False, "error": "timeout"}
    assert body["checks"]["other"] == {"ok": False, "error": "ConnectionRefusedError"}
    assert "redis" not in body["checks"]  # rate limits in memory: nothing to ask
