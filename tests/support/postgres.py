"""A throw-away PostgreSQL cluster on 127.0.0.1 for the tests, one per test session.

The cluster starts the first time a test asks for a database (`fresh_url`) and is
removed when the session ends. Each test gets a brand-new database copied from a
template PicHub's migrations already ran on (`CREATE DATABASE … TEMPLATE`), which
takes milliseconds. PostgreSQL refuses to run as root, so as root the server runs
as the `postgres` system user in a temporary directory owned by it. fsync is off:
the data is thrown away anyway.

Skipped when the binaries are missing, unless CI is "true" (then the test fails).
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine
from glob import glob
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.server import free_port

T = TypeVar("T")
TEMPLATE = "pichub_template"
_SYSTEM_USER = "postgres"


def _major(path: str) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin/initdb: so 15 sorts after 9.6."""
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _bin(name: str) -> str | None:
    """The newest Debian/Ubuntu install (/usr/lib/postgresql/<major>/bin, not on PATH), else
    PATH (other distributions, Homebrew)."""
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major)
    return found[-1] if found else shutil.which(name)


def _require() -> tuple[str, str]:
    initdb, postgres = _bin("initdb"), _bin("postgres")
    if initdb and postgres:
        return initdb, postgres
    if os.environ.get("CI") == "true":
        pytest.fail("PostgreSQL (initdb, postgres) is required in CI", pytrace=False)
    pytest.skip("PostgreSQL is not installed (no initdb and postgres in "
                "/usr/lib/postgresql/*/bin or on PATH)")


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", _SYSTEM_USER, "--", *argv] if os.geteuid() == 0 else argv


class _Cluster:
    """A running `postgres` with an admin connection on a background event loop."""

    def __init__(self) -> None:
        initdb, postgres = _require()
        self.root = Path(tempfile.mkdtemp(prefix="pichub-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, _SYSTEM_USER)
        data = self.root / "data"
        subprocess.run(_as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                                        "--no-sync", "-E", "UTF8"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = free_port()
        self.proc = subprocess.Popen(
            _as_server_user([postgres, "-D", str(data), "-p", str(self.port),
                             "-c", "listen_addresses=127.0.0.1",
                             "-c", f"unix_socket_directories={self.root}",
                             "-c", "fsync=off", "-c", "synchronous_commit=off",
                             "-c", "full_page_writes=off", "-c", "max_connections=300"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="pg-admin").start()
        self.names = itertools.count()
        self._wait_ready()
        self._prepare_template()

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.run(self._admin("SELECT 1"))
                return
            except Exception as exc:  # refused, starting up, ...: any error until it answers
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {exc}") from exc
                time.sleep(0.05)

    def _prepare_template(self) -> None:
        from pichub.db.postgres import migrate

        self.run(self._admin(f"CREATE DATABASE {TEMPLATE}"))
        self.run(migrate(self.url(TEMPLATE)))

    def fresh(self) -> str:
        name = f"pichub_{next(self.names)}"
        self.run(self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY"))
        return self.url(name)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # immediate shutdown: nothing to keep
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


# The one cluster of the test session: started on first use, stopped at exit (atexit, as
# `make_settings` that asks for databases is a plain function, not a fixture).
_cluster: _Cluster | None = None
_lock = threading.Lock()


def _running() -> _Cluster:
    global _cluster
    with _lock:
        if _cluster is None:
            _cluster = _Cluster()
            atexit.register(_cluster.stop)
        return _cluster


_by_dir: dict[Path, str] = {}


def fresh_url(test_dir: Path | None = None) -> str:
    """The URL of a new, migrated, empty database (skips the test without PostgreSQL).

    Given the test's `tmp_path`, the same test gets the same database each time it asks,
    as it gets the same data directory: an app restarted by the test sees its rows.
    """
    if test_dir is None:
        return _running().fresh()
    if test_dir not in _by_dir:
        _by_dir[test_dir] = _running().fresh()
    return _by_dir[test_dir]


def empty_url() -> str:
    """The URL of a new database with nothing in it, not even PicHub's schema."""
    cluster = _running()
    name = f"pichub_empty_{next(cluster.names)}"
    cluster.run(cluster._admin(f"CREATE DATABASE {name}"))
    return cluster.url(name)
