"""Which engines the API tests run against, chosen by `PICHUB_TEST_BACKEND`.

`local` (the default): SQLite and a directory, as `pichub serve` starts.
`scale`: PostgreSQL and an S3-compatible bucket (docs/scale-out.md), both real servers
started by the tests on 127.0.0.1. `scripts/test` runs the API modules a second time
with `scale`: the same tests, parametrised by configuration rather than copied.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.support import postgres

SCALE = os.environ.get("PICHUB_TEST_BACKEND", "local") == "scale"


def database(tmp_path: Path) -> Path | str:
    """What a test that opens a `Database` of its own opens: a fresh one on its engine."""
    return postgres.fresh_url(tmp_path) if SCALE else tmp_path / "pichub.db"


def sections(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Settings sections that point a test's app at the configured engines."""
    if not SCALE:
        return {}
    found: dict[str, dict[str, Any]] = {}
    found["database"] = {"url": postgres.fresh_url(tmp_path)}
    from tests.support.seaweed import Seaweed  # the S3 half: a fresh prefix in one bucket

    found["storage"] = {"backend": "s3", "s3": Seaweed.shared().scratch(str(tmp_path))}
    return found
