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

#: The modules `scripts/test` runs a second time under `scale` (`pytest -m scale`): the API,
#: the services and the pages that do not need a browser. `tests/conftest.py` marks them.
SCALE_MODULES = frozenset({
    "test_api_admin", "test_api_bodies", "test_api_bombs", "test_api_images_albums",
    "test_api_img", "test_api_ratelimit", "test_api_upload", "test_api_upload_metadata",
    "test_api_webhooks", "test_webhooks_worker", "test_dedup", "test_delete_links",
    "test_sharing", "test_album_pages", "test_expiry", "test_album_expiry", "test_img_hits",
    "test_working_copies", "test_storage_s3", "test_db_postgres", "test_ratelimit",
    "test_ratelimit_redis", "test_integrations", "test_compat_lsky", "test_clients_chevereto",
    "test_ingest_heic", "test_health", "test_scale_out",
    "test_ui_account", "test_ui_account_delete", "test_ui_admin", "test_ui_auth",
    "test_ui_i18n", "test_ui_oidc", "test_ui_pages", "test_ui_sessions", "test_ui_sharing",
    "test_ui_twofactor", "test_ui_zipapp",
})


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
