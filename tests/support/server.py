"""A PicHub server in a subprocess on 127.0.0.1, and the `pichub` CLI, for end-to-end tests."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pichub(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pichub", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


class Server:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pichub", "serve", "--data-dir", str(data_dir),
             "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={"PATH": "/usr/bin:/bin", "PICHUB_STORAGE__MIN_FREE_MB": "0",
                 "PICHUB_RATE_LIMITS__ENABLED": "false", **(env or {})},
        )
        self.output = self._wait_ready()

    def _wait_ready(self) -> str:
        assert self.proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "listening on" in line:
                break
        for _ in range(100):
            try:
                requests.get(self.base + "/api/v1/square", timeout=1)
                return "".join(lines)
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("server did not start:\n" + "".join(lines))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()

    @property
    def token(self) -> str:
        """The admin's API token printed at first start."""
        found = re.search(r"API token: (\S+)", self.output)
        assert found, self.output
        return found.group(1)

    def peak_rss_mb(self) -> float:
        """The server process's peak resident memory so far (VmHWM), in MiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        assert found, status
        return int(found.group(1)) / 1024
