"""SIGTERM drains: in-flight requests finish, nothing new starts, the process exits."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests import samples
from tests.support.server import Server

BOUNDARY = "pichubshutdown"
LOOPERS = 4
DRAINING = "shutting down"


def _body(image: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[]\"; "
            f"filename=\"slow.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + image + (
        f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"convertToWebP\"\r\n\r\n"
        f"false\r\n--{BOUNDARY}--\r\n").encode()


def _start_slow_upload(server: Server, token: str, body: bytes) -> socket.socket:
    """An upload whose headers and first half are sent: in flight until the rest comes."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(30)
    sock.sendall((f"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {token}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2])
    return sock


def _wait_in_flight(server: Server) -> None:
    """Until the upload's handler has started (its file is being received into data/tmp)."""
    deadline = time.monotonic() + 10
    while not list((server.data_dir / "tmp").glob("upload-*")):
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.02)


def _finish_slow_upload(sock: socket.socket, body: bytes) -> tuple[str, dict[str, str], bytes]:
    sock.sendall(body[len(body) // 2:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, {k.lower(): v for k, v in headers.items()}, payload


def _not_listening(server: Server) -> bool:
    try:
        requests.get(server.base + "/api/v1/square", timeout=2)
    except requests.ConnectionError:
        return True
    return False


def _stored_ids(server: Server, token: str) -> set[str]:
    resp = requests.get(f"{server.base}/api/v1/images?per_page=100",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert len(data) < 100, "raise per_page or page through"
    for image in data:
        got = requests.get(image["url"], timeout=10)
        assert got.status_code == 200 and len(got.content) == image["size"]
    return {image["id"] for image in data}


@dataclass
class Answer:
    started: float
    finished: float
    status: int
    connection: str | None
    image_id: str | None


@dataclass
class Looper:
    """A keep-alive client uploading small images in a loop until the server goes away."""

    base: str
    token: str
    answers: list[Answer] = field(default_factory=list)
    error: Exception | None = None

    def run(self) -> None:
        image = samples.png_alpha((32, 32))
        with requests.Session() as session:
            while len(self.answers) < 2000:  # bounded: the server stops long before
                started = time.monotonic()
                try:
                    resp = session.post(f"{self.base}/api/v1/upload",
                                        headers={"Authorization": f"Bearer {self.token}"},
                                        files={"files[]": ("k.png", image)},
                                        data={"convertToWebP": "false"}, timeout=30)
                except requests.RequestException as exc:  # closed, refused: the server is gone
                    self.error = exc
                    return
                image_id = resp.json()["data"][0]["id"] if resp.status_code == 201 else None
                self.answers.append(Answer(started, time.monotonic(), resp.status_code,
                                           resp.headers.get("Connection"), image_id))


def test_sigterm_drains_under_keepalive_load(tmp_path: Path) -> None:
    """Keep-alive clients loop uploads; one upload is half sent. After SIGTERM the process
    answers what was in flight (with `Connection: close`), starts nothing new, and exits
    soon after the last answer, long before `shutdown_timeout_s` (30 s)."""
    server = Server(tmp_path / "data")
    token = server.token
    body = _body(samples.png_alpha((300, 300)))
    slow = _start_slow_upload(server, token, body)
    _wait_in_flight(server)
    loopers = [Looper(server.base, token) for _ in range(LOOPERS)]
    threads = [threading.Thread(target=looper.run) for looper in loopers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while min(len(looper.answers) for looper in loopers) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)

    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    drain_seen = server.wait_for_line(DRAINING)
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert _not_listening(server), "a stopping server must not accept new connections"
    assert server.proc.poll() is None, "the half-sent upload is still in flight"
    status, headers, payload = _finish_slow_upload(slow, body)
    assert status.startswith("HTTP/1.1 201"), status
    assert headers.get("connection") == "close"
    assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    exited = time.monotonic()

    answers = [answer for looper in loopers for answer in looper.answers]
    accepted = {a.image_id for a in answers if a.image_id} | {json.loads(payload)["data"][0]["id"]}
    assert all(looper.error is not None for looper in loopers)
    for looper in loopers:  # each client had at most one request in flight at the drain
        assert sum(a.status == 201 and a.finished > drain_seen for a in looper.answers) <= 1
    late = [a for a in answers if a.started > drain_seen]
    assert all(a.status == 503 and a.connection == "close" for a in late), late
    assert exited - signalled < 10, server.logged
    assert "shutdown timeout" not in server.logged

    again = Server(tmp_path / "data")
    try:
        assert _stored_ids(again, token) == accepted  # every 201 stored, nothing else
    finally:
        again.stop()


def test_a_request_that_outlives_the_drain_timeout_is_cut(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"PICHUB_SERVER__SHUTDOWN_TIMEOUT_S": "1"})
    body = _body(samples.png_alpha((300, 300)))
    slow = _start_slow_upload(server, server.token, body)
    _wait_in_flight(server)
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "shutdown timeout: 1 request(s) cut" in server.logged
    assert slow.recv(65536) == b""  # closed without an answer
    slow.close()


def test_a_second_signal_cuts_the_drain_short(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")  # shutdown_timeout_s = 30
    body = _body(samples.png_alpha((300, 300)))
    slow = _start_slow_upload(server, server.token, body)
    _wait_in_flight(server)
    server.proc.send_signal(signal.SIGTERM)
    server.wait_for_line(DRAINING)
    server.proc.send_signal(signal.SIGINT)
    assert server.wait(timeout=10) in (0, -signal.SIGTERM)
    assert "second signal: 1 request(s) cut" in server.logged
    slow.close()
