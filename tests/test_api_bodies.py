"""Refused bodies still get their answer, and a huge body is never read whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import requests

from pichub.keys import SETTINGS
from tests import samples
from tests.conftest import ApiFactory, make_settings

BOUNDARY = "pichubboundary"


async def _raw_upload(host: str, port: int, token: str, declared: int, send: int) -> bytes:
    """Declare a `declared`-byte multipart body, send only `send` bytes of it, read the answer."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[]\"; "
            f"filename=\"huge.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"POST /api/v1/upload HTTP/1.1\r\nHost: {host}\r\n"
                  f"Authorization: Bearer {token}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                  f"Content-Length: {declared}\r\n\r\n").encode() + head)
    chunk = b"\xff" * 65536
    sent = 0
    try:
        while sent < send:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    except ConnectionError:
        pass
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=20)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), timeout=20)
    writer.close()
    return head + body


async def test_2gb_declared_body_answered_413_without_reading_it(make_api: ApiFactory,
                                                                 tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"max_upload_mb": 1}))
    server = api.client.server
    raw = await _raw_upload(str(server.host), int(server.port or 0), api.token,
                            declared=2 * 2**30, send=3 * 2**20)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length" in head
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in head
    envelope = json.loads(body)
    assert envelope["error"]["details"] == "Maximum file size is 1MB. Your file is 2048MB."
    data_dir = Path(api.app[SETTINGS].storage.data_dir)
    assert not [p for p in (data_dir / "tmp").iterdir()]


def _post_with_bad_token(url: str, size: int) -> requests.Response:
    return requests.post(url, headers={"Authorization": "Bearer wrong"},
                         files={"files[]": ("a.jpg", b"\xff" * size)}, timeout=30)


async def test_401_reaches_an_ordinary_client_that_sends_a_big_body(api: Any) -> None:
    url = str(api.client.make_url("/api/v1/upload"))
    resp = await asyncio.to_thread(_post_with_bad_token, url, 8 * 2**20)
    assert resp.status_code == 401
    assert resp.json()["message"] == "Invalid or expired API token"


async def test_413_reaches_requests_client(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, storage={"max_upload_mb": 1}))
    url = str(api.client.make_url("/api/v1/upload"))

    def post() -> requests.Response:
        return requests.post(url, headers=api.headers(),
                             files={"image": ("big.jpg", samples.jpeg() + b"\0" * (2 * 2**20))},
                             timeout=30)

    resp = await asyncio.to_thread(post)
    assert resp.status_code == 413
    assert resp.json()["error"]["details"] == "Maximum file size is 1MB. Your file is 2MB."
