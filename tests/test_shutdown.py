"""SIGTERM lets an upload that is still arriving finish, then stops (SPEC §9)."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path

import requests

from tests import samples
from tests.support.server import Server

BOUNDARY = "pichubshutdown"


def _body(image: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[]\"; "
            f"filename=\"slow.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + image + (
        f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"convertToWebP\"\r\n\r\n"
        f"false\r\n--{BOUNDARY}--\r\n").encode()


def test_sigterm_drains_an_upload_in_flight(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    token = re.search(r"API token: (\S+)", server.output)
    assert token
    image = samples.png_alpha((300, 300))
    body = _body(image)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {token.group(1)}\r\nConnection: close\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2])
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # the server is shutting down while the body is still arriving
    try:
        requests.get(server.base + "/api/v1/square", timeout=2)
        accepting = True
    except requests.ConnectionError:
        accepting = False
    assert not accepting, "a stopping server must not accept new connections"
    sock.sendall(body[len(body) // 2:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201"), head
    image_id = json.loads(payload)["data"][0]["id"]
    assert server.wait(timeout=30) in (0, -signal.SIGTERM)

    again = Server(tmp_path / "data")
    try:
        got = requests.get(f"{again.base}/img/{image_id}.png", timeout=10)
        assert got.status_code == 200 and got.content == image
    finally:
        again.stop()
