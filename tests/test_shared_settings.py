"""What `pichub serve` requires or warns about when processes may share the database
(docs/scale-out.md): one secret key for all, and rate limits that are only per process."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from pichub import server
from pichub.config import ConfigError, Settings, check_shared
from pichub.hosts import AllowedHosts
from pichub.keys import ALLOWED_HOSTS
from tests.support.server import PICHUB

POSTGRES = "postgresql://pichub@127.0.0.1:9/pichub"  # never reached: refused before


def test_serve_refuses_postgresql_without_a_secret_key(tmp_path: Path) -> None:
    done = subprocess.run([*PICHUB, "serve", "--data-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PICHUB_DATABASE__URL": POSTGRES})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "config: auth.secret_key: must be set when database.url is PostgreSQL "
        "(every process must use the same key)"]
    assert not (tmp_path / "secret.key").exists()


def test_a_secret_key_or_sqlite_is_fine() -> None:
    check_shared(Settings(database={"url": POSTGRES}, auth={"secret_key": "k" * 32}))
    check_shared(Settings())
    with pytest.raises(ConfigError):
        check_shared(Settings(database={"url": POSTGRES.replace("postgresql", "postgres")}))


@pytest.mark.parametrize(("url", "storage", "warned"), [
    (POSTGRES, "memory://", True),
    (POSTGRES, "redis://127.0.0.1:6379/0", False),
    ("", "memory://", False),  # one SQLite file: usually one process
])
def test_start_up_warns_that_memory_limits_are_per_process(
        caplog: pytest.LogCaptureFixture, url: str, storage: str, warned: bool) -> None:
    settings = Settings(database={"url": url}, rate_limits={"storage_uri": storage})
    app = web.Application()
    app[ALLOWED_HOSTS] = AllowedHosts(("*",))
    with caplog.at_level(logging.WARNING, logger="pichub"):
        server._announce(settings, app)
    assert any("limits are per process" in r.getMessage() for r in caplog.records) is warned
