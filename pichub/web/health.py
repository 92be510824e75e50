"""GET /healthz and GET /metrics (README: Operations): no auth, cheap, honest."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pichub.keys import DB, METRICS, SETTINGS, UPLOAD_TMP


def _probe_writable(folder: Path) -> None:
    probe = folder / f".healthz-{os.getpid()}-{time.monotonic_ns()}"
    with open(probe, "wb") as fh:
        fh.write(b"ok")
        fh.flush()
        os.fsync(fh.fileno())
    probe.unlink()


async def _checks(app: web.Application) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        async with asyncio.timeout(5):
            await app[DB].fetchval("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        await asyncio.to_thread(_probe_writable, app[UPLOAD_TMP])
        checks["storage"] = {"ok": True}
    except OSError as exc:
        checks["storage"] = {"ok": False, "error": exc.strerror or type(exc).__name__}
    reserve = app[SETTINGS].storage.min_free_mb
    free_mb = shutil.disk_usage(app[UPLOAD_TMP]).free // 2**20
    checks["disk"] = {"ok": free_mb >= reserve, "free_mb": free_mb, "reserve_mb": reserve}
    return checks


async def healthz(request: web.Request) -> web.Response:
    checks = await _checks(request.app)
    healthy = all(c["ok"] for c in checks.values())
    failing = [name for name, c in checks.items() if not c["ok"]]
    body: dict[str, Any] = {"status": "ok" if healthy else "unhealthy", "checks": checks}
    if failing:
        body["failing"] = failing
    return web.json_response(body, status=200 if healthy else 503,
                             headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS].registry
    for refresh in request.app[METRICS].refreshers:
        await refresh()
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [web.get("/healthz", healthz), web.get("/metrics", metrics)]
