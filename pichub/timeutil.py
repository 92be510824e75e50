"""Timestamps as the API shows them: ISO 8601 UTC with a `Z`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: What tells the time to the rules that depend on it (expiry, signed links): `now` in the
#: app, a controllable one in tests (`keys.CLOCK`).
Clock = Callable[[], datetime]


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None = None) -> str:
    """Second precision, `2026-11-27T06:50:33Z`."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
