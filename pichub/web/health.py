"""GET /healthz and GET /metrics (README: Operations): no auth, cheap, honest.

/healthz asks every dependency the app registered (`DEPENDENCIES`: the database always,
Redis when rate limits are kept there, object storage when originals are) at once, each
within CHECK_TIMEOUT_S, then probes the local disk: 200 when all answer, else 503 with
the names of those that did not in `failing` (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pichub.keys import DEPENDENCIES, METRICS, SETTINGS, UPLOAD_TMP, DependencyCheck

#: Seconds each dependency has to answer; a load balancer's own check usually waits 5.
CHECK_TIMEOUT_S = 2.0


def _probe_writable(folder: Path) -> None:
    probe = folder / f".healthz-{os.getpid()}-{time.monotonic_ns()}"
    with open(probe, "wb") as fh:
        fh.write(b"ok")
        fh.flush()
        os.fsync(fh.fileno())
    probe.unlink()


async def _dependency(check: DependencyCheck) -> dict[str, Any]:
    """One dependency's answer within CHECK_TIMEOUT_S: {"ok": True} or the reason it failed."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            answered = await check()
    except TimeoutError:
        return {"ok": False, "error": "timeout"}
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True} if answered else {"ok": False, "error": "unavailable"}


async def _checks(app: web.Application) -> dict[str, dict[str, Any]]:
    dependencies = app[DEPENDENCIES]
    answers = await asyncio.gather(*(_dependency(check) for check in dependencies.values()))
    checks: dict[str, dict[str, Any]] = dict(zip(dependencies, answers, strict=True))
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
