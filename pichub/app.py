"""create_app(settings) -> web.Application: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from pichub import hosts, timeutil
from pichub.config import ConfigError, Settings
from pichub.db import secrets
from pichub.db.database import Database
from pichub.imaging.cache import DiskCache
from pichub.imaging.pipeline import Pipeline
from pichub.keys import (
    ALLOWED_HOSTS,
    BLOBS,
    CLOCK,
    DB,
    DEPENDENCIES,
    EXPIRY,
    FETCHER,
    LIMITER,
    METRICS,
    OIDC,
    PIPELINE,
    SERVICES,
    SETTINGS,
    STORAGE,
    TRUSTED_PROXIES,
    TWO_FACTOR,
    UPLOAD_TMP,
    WEBHOOKS,
)
from pichub.pacing import Pacing, Progress
from pichub.ratelimit import RateLimiter
from pichub.sealing import KEY_FILE, ServerKey, load_or_create
from pichub.services import Services
from pichub.services.admin import Admin, CacheCounters
from pichub.services.albumpages import AlbumPages
from pichub.services.albums import Albums
from pichub.services.changefeed import LOOKBACK, ChangeFeed
from pichub.services.expiry import ExpirySweep
from pichub.services.images import Images
from pichub.services.sharing import LinkSigner
from pichub.services.sweep import SETTLE_S, BucketSweep, OrphanSweep
from pichub.services.twofactor import TwoFactor
from pichub.services.uploads import Uploads
from pichub.services.webhooks import Webhooks
from pichub.storage import Storage, storage_for
from pichub.storage.s3 import S3Storage
from pichub.web import api, health, img
from pichub.web.clientip import parse_trusted
from pichub.web.compat import chevereto, lsky
from pichub.web.fetch import UrlFetcher
from pichub.web.middleware import api_middleware, front_middleware
from pichub.web.observe import Metrics, observe_middleware
from pichub.web.oidc import OidcClient
from pichub.web.routes import register
from pichub.web.ui.i18n import locale_middleware
from pichub.web.ui.setup import setup_ui
from pichub.webhooks.worker import WebhookWorker

log = logging.getLogger("pichub")


async def open_database(settings: Settings) -> Database:
    """The metadata database: `[database] url`, or the SQLite file in the data directory."""
    return await Database.open(settings.database.url or data_paths(settings)["db"],
                               pool_size=settings.database.pool_size)


def data_paths(settings: Settings) -> dict[str, Path]:
    root = settings.storage.data_dir
    return {"db": root / "pichub.db", "blobs": root / "blobs", "cache": root / "cache",
            "tmp": root / "tmp"}


#: Processes that may share one data directory (each has a variant cache of its own).
MAX_CACHES = 64
#: How old a blob without a row must be before the orphan sweep of a process that shares
#: the blob store removes it: another process may be committing its row (docs/scale-out.md).
SHARED_SETTLE_S = 600.0
#: A file in `tmp/` this old is no upload in progress, whichever process wrote it.
STALE_TMP_S = 3600.0


def _claim_tmp(tmp: Path) -> tuple[int, bool]:
    """`tmp/` holds only uploads being received: none survive a restart. Processes that
    share the data directory (docs/scale-out.md) each hold a shared lock on it while they
    run; one that starts alone empties it, one that starts beside others removes only
    leftovers older than STALE_TMP_S (the others may be receiving uploads). Returns the
    locked descriptor, to be closed on the way out, and whether the process was alone."""
    tmp.mkdir(parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone, stale = True, float("inf")
    except BlockingIOError:
        alone, stale = False, time.time() - STALE_TMP_S
    for entry in os.scandir(tmp):
        with contextlib.suppress(FileNotFoundError):
            if entry.stat(follow_symlinks=False).st_mtime >= stale:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd, alone


def _claim_cache(first: Path) -> tuple[Path, int | None]:
    """This process's variant cache directory, and the descriptor of its lock (held while
    the process runs). The first process on a data directory uses `cache/`; each one that
    starts beside it takes the lowest free `cache-N/`, so processes never evict or index
    each other's files (they learn of deletes through the change feed) and a restarted
    process finds a warm cache again."""
    for slot in range(MAX_CACHES):
        folder = first if slot == 0 else first.with_name(f"{first.name}-{slot}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:  # not a directory: the index loader reports it, the server serves on
            return folder, None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return folder, fd
    raise ConfigError(f"config: storage.data_dir: {MAX_CACHES} processes use it already")


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """Open everything the app needs; what opened is closed again if a later step fails."""
    async with contextlib.AsyncExitStack() as stack:
        await _open_storage(app, stack)
        yield


@contextlib.asynccontextmanager
async def _in_background(job: Coroutine[Any, Any, None], what: str
                         ) -> AsyncIterator[None]:
    """Run `job` as a task while the app runs; cancel it and wait for it on the way out.
    A failure is logged when it happens."""
    task = asyncio.create_task(job, name=what)

    def report(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and (exc := done.exception()) is not None:
            log.error("%s failed", what, exc_info=exc)

    task.add_done_callback(report)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])


async def _open_storage(app: web.Application, stack: contextlib.AsyncExitStack) -> None:
    """Only constant work before the port opens: the orphan sweep and the variant cache's
    index run in the background afterwards (pichub.pacing)."""
    settings = app[SETTINGS]
    paths = data_paths(settings)
    db = await open_database(settings)
    stack.push_async_callback(db.close)
    files = storage_for(settings.storage, paths["blobs"])
    await files.open()
    stack.push_async_callback(files.close)
    blobs = files.blobs
    tmp_lock, alone = await asyncio.to_thread(_claim_tmp, paths["tmp"])
    stack.callback(os.close, tmp_lock)
    cache_dir, cache_lock = await asyncio.to_thread(_claim_cache, paths["cache"])
    if cache_lock is not None:
        stack.callback(os.close, cache_lock)
    images, storage = settings.images, settings.storage
    cache = DiskCache(cache_dir, images.cache_max_mb * 2**20,
                      max_files=images.cache_max_files)
    pacing = Pacing(storage.loader_files, storage.loader_sleep_ms / 1000)
    pipeline = Pipeline(cache, images.workers, images.queue_size, images.default_quality,
                        max_dimension=images.max_dimension,
                        max_decode_bytes=storage.max_decode_mb * 2**20,
                        upload_memory_bytes=images.upload_memory_mb * 2**20,
                        on_transform=app[METRICS].transform.observe, pacing=pacing)
    stack.push_async_callback(pipeline.aclose)
    loading = Progress("variant cache index", log)
    sweeping = Progress("blob sweep", log)
    sweep = OrphanSweep(db, blobs, pipeline.background, pacing, sweeping,
                        settle_s=SETTLE_S if alone and not settings.shared_database
                        else SHARED_SETTLE_S)
    _export_progress(app[METRICS], loading)
    _export_progress(app[METRICS], sweeping)

    async def convert(estimate: int, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Upload work in the image pool: within the upload memory budget, after variants."""
        return await pipeline.convert(estimate, functools.partial(fn, *args, **kwargs))

    async def cache_size() -> None:
        app[METRICS].cache_bytes.set(cache.total_bytes)
        app[METRICS].cache_files.set(len(cache))

    limiter = RateLimiter.from_settings(settings.rate_limits)
    stack.push_async_callback(limiter.close)
    app[LIMITER] = limiter
    app[DB] = db
    server_key = await _server_key(settings)
    app[TWO_FACTOR] = TwoFactor(db, server_key)
    app[OIDC] = OidcClient(settings.oidc, server_key)
    stack.push_async_callback(app[OIDC].close)
    app[BLOBS] = blobs
    app[STORAGE] = files
    _register_checks(app, db, limiter)
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
    metrics.count("pichub_images_expired", "Images the expiry sweep deleted",
                  lambda: app[EXPIRY].expired)
    metrics.count("pichub_webhook_failures", "Webhook delivery attempts that failed",
                  lambda: worker.failures_total)
    key = images.signing_key.get_secret_value() if images.signing_key else None
    clock = app[CLOCK]
    links = LinkSigner(await secrets.get(db, "link_key"))
    image_rules = Images(db, files, purge_variants=pipeline.purge, on_change=worker.wake,
                         signing_key=key, links=links, clock=clock, forget=pipeline.forget,
                         max_dimension=images.max_dimension)
    album_rules = Albums(db, on_change=worker.wake, forget=pipeline.forget, clock=clock)
    expiry = ExpirySweep(db, image_rules, _background_base_url(settings), pacing, clock,
                         albums=album_rules)
    image_rules.on_expiry = expiry.wake
    album_rules.on_expiry = expiry.wake
    app[EXPIRY] = expiry

    def cache_counters() -> CacheCounters:
        return CacheCounters(cache.total_bytes, len(cache), pipeline.cache_hits,
                             pipeline.cache_misses)

    app[SERVICES] = Services(
        images=image_rules,
        albums=album_rules,
        webhooks=Webhooks(db, settings.webhooks, wake=worker.wake),
        uploads=Uploads(db, files, settings.storage, images.default_quality, convert,
                        on_change=worker.wake, signing_key=key, clock=clock,
                        on_expiry=expiry.wake),
        admin=Admin(db, image_rules, cache_counters, settings.storage.data_dir),
        album_pages=AlbumPages(db, blobs, links, signing_key=key, clock=clock),
    )
    worker.start()
    stack.push_async_callback(worker.stop)
    # Last, so they are cancelled first: they use the database and the image pool.
    await stack.enter_async_context(_in_background(pipeline.load_cache(loading), loading.what))
    await stack.enter_async_context(_in_background(sweep.run(), sweeping.what))
    await stack.enter_async_context(_in_background(expiry.run(), "expiry sweep"))
    feed = ChangeFeed(db, pipeline.purge, pipeline.forget_all,
                      lookback=LOOKBACK if settings.shared_database else 0)
    await feed.start()
    metrics.count("pichub_change_feed_events", "Deletes and album changes read from the "
                  "events table (docs/scale-out.md)", lambda: feed.applied)
    await stack.enter_async_context(_in_background(feed.run(), "change feed"))
    await _bucket_jobs(app, db, files, stack)


def _register_checks(app: web.Application, db: Database, limiter: RateLimiter) -> None:
    """What /healthz asks (web/health.py): the database, Redis when limits live there, and
    the bucket with the S3 backend."""
    async def database() -> bool:
        return bool(await db.fetchval("SELECT 1") == 1)

    app[DEPENDENCIES]["database"] = database
    if limiter.enabled and not app[SETTINGS].rate_limits.in_memory:
        app[DEPENDENCIES]["redis"] = limiter.ping
    files = app[STORAGE]
    if files.remote:
        async def object_storage() -> bool:
            return bool((await files.check())["ok"])

        app[DEPENDENCIES]["object_storage"] = object_storage


async def _bucket_jobs(app: web.Application, db: Database, files: Storage,
                       stack: contextlib.AsyncExitStack) -> None:
    """With the S3 backend: count the local copies into the cache, and sweep the bucket."""
    if not isinstance(files, S3Storage):
        return
    sweeping = Progress("bucket sweep", log)
    _export_progress(app[METRICS], sweeping)
    await stack.enter_async_context(_in_background(files.load(), "local copies index"))
    await stack.enter_async_context(_in_background(BucketSweep(db, files, sweeping).run(),
                                                   sweeping.what))


def _background_base_url(settings: Settings) -> str:
    """The base of the URLs in events that no request causes (an expiry):
    `server.public_url`, else the address PicHub listens on."""
    server = settings.server
    if server.public_url:
        return server.public_url.rstrip("/")
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"http://{host}:{server.port}"


async def _server_key(settings: Settings) -> ServerKey:
    """`auth.secret_key`, else the key generated once into the data directory."""
    configured = settings.auth.secret_key
    if configured is not None:
        return ServerKey.from_text(configured.get_secret_value())
    return await asyncio.to_thread(load_or_create, settings.storage.data_dir / KEY_FILE)


def _export_progress(metrics: Metrics, job: Progress) -> None:
    """A background job's counts in /metrics."""
    name = job.what.replace(" ", "_")
    metrics.count(f"pichub_{name}_files_seen", f"Files the {job.what} has looked at",
                  lambda: job.seen)
    metrics.count(f"pichub_{name}_files_removed", f"Files the {job.what} has removed",
                  lambda: job.removed)


async def _allowed_hosts(app: web.Application) -> None:
    """`server.allowed_hosts`, resolved once (the machine's names may need DNS: a thread)."""
    server = app[SETTINGS].server
    app[ALLOWED_HOSTS] = await asyncio.to_thread(
        hosts.derive, server.allowed_hosts, server.host, server.public_url, hosts.machine_names)


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    app = web.Application(middlewares=[
        observe_middleware(metrics), locale_middleware, front_middleware, api_middleware,
    ])
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[DEPENDENCIES] = {}  # filled at start-up, as each dependency opens
    app[CLOCK] = timeutil.now  # tests put a controllable clock here before start-up
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
