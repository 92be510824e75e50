"""Read timeouts and the connection cap (pichub.web.connections), on raw sockets.

Reports reproduced: connections that never finished their head, sent nothing,
or stalled mid-body (also `POST /login`) stayed open for good; a stalled upload
kept its temp file; with a low open-files limit, 50 such connections made
`/healthz` fail and accept() raise EMFILE. The servers run in subprocesses with
timeouts of a second or two; assertions only say a connection closed within a
generous deadline, never how fast.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import samples
from tests.support.server import Server

DEADLINE_S = 20  # far above every timeout configured here
BOUNDARY = "pichubstall"
FAST = {"PICHUB_SERVER__HEADER_TIMEOUT_S": "1", "PICHUB_SERVER__BODY_TIMEOUT_S": "1",
        "PICHUB_SERVER__KEEPALIVE_TIMEOUT_S": "60"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Short head and body timeouts; a keep-alive timeout too long to close anything here."""
    running = Server(tmp_path_factory.mktemp("timeouts") / "data", env=FAST)
    yield running
    running.stop()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
    sock.settimeout(DEADLINE_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it never does."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    sock.close()
    return data


def parse(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}, body


def upload_head(token: str, length: int) -> bytes:
    return (f"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def upload_body(image: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[]\"; "
            f"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + image + (
        f"\r\n--{BOUNDARY}--\r\n").encode()


def temp_uploads(server: Server) -> list[Path]:
    return list((server.data_dir / "tmp").glob("upload-*"))


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    assert read_until_closed(connect(server)) == b""


def test_a_request_head_that_never_ends_is_closed(server: Server) -> None:
    """A byte every 0.2 s keeps the connection busy, but the head must be whole in time."""
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    stop = threading.Event()

    def trickle() -> None:
        for _ in range(DEADLINE_S * 5):
            if stop.wait(0.2):
                return
            try:
                sock.send(b"a")
            except OSError:
                return

    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        assert read_until_closed(sock) == b""  # no answer: the request never started
    finally:
        stop.set()
        trickler.join()


def read_response(sock: socket.socket) -> tuple[str, bytes]:
    """One whole answer on a kept-alive connection: status line and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    _, headers, _ = parse(head + b"\r\n\r\n")
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0].decode(), body


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def test_the_next_head_on_a_kept_alive_connection_must_end_in_time_too(server: Server) -> None:
    """The head timer of a connection is armed once and re-armed when it fires early: a
    second request's head still counts from its own first byte, and is cut."""
    sock = connect(server)
    sock.sendall(HEALTHZ)
    assert read_response(sock)[0] == "HTTP/1.1 200 OK"
    time.sleep(0.5)  # half the head timeout: the connection's first timer is still pending
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    assert read_until_closed(sock) == b""


def test_a_busy_kept_alive_connection_outlives_the_head_timeout(server: Server) -> None:
    """Complete requests, one after another for longer than the head timeout: none is cut."""
    sock = connect(server)
    for _ in range(12):  # about 2.4 s on a server whose head timeout is 1 s
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == "HTTP/1.1 200 OK"
        time.sleep(0.2)
    sock.close()


def test_a_stalled_upload_is_cut_and_its_temp_file_removed(server: Server) -> None:
    body = upload_body(samples.png_alpha((300, 300)))
    sock = connect(server)
    sock.sendall(upload_head(server.token, len(body)) + body[:2000])
    deadline = time.monotonic() + DEADLINE_S
    while not temp_uploads(server) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert temp_uploads(server), "the upload is being received into data/tmp"
    status, headers, payload = parse(read_until_closed(sock))
    assert status == "HTTP/1.1 408 Request Timeout"
    assert headers["connection"] == "close"
    assert json.loads(payload)["error"]["code"] == "REQUEST_TIMEOUT"
    assert temp_uploads(server) == []


def test_a_stalled_login_form_is_cut(server: Server) -> None:
    sock = connect(server)
    sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: 200\r\n\r\nusername=admin&pass")
    status, headers, _ = parse(read_until_closed(sock))
    assert status == "HTTP/1.1 408 Request Timeout"
    assert headers["connection"] == "close"


def test_a_slow_but_steady_upload_is_not_cut(server: Server) -> None:
    """The body timeout is about silence, not about the length of the upload."""
    body = upload_body(samples.png_alpha((64, 64)))
    sock = connect(server)
    sock.sendall(upload_head(server.token, len(body)))
    pieces = [body[i:i + len(body) // 8 + 1] for i in range(0, len(body), len(body) // 8 + 1)]
    for piece in pieces:  # about 2.4 s in all, twice the body timeout
        time.sleep(0.3)
        sock.sendall(piece)
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(65536)
    sock.close()
    assert response.startswith(b"HTTP/1.1 201"), response[:300]


def test_an_idle_keepalive_connection_is_closed(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"PICHUB_SERVER__KEEPALIVE_TIMEOUT_S": "1",
                                            "PICHUB_SERVER__HEADER_TIMEOUT_S": "60"})
    try:
        sock = connect(server)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, _ = parse(read_until_closed(sock))
        assert status == "HTTP/1.1 200 OK" and "connection" not in headers  # kept alive, then
    finally:
        server.stop()


def test_over_the_cap_a_connection_gets_503_at_once(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"PICHUB_SERVER__MAX_CONNECTIONS": "3",
                                            "PICHUB_SERVER__HEADER_TIMEOUT_S": "2",
                                            "PICHUB_SERVER__KEEPALIVE_TIMEOUT_S": "60"})
    try:
        silent = [connect(server) for _ in range(3)]
        refused = connect(server)
        refused.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = parse(read_until_closed(refused))
        assert status == "HTTP/1.1 503 Service Unavailable"
        assert headers["connection"] == "close" and int(headers["retry-after"]) > 0
        assert json.loads(body)["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert [read_until_closed(sock) for sock in silent] == [b""] * 3  # head timeout
        assert requests.get(server.base + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


def test_a_low_open_files_limit_caps_connections_and_accept_never_fails(
        tmp_path: Path) -> None:
    """128 descriptors, 120 silent connections: the cap, derived from the limit, holds
    some; the others get a 503 at once; accept() never runs out, and /healthz answers
    once the silent ones time out. (Before: EMFILE, and /healthz hung.)"""
    server = Server(tmp_path / "data", nofile=128,
                    env={"PICHUB_SERVER__HEADER_TIMEOUT_S": "2",
                         "PICHUB_SERVER__KEEPALIVE_TIMEOUT_S": "60"})
    try:
        answers = [read_until_closed(sock) for sock in [connect(server) for _ in range(120)]]
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503 ")]
        assert refused and len(refused) + answers.count(b"") == len(answers)
        assert requests.get(server.base + "/healthz", timeout=10).status_code == 200
        assert server.proc.poll() is None
    finally:
        server.stop()
    for sign in ("Too many open files", "out of system resource", "EMFILE"):
        assert sign not in server.logged
    cap = int(re.findall(r"at most (\d+) connections", server.output)[0])
    assert 0 < cap < 64  # said at start-up; each connection may need a second descriptor
