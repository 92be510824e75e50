"""The one-file zipapp: `scripts/build-pyz`, then `python3 dist/pichub.pyz serve`.

Slow-ish: building takes 10-20 s, once per run of this module; it runs in CI like
every other test. `PICHUB_PYZ=path/to/pichub.pyz` tests an already built file.

The zipapp runs under the base interpreter of the one running the tests (same
CPython minor version as the binary wheels inside) with `-S`, so no installed
site-packages can stand in for a dependency missing from the file. SHIV_ROOT
points at the test's tmp dir: every test extracts afresh (a cold start).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image

from tests import samples
from tests.support import heic
from tests.support.redis import redis_server
from tests.support.server import Server

ROOT = Path(__file__).resolve().parents[1]
PYTHON = getattr(sys, "_base_executable", sys.executable)


def build(out: Path, *flags: str) -> Path:
    env = dict(os.environ)
    if importlib.util.find_spec("shiv") is not None:
        env["PICHUB_BUILD_PYTHON"] = sys.executable  # don't reinstall the venv we run in
    built = subprocess.run(["bash", str(ROOT / "scripts" / "build-pyz"), *flags, str(out)],
                           env=env, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("PICHUB_PYZ")
    if given:
        return Path(given).resolve()
    return build(tmp_path_factory.mktemp("dist") / "pichub.pyz")


class PyzServer(Server):
    """tests.support.server.Server, but `python3 pichub.pyz serve` with nothing installed."""

    def __init__(self, pyz: Path, workdir: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(workdir / "data", env={"SHIV_ROOT": str(workdir / "shiv"), **(env or {})},
                         command=(PYTHON, "-S", str(pyz)), cwd=workdir)


@pytest.fixture
def served(pyz: Path, tmp_path: Path) -> Iterator[PyzServer]:
    server = PyzServer(pyz, tmp_path)
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_zipapp_serves_uploads_and_variants_and_stops_on_sigterm(served: PyzServer) -> None:
    match = re.search(r"API token: (\S+)", served.output)
    assert match, served.output
    resp = requests.post(f"{served.base}/api/v1/upload",
                         headers={"Authorization": f"Bearer {match.group(1)}"},
                         files={"files[]": ("photo.jpg", samples.jpeg((400, 300)))}, timeout=30)
    assert resp.status_code == 201, resp.text
    image = resp.json()["data"][0]
    # The placeholders' encoder (the pure-Python `blurhash` package) ships inside the file.
    assert len(image["blurhash"]) == 28 and re.fullmatch(r"#[0-9a-f]{6}", image["dominant_color"])

    original = requests.get(image["url"], timeout=10)
    assert original.status_code == 200
    assert hashlib.sha256(original.content).hexdigest() == image["sha256"]
    variant = requests.get(image["url"] + "?w=100", timeout=30)
    assert variant.status_code == 200
    assert Image.open(io.BytesIO(variant.content)).size == (100, 75)

    served.proc.send_signal(signal.SIGTERM)
    assert served.wait(timeout=10) in (0, -signal.SIGTERM)


def test_zipapp_loads_the_heif_and_jpeg_xl_codecs(served: PyzServer) -> None:
    """pi-heif's and pillow-jxl-plugin's native libraries load from the file, as Pillow's do."""
    match = re.search(r"API token: (\S+)", served.output)
    assert match, served.output
    auth = {"Authorization": f"Bearer {match.group(1)}"}
    resp = requests.post(f"{served.base}/api/v1/upload", headers=auth, timeout=30,
                         files={"files[]": ("p.heic", heic.small())}, data={"format": "jxl"})
    assert resp.status_code == 201, resp.text
    image = resp.json()["data"][0]
    assert (image["format"], image["original_format"]) == ("jxl", "heic")
    variant = requests.get(image["url"] + "?w=32&fm=webp", timeout=30)
    assert variant.status_code == 200
    assert Image.open(io.BytesIO(variant.content)).size == (32, 24)


def test_zipapp_shares_rate_limits_through_redis(pyz: Path, tmp_path: Path,
                                                 redis_url: str) -> None:
    """The `redis` client ships inside the file: `storage_uri = "redis://…"` works."""
    server = PyzServer(pyz, tmp_path, env={"PICHUB_RATE_LIMITS__ENABLED": "true",
                                           "PICHUB_RATE_LIMITS__API": "50/minute",
                                           "PICHUB_RATE_LIMITS__STORAGE_URI": redis_url})
    try:
        first, second = (requests.get(f"{server.base}/api/v1/square", timeout=10)
                         for _ in range(2))
        assert first.status_code == second.status_code == 200
        assert first.headers["X-RateLimit-Limit"] == "50"
        left = int(first.headers["X-RateLimit-Remaining"])
        assert int(second.headers["X-RateLimit-Remaining"]) == left - 1
    finally:
        server.stop()
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key.decode() for key in client.keys("*")]
    finally:
        client.close()
    assert any("api" in key and "ip:127.0.0.1" in key for key in keys), keys


def test_zipapp_serves_the_web_page(served: PyzServer) -> None:
    page = requests.get(served.base + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    chinese = requests.get(served.base + "/login", headers={"Accept-Language": "zh-CN"},
                           timeout=10)  # the compiled catalogue is package data
    assert chinese.status_code == 200 and '<html lang="zh-CN">' in chinese.text
    assert "用户名" in chinese.text


def test_zipapp_holds_the_package_data_and_no_tests(pyz: Path) -> None:
    """Every file of the pichub package (templates, static, migrations) is inside."""
    with zipfile.ZipFile(pyz) as archive:
        names = set(archive.namelist())
    package = ROOT / "pichub"
    expected = {
        "site-packages/pichub/" + path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "site-packages/pichub/db/migrations/0001_initial.sql" in expected
    assert "site-packages/pichub/locale/zh_CN/LC_MESSAGES/messages.mo" in expected
    assert expected - names == set()
    assert not any(name.startswith("site-packages/tests/") for name in names)
    with open(pyz, "rb") as fh:
        assert fh.readline() == b"#!/usr/bin/env python3\n"


@pytest.mark.parametrize(("env", "engine"), [
    ({"PICHUB_STORAGE__BACKEND": "s3"}, "aiobotocore"),
    ({"PICHUB_DATABASE__URL": "postgresql://pichub@127.0.0.1:1/pichub",
      "PICHUB_AUTH__SECRET_KEY": "k" * 64}, "asyncpg")])
def test_the_lean_zipapp_names_the_full_one_for_the_scale_engines(
        pyz: Path, tmp_path: Path, env: dict[str, str], engine: str) -> None:
    """The everyday file leaves asyncpg and aiobotocore out: asked for PostgreSQL or S3 it
    says which file has them, in one line, exit 2 (a configuration error)."""
    proc = subprocess.run([PYTHON, "-S", str(pyz), "serve", "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "SHIV_ROOT": str(tmp_path / "shiv"),
                               **env})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert engine in proc.stderr and "pichub-full.pyz" in proc.stderr


def test_the_full_zipapp_serves_from_postgresql_and_s3(tmp_path_factory: pytest.TempPathFactory,
                                                      tmp_path: Path) -> None:
    """`scripts/build-pyz --full` (docs/scale-out.md): the same upload and variant, with the
    rows in PostgreSQL and the files in an S3 bucket."""
    from tests.support import postgres
    from tests.support.seaweed import Seaweed

    full = build(tmp_path_factory.mktemp("dist-full") / "pichub-full.pyz", "--full")
    weed = Seaweed.shared()
    s3 = weed.settings(weed.fresh_bucket(), prefix="pyz")
    env = {"PICHUB_DATABASE__URL": postgres.fresh_url(), "PICHUB_AUTH__SECRET_KEY": "k" * 64,
           "PICHUB_STORAGE__BACKEND": "s3",
           **{f"PICHUB_STORAGE__S3__{k.upper()}": str(v) for k, v in s3.items()}}
    server = PyzServer(full, tmp_path, env=env)
    try:
        match = re.search(r"API token: (\S+)", server.output)
        assert match, server.output
        auth = {"Authorization": f"Bearer {match.group(1)}"}
        resp = requests.post(f"{server.base}/api/v1/upload", headers=auth, timeout=30,
                             files={"files[]": ("photo.jpg", samples.jpeg((400, 300)))})
        assert resp.status_code == 201, resp.text
        image = resp.json()["data"][0]
        original = requests.get(image["url"], timeout=10)
        assert hashlib.sha256(original.content).hexdigest() == image["sha256"]
        variant = requests.get(image["url"] + "?w=100", timeout=30)
        assert Image.open(io.BytesIO(variant.content)).size == (100, 75)
        health = requests.get(f"{server.base}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert "object_storage" in health.text and "database" in health.text
    finally:
        server.stop()
    assert full.stat().st_size < 40 * 2**20  # botocore's data pruned to S3 and STS
