"""A PicHub server in a subprocess on 127.0.0.1, and the `pichub` CLI, for end-to-end tests."""

from __future__ import annotations

import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

PICHUB = (sys.executable, "-m", "pichub")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pichub(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PICHUB, *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def limit_open_files(limit: int) -> Callable[[], None]:
    """A preexec_fn: the child may open at most `limit` files (soft and hard limit)."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


class Server:
    """`pichub serve` on a free port; its output after start-up is collected in `log`."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, *,
                 nofile: int | None = None, command: Sequence[str] = PICHUB,
                 cwd: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*command, "serve", "--data-dir", str(data_dir), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
            env={"PATH": "/usr/bin:/bin", "PICHUB_STORAGE__MIN_FREE_MB": "0",
                 "PICHUB_RATE_LIMITS__ENABLED": "false", **(env or {})},
            preexec_fn=limit_open_files(nofile) if nofile else None,
        )
        self.output = self._wait_ready()
        self.ready_at = time.monotonic()
        self.log: list[tuple[float, str]] = []  # (time.monotonic() when read, line)
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

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

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append((time.monotonic(), line))

    @property
    def logged(self) -> str:
        """Everything written after start-up so far."""
        return "".join(line for _, line in self.log)

    def wait_for_line(self, text: str, timeout: float = 10.0) -> float:
        """When (time.monotonic()) the test first saw a line containing `text` (when the
        server was up, for a line written before)."""
        if text in self.output:
            return self.ready_at
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seen, line in list(self.log):
                if text in line:
                    return seen
            time.sleep(0.02)
        raise AssertionError(f"no line with {text!r} in:\n{self.logged}")

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit; its exit status."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        return code

    def stop(self) -> None:
        self.proc.terminate()
        self.wait()

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
