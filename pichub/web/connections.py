"""Every connection, below every route: read timeouts, a connection cap, and the drain.

aiohttp's `RequestHandler` (one per connection) has only a keep-alive timeout
(3630 s by default): a client that never finishes its request head, or stops
sending a body it announced, holds a connection, a descriptor and (uploads) a
temp file for good. `GuardedServer` is the protocol factory the listening
socket uses; it hands every connection a `GuardedHandler`, which adds:

- the head timeout (`server.header_timeout_s`): a request head must be complete
  within it, counted from the connection's start or from the first byte after
  an idle keep-alive period, else the connection closes;
- the body timeout (`server.body_timeout_s`): a request whose body has stopped
  arriving for that long, while PicHub was ready to read it (flow control not
  holding it back), is cut: its reads raise `RequestTimeout` (408, connection
  closed), so the upload code removes its temp file;
- the cap (`max_connections`): past it, a new connection gets a minimal 503
  with `Retry-After` and `Connection: close` at once (`Refusal`), so accept()
  never runs the process out of descriptors and `/healthz` answers again as
  soon as slow clients time out;
- the drain (`GuardedServer.begin_drain`): connections between requests close
  at once; requests in flight finish, every answer says `Connection: close`,
  and nothing that arrives after the drain began is started (503);
- an optional lane (`Lane`, pichub.web.hits): tried before the app for every
  request, it answers what it can (cache hits) without the router and the
  middleware; whatever it declines goes to the app.

Per request, the guards cost a few attribute writes: the head timer is one
lazy timer per connection (it re-arms itself when it fires early, like
aiohttp's keep-alive timer), not one timer created and cancelled per request.

aiohttp internals relied on (3.14, read in web_protocol.py, web_server.py and
streams.py; tests/test_connections_aiohttp.py fails if an upgrade changes them):
`web.Server.__call__` is the protocol factory, and `RequestHandler.__init__`
copies `manager.request_handler` and `manager.request_factory`; `start()` calls
`request_handler(request)` for each request it begins and `finish_response()`
once per request; `data_received()` sees every byte; `force_close()` closes at
once; a request body (`StreamReader`) calls the protocol's `pause_reading()` /
`resume_reading()` for flow control and raises from its reads whatever
`set_exception()` gave it; `BaseRequest.protocol` is the connection's handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from pichub.errors import RequestTimeout, ServiceUnavailable

log = logging.getLogger("pichub")

RETRY_AFTER_S = 5
REFUSAL_LINGER_S = 1.0  # read what a refused client sent, so the 503 is not lost to a reset
MAX_LINGERING_REFUSALS = 32  # beyond that (a flood), refused sockets close at once


@dataclass(frozen=True)
class Limits:
    """`server.header_timeout_s`, `server.body_timeout_s` and the effective connection cap."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


def _refusal_bytes() -> bytes:
    error = ServiceUnavailable("Too many connections, try again shortly")
    body = json.dumps(error.envelope()).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


REFUSAL = _refusal_bytes()

Handler = Callable[[BaseRequest], Awaitable[web.StreamResponse]]
#: Given a request whose head is complete: its answer, or None to let the app answer.
Lane = Callable[[BaseRequest], Awaitable[web.StreamResponse] | None]


class GuardedServer(web.Server):
    """aiohttp's low-level server with the cap and the drain; made by `server.Runner`.

    Built from the `web.Server` that `AppRunner` makes for the app, taking over
    its request factory and wrapping its request handler.
    """

    def __init__(self, plain: web.Server, limits: Limits, *,
                 lane: Callable[[Handler], Lane] | None = None, **handler_args: Any) -> None:
        super().__init__(self._begin, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation, **handler_args)
        self.limits = limits
        self.draining = False
        self.open: set[GuardedHandler] = set()
        self._app_handler: Handler = plain.request_handler
        # Made with the app's handler, to hand a request back that it cannot finish.
        self.lane = lane(self._app_handler) if lane is not None else None
        self._handler_args = handler_args
        self._refusals: set[Refusal] = set()
        self._all_closed = asyncio.Event()

    def __call__(self) -> GuardedHandler | Refusal:  # type: ignore[override]
        """A protocol for a connection just accepted (asyncio only needs a Protocol)."""
        if len(self.open) >= self.limits.max_connections:
            return Refusal(self._refusals)
        handler = GuardedHandler(self, loop=asyncio.get_running_loop(), **self._handler_args)
        self.open.add(handler)
        self._all_closed.clear()
        return handler

    def closed(self, handler: GuardedHandler) -> None:
        self.open.discard(handler)
        if not self.open:
            self._all_closed.set()

    @property
    def busy(self) -> int:
        """Connections with a request in flight."""
        return sum(1 for handler in self.open if handler.in_request)

    def begin_drain(self) -> int:
        """Stop starting requests; close idle connections now. Returns how many were idle."""
        self.draining = True
        idle = [handler for handler in self.open if not handler.in_request]
        for handler in idle:
            handler.force_close()
        for refusal in list(self._refusals):
            refusal.close()
        return len(idle)

    async def wait_closed(self) -> None:
        """Until every connection has closed."""
        if self.open:
            await self._all_closed.wait()

    def _begin(self, request: BaseRequest) -> Awaitable[web.StreamResponse]:
        """aiohttp's request handler: the awaitable of the answer, from the lane or the app.

        Not a coroutine itself: aiohttp awaits what this returns, so a request
        costs no extra coroutine layer here.
        """
        if self.draining:
            # A request parsed just before its idle connection was closed for the drain
            # still reaches here once: it must not start.
            return _answered(_shutting_down())
        handler = request.protocol
        assert isinstance(handler, GuardedHandler)
        handler.begin(request)
        if self.lane is not None and (answer := self.lane(request)) is not None:
            return answer
        return self._app_handler(request)


async def _answered(response: web.StreamResponse) -> web.StreamResponse:
    return response


def _shutting_down() -> web.Response:
    error = ServiceUnavailable("The server is shutting down, try again shortly")
    response = web.json_response(error.envelope(), status=error.status,
                                 headers={"Retry-After": str(RETRY_AFTER_S)})
    response.force_close()
    return response


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol, plus the head and body timeouts and the drain."""

    __slots__ = ("_server", "_clock", "_head_timer", "_head_deadline", "_body", "_body_timer",
                 "_last_read", "_flow_paused", "_cut", "in_request")

    def __init__(self, server: GuardedServer, *, loop: asyncio.AbstractEventLoop,
                 **kwargs: Any) -> None:
        super().__init__(server, loop=loop, **kwargs)
        self._server = server
        self._clock = loop
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_deadline: float | None = None  # a request head is due by then
        self._body: StreamReader | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_read = loop.time()
        self._flow_paused = False
        self._cut = False
        self.in_request = False

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._server.draining:  # accepted just before the listening socket closed
            self.force_close()
            return
        self._expect_head(self._clock.time())

    def connection_lost(self, exc: BaseException | None) -> None:
        self._head_deadline = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._stop_watching_body()
        self._server.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_read = now = self._clock.time()
        if data and not self.in_request and self._head_deadline is None:
            self._expect_head(now)  # the first byte of the next request on this connection
        super().data_received(data)

    # Called by the request body's StreamReader: a full buffer stops reading the socket,
    # and a body that does not arrive then is PicHub's doing, not the client's.
    def pause_reading(self) -> None:
        self._flow_paused = True
        super().pause_reading()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._flow_paused:
            self._flow_paused = False
            self._last_read = self._clock.time()
        super().resume_reading(resume_parser)

    # --- one request -----------------------------------------------------------------------

    def begin(self, request: BaseRequest) -> None:
        """The request's handler starts: its head is complete; watch its body, if any."""
        self.in_request = True
        self._head_deadline = None  # the head is complete (its timer, if any, stays idle)
        if not request.content.is_eof():
            self._body = request.content
            self._last_read = self._clock.time()
            self._arm_body_timer(self._last_read + self._server.limits.body_timeout_s)

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        closing = self._server.draining or self._cut
        if closing and isinstance(resp, web.StreamResponse):
            resp.force_close()  # `Connection: close`, unless the handler sent its headers
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self.in_request = False
            self._stop_watching_body()
            if closing:
                self.force_close()  # no lingering on an unread body

    # --- timers ----------------------------------------------------------------------------

    def _expect_head(self, now: float) -> None:
        """A request head is due within the head timeout from `now`.

        Arms the connection's timer only if none is pending: one that fires
        before the deadline re-arms itself for it (`_head_timeout`), so a
        keep-alive connection creates a timer at most once per timeout period
        rather than once per request.
        """
        self._head_deadline = deadline = now + self._server.limits.header_timeout_s
        if self._head_timer is None:
            self._head_timer = self._clock.call_at(deadline, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None or self.in_request:
            return  # no head pending: the timer stops until the next request's first byte
        if self._clock.time() < deadline:
            self._head_timer = self._clock.call_at(deadline, self._head_timeout)
            return
        log.debug("closing a connection: no complete request head within %gs",
                  self._server.limits.header_timeout_s)
        self.force_close()

    def _arm_body_timer(self, when: float) -> None:
        self._body_timer = self._clock.call_at(when, self._check_body)

    def _stop_watching_body(self) -> None:
        self._body = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _check_body(self) -> None:
        self._body_timer = None
        body, timeout = self._body, self._server.limits.body_timeout_s
        if body is None or body.is_eof():
            return
        now = self._clock.time()
        if self._flow_paused:
            self._arm_body_timer(now + timeout)
        elif now < self._last_read + timeout:
            self._arm_body_timer(self._last_read + timeout)
        else:
            self._cut = True
            body.set_exception(RequestTimeout(
                f"No request body bytes arrived for {timeout:g} seconds"))


class Refusal(asyncio.Protocol):
    """A connection over the cap: a minimal 503, then closed.

    The answer goes out at once, followed by a FIN; what the client sends is read
    and dropped for up to `REFUSAL_LINGER_S`, since closing a socket with unread
    input sends a reset that can destroy the answer before the client reads it.
    """

    def __init__(self, lingering: set[Refusal]) -> None:
        self._lingering = lingering
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(REFUSAL)
        if len(self._lingering) >= MAX_LINGERING_REFUSALS or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._lingering.add(self)
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_S, self.close)

    def data_received(self, data: bytes) -> None:
        """Dropped: the answer is already on its way."""

    def eof_received(self) -> bool:
        return False  # the client is done too: let the transport close

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lingering.discard(self)
        if self._timer is not None:
            self._timer.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
