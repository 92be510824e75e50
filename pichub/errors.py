"""The one exception tree of PicHub.

Views, services and the imaging code raise these; only the middleware turns
them into the JSON envelope of docs/rules.md. No aiohttp import here, so plain
functions (and the thread pool) can raise them too.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Any


class PichubError(Exception):
    """An error with an HTTP status, a stable code and a client-safe message."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    default_message: str = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        details: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        """The error body; the top-level `message` is what the seed's clients read."""
        return {
            "success": False,
            "message": self.message,
            "error": {"code": self.code, "message": self.message, "details": self.details},
        }


class BadRequest(PichubError):
    status, code, default_message = 400, "BAD_REQUEST", "Bad request"


class Unauthorized(PichubError):
    status, code, default_message = 401, "UNAUTHORIZED", "Invalid or expired API token"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        super().__init__(
            message,
            details or "Please check your API token and ensure it has not expired",
            headers={"WWW-Authenticate": 'Bearer realm="pichub"'},
        )


class Forbidden(PichubError):
    status, code, default_message = 403, "FORBIDDEN", "Insufficient permissions"


class NotFound(PichubError):
    status, code, default_message = 404, "NOT_FOUND", "Resource not found"

    def __init__(self, what: str = "Resource", details: Any = None) -> None:
        super().__init__(f"{what[:1].upper()}{what[1:]} not found", details)


class Gone(PichubError):
    """An image that expired (its time, or its last allowed view): it existed, and will not
    again."""

    status, code, default_message = 410, "GONE", "Resource has expired"

    def __init__(self, what: str = "Resource", details: Any = None) -> None:
        super().__init__(f"{what[:1].upper()}{what[1:]} has expired", details)


class MethodNotAllowed(PichubError):
    status, code, default_message = 405, "METHOD_NOT_ALLOWED", "Method not allowed"


class RequestTimeout(PichubError):
    """408: the request body stopped arriving (`server.body_timeout_s`); the connection closes."""

    status, code, default_message = 408, "REQUEST_TIMEOUT", "The request body stopped arriving"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        super().__init__(message, details, headers={"Connection": "close"})


class PayloadTooLarge(PichubError):
    status, code, default_message = 413, "PAYLOAD_TOO_LARGE", "File size exceeds maximum limit"

    @classmethod
    def file(cls, limit_mb: int, size: int) -> PayloadTooLarge:
        """A file over `storage.max_upload_mb`, with its size as far as it is known."""
        return cls("File size exceeds maximum limit",
                   f"Maximum file size is {limit_mb}MB. Your file is {round(size / 2**20)}MB.")


class UnsupportedMediaType(PichubError):
    status, code, default_message = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported file format"


class ValidationError(PichubError):
    """422; `details` is a list of `{"field", "message"}`, one per bad field."""

    status, code, default_message = 422, "VALIDATION_ERROR", "Request data validation failed"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationError:
        return cls(f"{field}: {message}", [{"field": field, "message": message}])


class RateLimited(PichubError):
    status, code, default_message = 429, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded"


class InsufficientStorage(PichubError):
    status, code, default_message = 507, "INSUFFICIENT_STORAGE", "Insufficient storage"

    @classmethod
    def disk_full(cls) -> InsufficientStorage:
        """The disk has no room (or is down to its reserve) for what is being stored."""
        return cls("Insufficient storage", "The server's free disk space is below its reserve")


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


#: SQLSTATE of PostgreSQL's disk_full. asyncpg's errors carry `sqlstate`; reading the
#: attribute rather than importing asyncpg keeps PicHub importable without it.
_PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left on device", "disk quota exceeded", SQLite's SQLITE_FULL and
    PostgreSQL's disk_full (asyncpg's DiskFullError)."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if getattr(exc, "sqlstate", None) == _PG_DISK_FULL:
        return True
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS


class ServiceUnavailable(PichubError):
    status, code, default_message = 503, "SERVICE_UNAVAILABLE", "Server is busy, try again"
