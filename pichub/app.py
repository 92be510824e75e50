"""create_app(settings) -> web.Application: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from pichub import hosts
from pichub.blobs import BlobStore
from pichub.config import Settings
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.imaging.cache import DiskCache
from pichub.imaging.pipeline import Pipeline
from pichub.keys import (
    ALLOWED_HOSTS,
    BLOBS,
    DB,
    FETCHER,
    LIMITER,
    METRICS,
    PIPELINE,
    SERVICES,
    SETTINGS,
    TRUSTED_PROXIES,
    UPLOAD_TMP,
    WEBHOOKS,
)
from pichub.ratelimit import RateLimiter
from pichub.services import Services
from pichub.services.albums import Albums
from pichub.services.images import Images
from pichub.services.uploads import Uploads
from pichub.services.webhooks import Webhooks
from pichub.web import api, health, img
from pichub.web.clientip import parse_trusted
from pichub.web.compat import chevereto, lsky
from pichub.web.fetch import UrlFetcher
from pichub.web.middleware import api_middleware, front_middleware
from pichub.web.observe import Metrics, observe_middleware
from pichub.web.routes import register
from pichub.web.ui.setup import setup_ui
from pichub.webhooks.worker import WebhookWorker

log = logging.getLogger("pichub")


def data_paths(settings: Settings) -> dict[str, Path]:
    root = settings.storage.data_dir
    return {"db": root / "pichub.db", "blobs": root / "blobs", "cache": root / "cache",
            "tmp": root / "tmp"}


def _sweep_sync(tmp: Path, blobs: BlobStore, known: set[str]) -> int:
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    return len(blobs.sweep(known))


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """Open everything the app needs; what opened is closed again if a later step fails."""
    async with contextlib.AsyncExitStack() as stack:
        await _open_storage(app, stack)
        yield


async def _open_storage(app: web.Application, stack: contextlib.AsyncExitStack) -> None:
    settings = app[SETTINGS]
    paths = data_paths(settings)
    db = await Database.open(paths["db"])
    stack.push_async_callback(db.close)
    blobs = BlobStore(paths["blobs"])
    removed = await asyncio.to_thread(_sweep_sync, paths["tmp"], blobs,
                                      await images_db.all_ids(db))
    if removed:
        log.warning("startup sweep removed %d orphan or temporary blob file(s)", removed)
    images = settings.images
    cache = DiskCache(paths["cache"], images.cache_max_mb * 2**20)
    pipeline = Pipeline(cache, images.workers, images.queue_size, images.default_quality,
                        max_dimension=images.max_dimension,
                        max_decode_bytes=settings.storage.max_decode_mb * 2**20,
                        upload_memory_bytes=images.upload_memory_mb * 2**20,
                        on_transform=app[METRICS].transform.observe)
    stack.push_async_callback(pipeline.aclose)
    await pipeline.start()

    async def convert(estimate: int, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Upload work in the image pool: within the upload memory budget, after variants."""
        return await pipeline.convert(estimate, functools.partial(fn, *args, **kwargs))

    async def cache_size() -> None:
        app[METRICS].cache_bytes.set(cache.total_bytes)

    limiter = RateLimiter.from_settings(settings.rate_limits)
    stack.push_async_callback(limiter.close)
    app[LIMITER] = limiter
    app[DB] = db
    app[BLOBS] = blobs
    app[UPLOAD_TMP] = paths["tmp"]
    fetcher = UrlFetcher(settings.storage, paths["tmp"])
    fetcher.start()
    stack.push_async_callback(fetcher.close)
    app[FETCHER] = fetcher
    app[PIPELINE] = pipeline
    app[METRICS].refreshers.append(cache_size)
    worker = WebhookWorker(db, settings.webhooks)
    app[WEBHOOKS] = worker

    async def queue_depth() -> None:
        app[METRICS].webhook_queue.set(await worker.queue_depth())

    metrics = app[METRICS]
    metrics.refreshers.append(queue_depth)
    metrics.count("pichub_variant_cache_hits", "Variant cache hits",
                  lambda: pipeline.cache_hits)
    metrics.count("pichub_variant_cache_misses", "Variant cache misses",
                  lambda: pipeline.cache_misses)
    metrics.count("pichub_transforms_rejected", "Variant requests refused as busy (503)",
                  lambda: pipeline.transforms_rejected)
    metrics.count("pichub_webhook_deliveries", "Webhook deliveries that succeeded",
                  lambda: worker.delivered_total)
    metrics.count("pichub_webhook_failures", "Webhook delivery attempts that failed",
                  lambda: worker.failures_total)
    key = images.signing_key.get_secret_value() if images.signing_key else None
    app[SERVICES] = Services(
        images=Images(db, blobs, purge_variants=pipeline.purge, on_change=worker.wake,
                      signing_key=key),
        albums=Albums(db, on_change=worker.wake),
        webhooks=Webhooks(db, settings.webhooks, wake=worker.wake),
        uploads=Uploads(db, blobs, settings.storage, images.default_quality, convert,
                        on_change=worker.wake, signing_key=key),
    )
    worker.start()
    stack.push_async_callback(worker.stop)


async def _allowed_hosts(app: web.Application) -> None:
    """`server.allowed_hosts`, resolved once (the machine's names may need DNS: a thread)."""
    server = app[SETTINGS].server
    app[ALLOWED_HOSTS] = await asyncio.to_thread(
        hosts.derive, server.allowed_hosts, server.host, server.public_url, hosts.machine_names)


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    app = web.Application(middlewares=[
        observe_middleware(metrics), front_middleware, api_middleware,
    ])
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[TRUSTED_PROXIES] = parse_trusted(settings.server.trusted_proxies)
    app.on_startup.append(_allowed_hosts)
    app.cleanup_ctx.append(_storage)
    register(app, api.ROUTES)
    app.add_routes(health.ROUTES)
    app.add_routes(img.ROUTES)
    app.add_routes([*lsky.ROUTES, *chevereto.ROUTES])  # other hosts' APIs (README)
    setup_ui(app)  # pages, /docs, static files and the OpenAPI document
    app.add_routes(img.ROOT_ROUTES)  # last: `/{id}.{ext}` must not shadow UI paths
    return app
