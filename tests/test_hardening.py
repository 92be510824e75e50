"""Attacks and faults from the hardening review, replayed against a real server process.

Memory is read from the server's peak RSS (VmHWM in /proc/<pid>/status); a
full disk is a real tmpfs (the test mounts one, which needs root or a user
namespace, as in CI).
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests import samples
from tests.support.rawhttp import exchange, multipart_request, read_response
from tests.support.server import Server

B = "b0undary"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


async def _field_attack(server: Server, fields: int, size: int) -> int:
    """3000 fields of 65,000 bytes (each under the old per-field limit), then a file."""
    def part(index: int) -> bytes:
        return (f"--{B}\r\nContent-Disposition: form-data; name=\"f{index}\"\r\n\r\n"
                ).encode() + b"v" * size + b"\r\n"

    tail = (f"--{B}\r\nContent-Disposition: form-data; name=\"files[]\"; filename=\"a.jpg\""
            "\r\n\r\n").encode() + samples.jpeg() + f"\r\n--{B}--\r\n".encode()
    length = sum(len(part(i)) for i in range(fields)) + len(tail)
    head = multipart_request("/api/v1/upload", "127.0.0.1", server.token, b"", B)
    head = head.replace(b"Content-Length: 0", f"Content-Length: {length}".encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head)
        for index in range(fields):
            writer.write(part(index))
            await writer.drain()
        writer.write(tail)
        await writer.drain()
    except ConnectionError:
        pass  # answered and closed before the end of the body: what we want
    resp = await read_response(reader)
    writer.close()
    return resp.status


async def test_field_flood_is_refused_in_bounded_memory(server: Server) -> None:
    before = server.peak_rss_mb()
    status = await _field_attack(server, fields=3000, size=65_000)
    assert status == 413
    assert server.peak_rss_mb() < 200, (before, server.peak_rss_mb())
    assert list((server.data_dir / "tmp").iterdir()) == []


async def test_requests_aiohttp_refuses_are_logged_without_crashing(server: Server) -> None:
    smuggle = (b"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    long_line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n"
    for raw in (smuggle, long_line):
        resp = await exchange("127.0.0.1", server.port, raw)
        assert resp.status == 400
    health = await asyncio.to_thread(requests.get, server.base + "/healthz", timeout=10)
    assert health.status_code == 200
    server.stop()
    out = server.logged
    assert "Traceback" not in out and "AttributeError" not in out, out
    assert out.count("status=400") >= 2, out


# --- a real full disk --------------------------------------------------------------------


def _mount_tmpfs(where: Path, size_kb: int) -> None:
    where.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs in CI: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); runs in CI as root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, 3 * 1024)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _noise_jpeg(side: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((side, side), 120).convert("RGB").save(out, "JPEG", quality=95)
    return out.getvalue()


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_full_disk_is_507_with_nothing_left_behind(small_disk: Path) -> None:
    srv = Server(small_disk / "data")
    try:
        auth = {"Authorization": f"Bearer {srv.token}"}
        url = srv.base + "/api/v1/upload"
        # 1. The body does not fit. Declared: refused up front. Chunked (no length known):
        # the temp file fills the disk while it arrives.
        big = samples.jpeg() + os.urandom(4 * 2**20)
        resp = requests.post(url, headers=auth, files={"file": ("big.jpg", big)}, timeout=60)
        assert resp.status_code == 507, resp.text
        assert resp.json()["error"]["code"] == "INSUFFICIENT_STORAGE"
        body = (f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\""
                "\r\n\r\n").encode() + big + f"\r\n--{B}--\r\n".encode()
        chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
        resp = requests.post(url, data=chunks, timeout=60, headers={
            **auth, "Content-Type": f"multipart/form-data; boundary={B}"})
        assert resp.status_code == 507, resp.text
        assert _files(srv.data_dir / "tmp") == []
        # 2. The upload fits, its re-encoded blob (PNG of noise, ~3 MB) does not.
        resp = requests.post(url, headers=auth, data={"format": "png"},
                             files={"file": ("noise.jpg", _noise_jpeg(1000))}, timeout=60)
        assert resp.status_code == 507, resp.text
        assert _files(srv.data_dir / "tmp") == []
        assert _files(srv.data_dir / "blobs") == []
        listed = requests.get(srv.base + "/api/v1/images", headers=auth, timeout=10).json()
        assert listed["meta"]["total"] == 0
        # 3. Nothing was left behind, so a small upload still works.
        resp = requests.post(url, headers=auth, files={"file": ("ok.jpg", samples.jpeg())},
                             timeout=60)
        assert resp.status_code == 201, resp.text
        assert len(_files(srv.data_dir / "blobs")) == 1
    finally:
        srv.stop()
