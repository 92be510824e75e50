"""The result of `scripts/bench-scale` at one library size, and its markdown table."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SizeResult:
    """Everything measured at one library size; None = not measured (see `notes`)."""

    n: int
    library: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)  # 1-minute, at start and at end


def _pair(a: float | None, b: float | None, unit: str, digits: int = 1) -> str:
    if a is None or b is None:
        return "—"
    return f"{a:.{digits}f} / {b:.{digits}f} {unit}"


def _one(value: float | None, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f} {unit}"


def _startup(result: SizeResult, key: str) -> str:
    """Seconds to the first 200, "> T s" when it timed out, else see the notes."""
    if (seconds := result.metrics.get(f"{key}_s")) is not None:
        return f"{seconds:.2f} s"
    if (limit := result.metrics.get(f"{key}_over_s")) is not None:
        return f"> {limit:.0f} s (stopped)"
    return "not measured (see notes)"


def _cursor(result: SizeResult, name: str) -> str:
    if result.metrics.get("cursor_api") == 0.0:
        return "no cursor API"
    return _pair(result.metrics.get(f"cursor_{name}_first_ms"),
                 result.metrics.get(f"cursor_{name}_last_ms"), "ms")


def _rate(seconds: float | None, rate: float | None) -> str:
    return "—" if seconds is None or rate is None else f"{seconds:.1f} s ({rate:,.0f} images/s)"


#: (row title, cell from a result's metrics)
ROWS: list[tuple[str, Callable[[SizeResult], str]]] = [
    ("library build (generator, images/s)",
     lambda r: f"{r.library['images_per_s']:,.0f}" + ("" if r.library["built_now"] else
                                                      " (cached)")),
    ("start-up to first `/healthz` 200, warm", lambda r: _startup(r, "startup_warm")),
    ("start-up, cold page cache (`drop_caches`)", lambda r: _startup(r, "startup_cold")),
    ("idle RSS", lambda r: _one(r.metrics.get("idle_rss_mb"), "MB", 0)),
    ("`GET /images?per_page=100` page 1 / last (median)",
     lambda r: _pair(r.metrics.get("images_p1_ms"), r.metrics.get("images_last_ms"), "ms")),
    ("`GET /images` page 1, first request after start-up",
     lambda r: _one(r.metrics.get("images_first_request_ms"), "ms")),
    ("`GET /square?per_page=100` page 1 / last",
     lambda r: _pair(r.metrics.get("square_p1_ms"), r.metrics.get("square_last_ms"), "ms")),
    ("`GET /albums?per_page=100` (100 albums of N/100)",
     lambda r: _one(r.metrics.get("albums_p1_ms"), "ms")),
    ("`GET /images?album_id=…&per_page=100` page 1",
     lambda r: _one(r.metrics.get("album_images_p1_ms"), "ms")),
    ("by cursor: `/images` first / last pages", lambda r: _cursor(r, "images")),
    ("by cursor: `/square` first / last pages", lambda r: _cursor(r, "square")),
    ("cached variant `/img/{id}.webp?w=160` (hit)",
     lambda r: _one(r.metrics.get("variant_hit_ms"), "ms")),
    ("upload ~1 MP JPEG (kept as JPEG), no quota / quota set",
     lambda r: _pair(r.metrics.get("upload_ms"), r.metrics.get("upload_quota_ms"), "ms", 0)),
    ("`pichub backup`",
     lambda r: _rate(r.metrics.get("backup_s"), r.metrics.get("backup_images_per_s"))),
    ("`pichub restore`",
     lambda r: _rate(r.metrics.get("restore_s"), r.metrics.get("restore_images_per_s"))),
]


def markdown_table(results: list[SizeResult]) -> str:
    lines = ["| metric | " + " | ".join(f"{r.n:,}" for r in results) + " |",
             "|---|" + "---|" * len(results)]
    lines += [f"| {title} | " + " | ".join(cell(r) for r in results) + " |"
              for title, cell in ROWS]
    notes = [f"- {r.n:,}: {note}" for r in results for note in r.notes]
    notes += [f"- {r.n:,}: load average {r.load_average[0]:.1f} at start, "
              f"{r.load_average[-1]:.1f} at end ({os.cpu_count()} CPUs)" for r in results]
    return "\n".join(lines + ([""] + notes if notes else []))
