"""Watching the running service: Prometheus metrics and the access log.

The metrics live in a registry per application (no process-global state), so
tests can build many apps side by side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from pichub.web.clientip import Network, request_client_ip

access_log = logging.getLogger("pichub.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    """Every metric PicHub exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pichub_http_requests", "HTTP requests by route template",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("pichub_http_request_duration_seconds", "Request latency",
                                 ["route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.transform = Histogram("pichub_transform_duration_seconds",
                                   "Time to compute an image variant", registry=r,
                                   buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.cache_bytes = Gauge("pichub_variant_cache_bytes", "Size of the variant cache",
                                 registry=r)
        self.upload_bytes = Counter("pichub_upload_bytes", "Bytes of images stored", registry=r)
        self.uploads = Counter("pichub_uploads", "Images stored", registry=r)
        self.webhook_queue = Gauge("pichub_webhook_queue_depth", "Webhook deliveries pending",
                                   registry=r)
        self.in_flight = Gauge("pichub_http_requests_in_flight", "Requests being handled",
                               registry=r)
        # Async callbacks run before each scrape to refresh gauges (cache size, queue depth).
        self.refreshers: list[Callable[[], Awaitable[None]]] = []
        self._counted: dict[tuple[str, str, int], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request by route template and status, and its latency.

        The labelled children are kept: `labels()` validates and takes a lock
        on every call, which showed in the profile of cache hits.
        """
        counted = self._counted.get((method, route, status))
        if counted is None:
            counted = self.requests.labels(method, route, str(status))
            self._counted[(method, route, status)] = counted
        counted.inc()
        timed = self._timed.get(route)
        if timed is None:
            timed = self._timed[route] = self.latency.labels(route)
        timed.observe(seconds)

    def count(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Export a counter kept elsewhere (the pipeline's, the webhook worker's): `read()`
        is its value at each scrape, so an event is counted in one place only."""
        self.registry.register(_CounterReader(name, documentation, read))


class _CounterReader(Collector):
    """A Prometheus collector for a counter another object keeps."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.read())


def route_of(request: web.Request) -> str:
    """The route template (`/api/v1/images/{id}`), never the raw path: bounded label values."""
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "unmatched"
    return resource.canonical


def observe_middleware(metrics: Metrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        metrics.in_flight.inc()
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.observe_request(request.method, route_of(request), status,
                                    time.perf_counter() - started)
            metrics.in_flight.dec()

    return observe


class MalformedRequestFilter(logging.Filter):
    """Drops aiohttp's traceback for a request it could not parse (bad framing, over-long
    lines, too many headers): the client's fault, answered 400 and already in the access
    log, so a flood of them must not become a flood of multi-line error logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


def quiet_malformed_requests() -> None:
    """Install MalformedRequestFilter on aiohttp's server logger (once per process)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())


def access_logger(trusted: Sequence[Network]) -> type[AbstractAccessLogger]:
    """An access logger class that knows which proxies to believe about the client IP."""

    class AccessLogger(AbstractAccessLogger):
        """One line per request: method, path, status, bytes, duration, client IP."""

        def log(self, request: web.BaseRequest, response: web.StreamResponse,
                time: float) -> None:
            client = request_client_ip(request, trusted)  # type: ignore[arg-type]
            # sendfile bypasses the writer's count: the declared length is what went out.
            declared = response.content_length
            sent = response.body_length
            if declared is not None and request.method != "HEAD":
                sent = declared
            path = request.path_qs.replace('"', "%22")
            log_access(f'method={request.method} path="{path}" status={response.status} '
                       f"bytes={sent} duration_ms={time * 1000:.1f} client={client}")

        @property
        def enabled(self) -> bool:
            return access_log.isEnabledFor(logging.INFO)

    return AccessLogger


def log_access(line: str) -> None:
    """`access_log.info(line)`, without the search for the caller's file and line that
    `Logger.info` makes for every record (no access line shows them; with one line per
    request, it was a tenth of the cost of logging a cache hit)."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.handle(access_log.makeRecord(access_log.name, logging.INFO,
                                                "(unknown file)", 0, line, (), None))


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class LogFormatter(logging.Formatter):
    """`pichub serve`'s log format, the timestamp formatted once per second, not per line.

    With the access log on, every request is a line; `strftime` of the same
    second for each of them showed in the profile of cache hits.
    """

    _second: int | None = None
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:  # under the handler's lock: no race
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"  # as logging.Formatter's default


def configure_logging(level: str) -> None:
    """The process log, for `pichub serve`: stderr at `level` (`server.log_level`)."""
    # Fields LOG_FORMAT never shows: not computing them makes every record cheaper (the
    # logging HOWTO's "Optimization" section).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    quiet_malformed_requests()
