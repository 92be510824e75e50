"""Error answers in other APIs' shapes: plain text, Lsky Pro's and Chevereto's JSON.

Every error still leaves through `middleware.front_middleware` (one place that
drains bodies and adds the rate-limit headers); `error_shape` tells it when
the request speaks another dialect than PicHub's JSON envelope:

- `POST /api/v1/upload?format=txt` (or `Accept: text/plain` without JSON): the
  message as text, for shell pipes;
- `/compat/lsky/…`: `{"status": false, "message", "data": {}}`, with the status
  Lsky Pro uses (200 for a refused upload, since its clients read `status`;
  401, 403, 429 and the rest as they are); PicHub's code is in `X-PicHub-Error`;
- `/api/1/upload`: Chevereto's `{"status_code", "error": {…}, "status_txt"}`,
  or the message as text with `format=txt`.

A handler that learns the shape only from the body (Chevereto's `format` form
field) sets `request[ERROR_SHAPE]` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from pichub.errors import PichubError
from pichub.web.routes import API_PREFIXES

Shape = Callable[[PichubError], web.Response]
ERROR_SHAPE: web.RequestKey[Shape] = web.RequestKey("error_shape")
LSKY_PREFIX: Final = "/compat/lsky/"
CHEVERETO_PATHS: Final = ("/api/1/upload", "/api/1/upload/")
NATIVE_UPLOADS: Final = frozenset(prefix + "/upload" for prefix in API_PREFIXES)
#: PicHub statuses that Lsky Pro reports as a failed upload (its `UploadException`): 200.
LSKY_UPLOAD_REFUSALS: Final = frozenset({404, 413, 415, 422, 507})


def _finish(response: web.Response, exc: PichubError, *, code_header: bool = True) -> web.Response:
    """The error's own headers (WWW-Authenticate, Retry-After…) and connection fate."""
    for name, value in exc.headers.items():
        if name.lower() != "connection":
            response.headers[name] = value
    if code_header:
        response.headers["X-PicHub-Error"] = exc.code
    if exc.headers.get("Connection") == "close":
        response.force_close()
    return response


def text_error(exc: PichubError) -> web.Response:
    """The message as one line of text, with the error's status."""
    return _finish(web.Response(text=exc.message + "\n", status=exc.status), exc)


def lsky_body(status: bool, message: str, data: Any = None) -> dict[str, Any]:
    """Lsky Pro's answer: an empty `data` is `{}` (PHP's empty object), never null."""
    return {"status": status, "message": message, "data": data or {}}


def lsky_error(exc: PichubError) -> web.Response:
    return _finish(web.json_response(lsky_body(False, exc.message), status=exc.status), exc)


def lsky_upload_error(exc: PichubError) -> web.Response:
    """A refused upload is a 200 with `status: false` in Lsky Pro (its `UploadException`)."""
    status = 200 if exc.status in LSKY_UPLOAD_REFUSALS else exc.status
    return _finish(web.json_response(lsky_body(False, exc.message), status=status), exc)


def status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def chevereto_error(exc: PichubError) -> web.Response:
    body = {"status_code": exc.status,
            "error": {"message": exc.message, "code": exc.status, "context": exc.code},
            "status_txt": status_text(exc.status)}
    return _finish(web.json_response(body, status=exc.status), exc)


def wants_text(request: web.Request) -> bool:
    """`?format=txt`, or an `Accept` that names text/plain and not JSON."""
    if request.query.get("format", "").lower() == "txt":
        return True
    accept = request.headers.get("Accept", "").lower()
    return "text/plain" in accept and "json" not in accept


def error_shape(request: web.Request) -> Shape | None:
    """How an error to `request` is answered when not with PicHub's envelope; None else."""
    chosen: Shape | None = request.get(ERROR_SHAPE)
    if chosen is not None:
        return chosen
    path = request.path
    if path.startswith(LSKY_PREFIX):
        return lsky_upload_error if path.endswith("/upload") else lsky_error
    if path in CHEVERETO_PATHS:
        return text_error if request.query.get("format") == "txt" else chevereto_error
    if path in NATIVE_UPLOADS and request.method == "POST" and wants_text(request):
        return text_error
    return None
