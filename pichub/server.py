"""Run the HTTP server until SIGTERM/SIGINT, then drain: `await run(settings)`.

aiohttp's own shutdown stops reading request bodies at once, which would cut
an upload still arriving, and keeps serving keep-alive connections while it
waits. So: the listening socket closes; connections between requests close at
once; requests in flight (uploads still arriving included) get
`server.shutdown_timeout_s` to finish, each answered with `Connection: close`;
whatever arrives after the drain began is not started; then aiohttp closes
what is left and the app its resources. A second signal cuts the drain short.
Connections themselves (timeouts, the cap) are in `pichub.web.connections`; cache hits
take the lane of `pichub.web.hits` before the app.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import os
import resource
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pichub.app import create_app
from pichub.config import Settings
from pichub.keys import ALLOWED_HOSTS, TRUSTED_PROXIES
from pichub.web.connections import GuardedServer, Handler, Lane, Limits
from pichub.web.hits import HitLane
from pichub.web.observe import access_logger

log = logging.getLogger("pichub")

FD_RESERVE = 64  # the database, the event loop, logs, worker threads' files, Redis
MAX_BACKLOG = 128  # connections accepted in one go, before the cap can refuse them
CUT_GRACE_S = 1.0  # after the drain timeout, aiohttp's own shutdown: cancel and close


class StartupError(Exception):
    """Start-up failed for a reason one line explains (exit status 1)."""


class Runner(web.AppRunner):
    """An AppRunner whose server is a `GuardedServer` (overrides `_make_server`).

    `BaseRunner.setup()` awaits `_make_server()` (AppRunner's runs the app's
    start-up and builds a plain `web.Server`); sites then listen with that
    server as their protocol factory.
    """

    def __init__(self, app: web.Application, limits: Limits, *,
                 lane: Callable[[web.Application, Handler], Lane] | None = None,
                 **handler_args: Any) -> None:
        super().__init__(app, handle_signals=False, shutdown_timeout=CUT_GRACE_S,
                         **handler_args)
        self._limits = limits
        self._lane = lane
        self._handler_args = handler_args

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the app has started: its keys are set
        lane = self._lane
        return GuardedServer(plain, self._limits,
                             lane=functools.partial(lane, self.app) if lane else None,
                             **self._handler_args)

    @property
    def guarded(self) -> GuardedServer:
        assert isinstance(self.server, GuardedServer)
        return self.server


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (good practice for servers); the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


#: glibc's `mallopt` parameter number of M_MMAP_THRESHOLD (malloc.h).
M_MMAP_THRESHOLD = -3
#: Allocations from this size up get their own mapping, returned to the system when freed.
MMAP_THRESHOLD = 1 << 20


def return_freed_memory() -> bool:
    """Make glibc give big freed buffers back to the system at once (True if it could).

    By default glibc raises its mmap threshold each time a big block is freed, up to
    32 MB, so image buffers (Pillow allocates 16 MB blocks) end up in per-thread heaps
    that keep their pages: measured with `scripts/loadtest uploads`, 4 concurrent
    20 MP uploads peaked at ~490 MB RSS that way and at ~365 MB with a fixed 1 MB
    threshold (the same as MALLOC_MMAP_THRESHOLD_=1048576).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS): their defaults stand
        return False


def backlog_for(fd_limit: int) -> int:
    return max(8, min(MAX_BACKLOG, fd_limit // 8))


def connection_cap(max_connections: int, fd_limit: int) -> int:
    """`server.max_connections`, lowered so that accept() never runs out of descriptors.

    Each connection may hold a second descriptor (a file being sent, an upload
    being received); the reserve covers the process's own files and a burst of
    connections accepted at once before the cap can refuse them.
    """
    spare = fd_limit - FD_RESERVE - backlog_for(fd_limit)
    return max(1, min(max_connections, spare // 2))


async def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then drain; raise StartupError if it cannot start."""
    server = settings.server
    return_freed_memory()
    fd_limit = raise_fd_limit()
    cap = connection_cap(server.max_connections, fd_limit)
    if cap < server.max_connections:
        log.warning("at most %d connections: the file descriptor limit is %d "
                    "(server.max_connections = %d; raise LimitNOFILE / ulimit -n)",
                    cap, fd_limit, server.max_connections)
    app = create_app(settings)
    runner = Runner(app, Limits(server.header_timeout_s, server.body_timeout_s, cap),
                    lane=HitLane, keepalive_timeout=server.keepalive_timeout_s,
                    access_log_class=access_logger(app[TRUSTED_PROXIES]))
    try:
        await runner.setup()
        site = web.TCPSite(runner, server.host, server.port, backlog=backlog_for(fd_limit))
        try:
            await site.start()
        except OSError as exc:  # asyncio's message repeats the address: keep the reason
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(f"cannot listen on {server.host}:{server.port}: {reason}") from None
        signals = _catch_signals()
        _announce(settings, app)
        await signals.get()
        await _drain(runner.guarded, site, server.shutdown_timeout_s, signals)
    finally:
        await runner.cleanup()
    log.info("stopped")


def _announce(settings: Settings, app: web.Application) -> None:
    server = settings.server
    print(f"PicHub listening on http://{server.host}:{server.port}", flush=True)
    print(f"Allowed hosts: {app[ALLOWED_HOSTS]} (add another name with server.allowed_hosts)",
          flush=True)
    if settings.webhooks.url and settings.webhooks.secret is None:
        log.warning("webhooks.url is set without webhooks.secret: deliveries to it are "
                    "not signed, so the endpoint cannot tell them from forgeries")
    limits = settings.rate_limits
    if settings.shared_database and limits.enabled and limits.in_memory:
        log.warning("rate_limits.storage_uri is memory://: each process counts its own "
                    "requests, so with several processes the limits are per process "
                    "(set it to redis://… to share them; docs/scale-out.md)")


def _catch_signals() -> asyncio.Queue[int]:
    """SIGTERM and SIGINT, queued: the first starts the drain, a second one cuts it short."""
    signals: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    return signals


async def _drain(server: GuardedServer, site: web.TCPSite, seconds: float,
                 signals: asyncio.Queue[int]) -> None:
    started = time.monotonic()
    await site.stop()
    idle = server.begin_drain()
    log.info("shutting down: stopped listening, closed %d idle connection(s); "
             "waiting up to %gs for %d request(s) in flight", idle, seconds, server.busy)
    closed = asyncio.ensure_future(server.wait_closed())
    again = asyncio.ensure_future(signals.get())
    done, pending = await asyncio.wait({closed, again}, timeout=seconds,
                                       return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if closed in done:
        log.info("drained in %.1fs", time.monotonic() - started)
    else:
        why = "second signal" if again in done else "shutdown timeout"
        log.warning("%s: %d request(s) cut", why, server.busy)
