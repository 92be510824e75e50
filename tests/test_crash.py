"""kill -9 after an acknowledged upload loses nothing."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import requests

from tests import samples
from tests.support.server import Server


def test_acknowledged_upload_survives_sigkill(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    headers = {"Authorization": f"Bearer {server.token}"}
    resp = requests.post(f"{server.base}/api/v1/upload", headers=headers,
                         files={"files[]": ("a.png", samples.png_alpha())},
                         data={"convertToWebP": "false"}, timeout=30)
    assert resp.status_code == 201
    image = resp.json()["data"][0]
    server.proc.send_signal(signal.SIGKILL)
    server.wait(10)

    again = Server(tmp_path / "data")
    try:
        got = requests.get(f"{again.base}/api/v1/images/{image['id']}", headers=headers,
                           timeout=10)
        assert got.status_code == 200
        data = requests.get(image["url"].replace(server.base, again.base), timeout=10).content
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
    finally:
        again.stop()
