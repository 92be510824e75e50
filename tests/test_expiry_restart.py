"""A real short expiry through a `pichub serve` subprocess stopped before the expiry and
started again after it on the same data directory: the image answers 410 (or 404 once
swept) and the sweep at start-up deletes its row, its files and its variants, with the
`image.deleted` event (`reason: expired`) in the events table. No clock is faked here:
the sweep is driven by the stored `expires_at` only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import requests

from tests import samples
from tests.support.server import Server

EXPIRES_IN = 2


def files_of(data_dir: Path, image_id: str) -> list[Path]:
    """Every file of the image under the data directory: its stored file (blobs/…/{id}.jpg)
    and its cached variants (cache/…/{id}/…)."""
    return [path for path in data_dir.rglob("*") if path.is_file()
            and image_id in str(path.relative_to(data_dir))]


def rows(data_dir: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "pichub.db") as conn:
        return conn.execute(sql, args).fetchall()


def test_an_expiry_that_comes_while_the_server_is_stopped_is_swept_at_start(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = Server(data_dir)
    try:
        token = server.token
        resp = requests.post(f"{server.base}/api/v1/upload",
                             headers={"Authorization": f"Bearer {token}"},
                             files={"files[]": ("a.jpg", samples.jpeg((640, 480)))},
                             data={"expires_in": str(EXPIRES_IN), "convertToWebP": "false"},
                             timeout=30)
        uploaded_at = time.monotonic()
        assert resp.status_code == 201, resp.text
        image = resp.json()["data"][0]
        image_id = image["id"]
        assert image["expires_at"] is not None
        for path in (f"/img/{image_id}.jpg", f"/img/{image_id}.jpg?w=100"):
            got = requests.get(server.base + path, timeout=30)
            assert got.status_code == 200 and got.content[:2] == b"\xff\xd8"
        before = files_of(data_dir, image_id)
        assert {path.relative_to(data_dir).parts[0] for path in before} == {
            "blobs", "cache"}, before  # the stored file and the variant, on disk
    finally:
        server.stop()  # SIGTERM
    assert time.monotonic() - uploaded_at < EXPIRES_IN, "stopped after the expiry: too slow"
    # Stopped: nothing has deleted it; the expiry is only in the database.
    assert rows(data_dir, "SELECT id FROM images") == [(image_id,)]
    assert files_of(data_dir, image_id) == before
    time.sleep(EXPIRES_IN + 0.5 - (time.monotonic() - uploaded_at))

    again = Server(data_dir)
    try:
        got = requests.get(f"{again.base}/img/{image_id}.jpg", timeout=30)
        assert got.status_code in (404, 410) and got.content[:2] != b"\xff\xd8"
        for _ in range(100):  # the sweep runs at start-up: the row, then (after the commit)
            if not rows(data_dir, "SELECT id FROM images") and not files_of(data_dir, image_id):
                break  # the files
            time.sleep(0.05)
        assert rows(data_dir, "SELECT id FROM images") == []
        assert files_of(data_dir, image_id) == []
        for path in (f"/img/{image_id}.jpg", f"/img/{image_id}.jpg?w=100"):
            got = requests.get(again.base + path, timeout=30)
            assert got.status_code == 404 and got.content[:2] != b"\xff\xd8"
        events = [json.loads(str(payload))["data"] for (payload,) in rows(
            data_dir, "SELECT payload FROM events WHERE type = 'image.deleted'")]
        assert [(e["id"], e["reason"], e["expires_at"]) for e in events] == [
            (image_id, "expired", image["expires_at"])]
        assert "expired: deleted" in again.output + again.logged
    finally:
        again.stop()
