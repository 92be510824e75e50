"""The cache-hit lane: `GET|HEAD /img/{id}[.{ext}]` answered from the variant cache first.

Most of what an image host serves is variants already in the cache. Through
the app, each one also paid for the router, four middleware layers (metrics,
host check and error envelope, the API's caller lookup, aiohttp's own) and
the general view's checks for the cases it is not. `pichub serve` tries this
lane first for every request (`GuardedServer`, web/connections.py): it takes
only a request whose answer is a plain 200 with the cached variant, and gives
it exactly what the app would (the same headers, the security headers, the
request counted by route template with its latency, the cache hit counted,
the same access-log line, which aiohttp writes for either path).

Everything else it declines (returns None), and the app answers it as
before: a miss, an original, `/{id}.{ext}` at the root, a conditional (304)
or Range request, a bad parameter, a missing or wrong signature, a foreign
`Host`, an image whose facts are not remembered (`Pipeline.source`), an
image that is not shared with everyone forever (`Source.shared`: a private
one, whose caller must be checked; an expiring one; one whose views are
counted), a request with a body. So every error is still answered in one place, by the
app's middleware. A hit whose file vanished (the image was just deleted) is
handed to the app too, which answers 404.

The lane does not run `on_response_prepare` signals: PicHub has none.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import hdrs, web
from aiohttp.web_request import BaseRequest
from yarl import URL

from pichub.errors import NotFound, PichubError
from pichub.imaging.formats import canonical
from pichub.imaging.pipeline import Variant
from pichub.imaging.spec import TransformSpec
from pichub.keys import METRICS, PIPELINE, SETTINGS
from pichub.web.connections import Handler
from pichub.web.img import EXT, ID, requested_spec, signed, variant_response
from pichub.web.middleware import SECURITY_HEADERS, foreign_host

#: The two /img routes (`img.ROUTES`): raw path (no query) → id and extension.
_PATH = re.compile(rf"/img/(?P<id>{ID})(?:\.(?P<ext>{EXT}))?")
#: Their templates, as /metrics labels them (`observe.route_of`).
ROUTE = "/img/{id}"
ROUTE_WITH_EXT = "/img/{id}.{ext}"
#: URLs whose plan (`HitLane._make_plan`) is remembered.
PLANS = 4096
_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})
#: Request headers that make the answer something else than a plain 200 (304, 206, 412,
#: 416) or that need the app (Expect: 100-continue).
_DECLINED_IF_PRESENT = (hdrs.IF_NONE_MATCH, hdrs.IF_MODIFIED_SINCE, hdrs.RANGE, hdrs.IF_RANGE,
                        hdrs.IF_MATCH, hdrs.IF_UNMODIFIED_SINCE, hdrs.EXPECT)


@dataclass(frozen=True)
class _Plan:
    """The part of a hit that follows from its URL: the variant, `Vary`, the route label."""

    spec: TransformSpec
    vary: bool
    route: str


class HitLane:
    """A `connections.Lane` for cache hits; `fallback` is the app's request handler."""

    def __init__(self, app: web.Application, fallback: Handler) -> None:
        self._app = app
        self._fallback = fallback
        self._pipeline = app[PIPELINE]
        self._metrics = app[METRICS]
        self._images = app[SETTINGS].images
        self.answered = 0  # requests this lane answered itself (tests look)
        self._plan = functools.lru_cache(maxsize=PLANS)(self._make_plan)

    def __call__(self, request: BaseRequest) -> Awaitable[web.StreamResponse] | None:
        started = time.perf_counter()
        found = self._find(request)
        if found is None:
            return None
        variant, modified, vary, route = found
        return self._answer(request, variant, modified, vary, route, started)

    def _find(self, request: BaseRequest) -> tuple[Variant, datetime, bool, str] | None:
        """The cached variant a plain hit would be answered with, else None."""
        match = self._plain(request)
        if match is None:
            return None
        image_id = match["id"]
        source = self._pipeline.source(image_id)
        if source is None or not source.shared:  # the app checks who asks, counts views
            return None
        plan = self._plan(request.rel_url, match["ext"], source.format,
                          request.headers.get(hdrs.ACCEPT, ""))
        if plan is None:
            return None
        variant = self._pipeline.cached(image_id, plan.spec)
        if variant is None:
            return None
        return variant, source.modified, plan.vary, plan.route

    def _plain(self, request: BaseRequest) -> re.Match[str] | None:
        """The id and extension in the path, if the request can have a plain 200 for an
        answer: GET or HEAD of /img/…, no body, no header asking for 304, 206, 412 or
        100-continue, a Host PicHub answers to."""
        path, _, _ = request.raw_path.partition("?")
        if not path.startswith("/img/") or request.method not in _METHODS:
            return None
        match = _PATH.fullmatch(path)
        headers = request.headers
        if (match is None or request.body_exists
                or any(name in headers for name in _DECLINED_IF_PRESENT)
                or foreign_host(self._app, request) is not None):
            return None
        return match

    def _make_plan(self, url: URL, ext: str | None, stored: str, accept: str) -> _Plan | None:
        """What a hit on `url` would send, or None when it is no plain hit (an original,
        a bad parameter, a bad signature). Remembered per URL, stored format and Accept,
        as the view's checks are the same for every hit on a hot URL."""
        if ext is not None and canonical(ext) is None:
            return None
        try:
            spec, vary = requested_spec(url.query, ext, accept, stored,
                                        self._images.max_dimension)
        except PichubError:
            return None
        if spec.is_identity(stored) or not signed(self._images, url.path, url.query):
            return None
        return _Plan(spec, vary, ROUTE_WITH_EXT if ext else ROUTE)

    async def _answer(self, request: BaseRequest, variant: Variant, modified: datetime,
                      vary: bool, route: str, started: float) -> web.StreamResponse:
        metrics = self._metrics
        metrics.in_flight.inc()
        try:
            response: web.StreamResponse | None = await variant_response(variant, modified,
                                                                          vary)
        except NotFound:
            response = None
        finally:
            metrics.in_flight.dec()
        if response is None:  # purged meanwhile: the app answers (404, with the envelope)
            return await self._fallback(request)
        response.headers.update(SECURITY_HEADERS)
        metrics.observe_request(request.method, route, 200, time.perf_counter() - started)
        self.answered += 1
        return response
