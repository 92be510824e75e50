"""The web UI works when `pichub` is imported straight from a zip archive.

Templates and static files are package data read through importlib.resources,
so nothing may depend on `__file__` being a real directory. This runs the app
in a subprocess whose only copy of `pichub` is inside a zip (zipimport, not
even extracted, which is stricter than shiv's extract-then-run) and fetches a
page, the docs page and a vendored asset over real HTTP.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import asyncio, re, sys
from pathlib import Path
archive, site_packages, data = sys.argv[1:4]
sys.path[:] = [archive, site_packages, *sys.path]
import pichub
assert pichub.__file__.startswith(archive), pichub.__file__
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from pichub.app import create_app
from pichub.config import Settings

async def main():
    app = create_app(Settings(storage={"data_dir": Path(data), "min_free_mb": 0}))
    async with TestServer(app, host="127.0.0.1") as server, ClientSession() as http:
        async with http.get(server.make_url("/docs")) as resp:
            html = await resp.text()
            print("docs", resp.status)
        bundle = re.search(r'src="(/static/vendor/swagger-ui/[^"]+)"', html).group(1)
        for path in ("/", "/login", bundle, "/api/v1/openapi.json"):
            async with http.get(server.make_url(path)) as resp:
                await resp.read()
                print(path.split("/")[1] or "root", resp.status)

asyncio.run(main())
"""


def _zip_package(dest: Path) -> Path:
    archive = dest / "pichub.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((ROOT / "pichub").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(ROOT).as_posix())
    return archive


def test_pages_and_assets_are_served_from_a_zipped_package(tmp_path: Path) -> None:
    archive = _zip_package(tmp_path)
    # -S: no site hooks, so the editable install of the checkout cannot stand in for the zip.
    result = subprocess.run(
        [sys.executable, "-S", "-c", SCRIPT, str(archive), sysconfig.get_paths()["purelib"],
         str(tmp_path / "data")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["docs", "200", "root", "200", "login", "200",
                                     "static", "200", "api", "200"]
