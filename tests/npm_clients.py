"""The real upload clients from npm (tests/clients/package.json, installed by `.ci/run` with
`npm ci --prefix tests/clients`), driven against a PicHub on 127.0.0.1.

Tests never install anything: outside CI they are skipped, with the reason, when node or
the installed packages are missing; with `CI=true` they must run, so a missing client
fails loudly (like the browser tests, `browser.py`). PicGo keeps its configuration in
`~/.picgo`, so each run gets its own HOME under the test's tmp_path, whose
`.picgo/node_modules` is the installed packages (PicGo loads plugins from there).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CLIENTS = Path(__file__).resolve().parent / "clients"
NODE_MODULES = CLIENTS / "node_modules"
NODE = shutil.which("node")
PICGO_PLUGINS = ("picgo-plugin-lankong", "picgo-plugin-web-uploader")
TIMEOUT_S = 120


def _skip_reason() -> str | None:
    """Skip only outside CI; in CI a missing node or client must fail loudly."""
    if os.environ.get("CI") == "true":
        return None
    if NODE is None:
        return "node is missing (apt-get install nodejs npm); these tests always run in CI"
    if not (NODE_MODULES / "picgo").is_dir():
        return ("the npm clients are not installed (npm ci --prefix tests/clients); "
                "these tests always run in CI")
    return None


SKIP_REASON = _skip_reason()
requires_clients = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def version(package: str) -> str:
    """The installed version of an npm package (for messages and the closing note)."""
    data = json.loads((NODE_MODULES / package / "package.json").read_text())
    return str(data["version"])


@dataclass
class Run:
    code: int
    out: str
    err: str


async def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              stdin: bytes | None = None) -> Run:
    """Run a command without blocking the event loop (the server under test shares it)."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT_S)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def picgo_home(root: Path, config: dict[str, Any]) -> Path:
    """A HOME whose `~/.picgo` holds `config` and loads the installed plugins."""
    base = root / ".picgo"
    base.mkdir(parents=True, exist_ok=True)
    deps = {name: version(name) for name in PICGO_PLUGINS}
    (base / "package.json").write_text(json.dumps({"name": "picgo-plugins",
                                                   "dependencies": deps}))
    link = base / "node_modules"
    if not link.exists():
        link.symlink_to(NODE_MODULES, target_is_directory=True)
    (base / "config.json").write_text(json.dumps(config))
    return root


async def picgo(home: Path, *args: str) -> Run:
    """The PicGo-Core CLI (`picgo`) with HOME at `home`."""
    assert NODE is not None
    return await run(NODE, str(NODE_MODULES / "picgo" / "bin" / "picgo"), *args,
                     env={"HOME": str(home)}, cwd=home)


async def node_script(script: str, *args: str, home: Path | None = None) -> Run:
    """One of the drivers in tests/clients (they require the installed packages)."""
    assert NODE is not None
    env = {"NODE_PATH": str(NODE_MODULES)}
    if home is not None:
        env["HOME"] = str(home)
    return await run(NODE, str(CLIENTS / script), *args, env=env, cwd=CLIENTS)
