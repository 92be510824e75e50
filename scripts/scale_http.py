"""The server process and a plain HTTP client for `scripts/bench-scale`.

`Server` runs `python -m pichub serve` on 127.0.0.1 against a generated library and times
its start-up to the first `/healthz` 200. `Api` keeps one keep-alive connection
(`http.client`): the benchmark sends one request at a time and measures latency, so
a connection pool or an event loop would only add noise.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

#: The repository whose `pichub` package is benchmarked (this file is in its scripts/).
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pichub_env() -> dict[str, str]:
    """The environment of every `pichub` subprocess: this checkout's package first (a shared
    virtualenv may have another checkout installed in editable mode), no stray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICHUB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


class StartupTimeout(Exception):
    """The server did not answer `/healthz` with 200 in time (it has been stopped)."""


class Server:
    """`pichub serve` on a data directory, its output in `log_path`."""

    #: Settings for measuring, not for defending: no rate limits (a walk over 10,000 pages
    #: would be refused) and no free-space reserve (the disk holds the libraries).
    ENV = {"PICHUB_RATE_LIMITS__ENABLED": "false", "PICHUB_STORAGE__MIN_FREE_MB": "0"}

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir, self.log_path = data_dir, log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float) -> float:
        """Start and wait for `/healthz` to answer 200; the seconds that took."""
        with open(self.log_path, "ab") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pichub", "serve", "--data-dir", str(self.data_dir),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=pichub_env() | self.ENV,
                cwd=self.log_path.parent)
        while time.perf_counter() - started < timeout_s:
            if self._healthy():
                return time.perf_counter() - started
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}); see "
                                 f"{self.log_path}")
            time.sleep(0.02)
        self.stop()
        raise StartupTimeout(f"no /healthz 200 within {timeout_s:.0f} s")

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def settled_rss_mb(self, limit_s: float, window_s: float = 5.0) -> tuple[float, float]:
        """(RSS, seconds waited) once RSS has moved less than 1 MB over `window_s`: the
        background work after start-up (cache index, sweeps) has finished or settled."""
        started = time.monotonic()
        samples: list[float] = []
        per_window = int(window_s / 0.5) + 1
        while True:
            samples.append(self.rss_mb())
            recent = samples[-per_window:]
            waited = time.monotonic() - started
            if (len(recent) == per_window and max(recent) - min(recent) < 1.0) \
                    or waited >= limit_s:
                return samples[-1], waited
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Api:
    """Requests to one server over a kept-alive connection; answers as (status, JSON)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending to the last byte read)."""
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        for attempt in (1, 2):  # the server may have closed an idle connection
            try:
                started = time.perf_counter()
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
                return response.status, data, time.perf_counter() - started
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[Any, float]:
        """The parsed answer of a request that must succeed, and its latency in seconds."""
        status, data, seconds = self.request(method, path, body, headers)
        if status >= 300:
            raise SystemExit(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data) if data else None, seconds

    def median_ms(self, path: str, count: int) -> float:
        """Median latency of `count` GETs of `path`, in ms."""
        return self.median_ms_over([path] * count)

    def median_ms_over(self, paths: list[str]) -> float:
        """Median latency of a GET of each of `paths`, in order, in ms."""
        return statistics.median(self.json("GET", path)[1] for path in paths) * 1000

    def upload(self, name: str, data: bytes, fields: dict[str, str],
               mime: str = "image/jpeg") -> tuple[str, float]:
        """POST /api/v1/upload with one file and form `fields` (multipart); (the new image's
        id, seconds)."""
        boundary = uuid.uuid4().hex
        parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n"
                 f"{value}\r\n".encode() for key, value in fields.items()]
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files[]\"; "
                     f"filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n".encode() + data
                     + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        answer, seconds = self.json("POST", "/api/v1/upload", body, {
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        return str(answer["data"][0]["id"]), seconds

    def close(self) -> None:
        self.conn.close()


def metric_value(text: str, name: str) -> float | None:
    """A sample's value from Prometheus text, by metric name (counters: `_total` too)."""
    for line in text.splitlines():
        metric, _, value = line.partition(" ")
        if metric in (name, f"{name}_total"):
            return float(value)
    return None
