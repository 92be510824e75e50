"""De-duplicated storage: the same bytes are on disk once, shared by hard links, and go with
their last image; nothing reveals another user's content; a crash leaves no lost blob or
orphan name."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import requests

from pichub.keys import BLOBS
from pichub.services.sweep import SETTLE_S
from tests import samples
from tests.conftest import Api
from tests.support import dbrows
from tests.support.server import Server


def store_files(api_or_root: Api | Path) -> list[Path]:
    root = api_or_root if isinstance(api_or_root, Path) else api_or_root.app[BLOBS].root
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]


def disk_bytes(root: Path) -> int:
    """Bytes the store's files hold on disk, each inode counted once."""
    inodes = {}
    for path in store_files(root):
        st = path.stat()
        inodes[st.st_ino] = st.st_size
    return sum(inodes.values())


async def upload(api: Api, data: bytes, token: str | None = None, **fields: Any) -> Any:
    status, body = await api.upload(("a.png", data), token=token, **fields)
    assert status == 201, body
    return body["data"][0]


def blob(api: Api, image: dict[str, Any]) -> Path:
    return Path(api.app[BLOBS].path(image["id"], image["url"].rsplit(".", 1)[1]))


async def test_same_bytes_twice_are_stored_once(api: Api) -> None:
    photo = samples.jpeg((1400, 1000))  # big enough for a working copy
    first = await upload(api, photo)
    root = api.app[BLOBS].root
    once = disk_bytes(root)
    second = await upload(api, photo)
    assert second["id"] != first["id"] and second["sha256"] == first["sha256"]
    assert first["duplicate_of"] is None and second["duplicate_of"] == first["id"]
    a, b = blob(api, first).stat(), blob(api, second).stat()
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert disk_bytes(root) == once  # working copies shared too
    copies = api.app[BLOBS].working_copies(second["id"])
    assert copies and all(p.stat().st_nlink == 2 for p in copies.values())
    # each image is whole on its own: same bytes served, each counted in its owner's used bytes
    for image in (first, second):
        served = await api.client.get(f"/img/{image['id']}.webp")
        assert hashlib.sha256(await served.read()).hexdigest() == image["sha256"]
    used = dbrows.rows(api, "SELECT used_bytes FROM users")[0][0]
    assert used == first["size"] + second["size"]


async def test_bytes_go_with_their_last_image(api: Api) -> None:
    photo = samples.jpeg((120, 90))
    images = [await upload(api, photo) for _ in range(3)]
    path = blob(api, images[2])
    for n, image in enumerate(images[:2]):
        status, _ = await api.call("DELETE", f"/api/v1/images/{image['id']}")
        assert status == 200
        assert not blob(api, image).exists()
        assert path.stat().st_nlink == 2 - n
        got = await api.client.get(f"/img/{images[2]['id']}.webp")
        assert got.status == 200
        assert hashlib.sha256(await got.read()).hexdigest() == images[2]["sha256"]
    await api.call("DELETE", f"/api/v1/images/{images[2]['id']}")
    assert store_files(api) == []


async def test_across_users_the_bytes_are_shared_and_nothing_is_revealed(api: Api) -> None:
    photo = samples.jpeg((200, 100))
    mine = await upload(api, photo)
    bob = await api.new_user("bob", quota_mb=1)
    theirs = await upload(api, photo, token=bob)
    assert theirs["duplicate_of"] is None  # alice's image is not named to bob
    assert blob(api, mine).stat().st_ino == blob(api, theirs).stat().st_ino
    await api.call("DELETE", f"/api/v1/images/{mine['id']}")
    status, body = await api.call("GET", f"/api/v1/images/{theirs['id']}", token=bob)
    assert status == 200 and body["data"]["duplicate_of"] is None
    got = await api.client.get(f"/img/{theirs['id']}.webp")
    assert hashlib.sha256(await got.read()).hexdigest() == theirs["sha256"]


async def test_a_donor_gone_from_disk_means_the_bytes_are_written_again(api: Api) -> None:
    photo = samples.jpeg((64, 64))
    first = await upload(api, photo, convertToWebP="false")
    blob(api, first).unlink()  # as if deleted between the lookup and the link
    second = await upload(api, photo, convertToWebP="false")
    path = blob(api, second)
    assert path.stat().st_nlink == 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == second["sha256"]


async def test_different_options_are_different_bytes(api: Api) -> None:
    photo = samples.jpeg((90, 60))
    webp = await upload(api, photo)
    kept = await upload(api, photo, convertToWebP="false")
    assert webp["sha256"] != kept["sha256"] and kept["duplicate_of"] is None
    assert blob(api, webp).stat().st_ino != blob(api, kept).stat().st_ino


def test_kill_9_during_dedup_uploads_and_deletes_leaves_every_count_right(
        tmp_path: Path) -> None:
    """Three uploaders send the same few photos and delete some of what they stored while
    the server is killed (SIGKILL) at random moments; after each restart every row has its
    whole blob, every name in the store belongs to a row, and each file's link count is
    the number of names it has."""
    data = tmp_path / "data"
    photos = [samples.jpeg((40 + n, 30)) for n in range(3)]
    rng = random.Random(14)
    token = ""
    for round_no in range(3):
        server = Server(data)
        token = token or server.token
        headers = {"Authorization": f"Bearer {token}"}
        stop = threading.Event()

        def churn(seed: float, server: Server = server, headers: dict[str, str] = headers,
                  stop: threading.Event = stop) -> None:
            local = random.Random(seed)
            while not stop.is_set():
                try:
                    resp = requests.post(
                        f"{server.base}/api/v1/upload", headers=headers, timeout=10,
                        files={"files[]": ("p.jpg", local.choice(photos))})
                    image = resp.json()["data"][0]
                    if local.random() < 0.5:
                        requests.delete(f"{server.base}/api/v1/images/{image['id']}",
                                        headers=headers, timeout=10)
                except (requests.RequestException, ValueError, KeyError):
                    return

        threads = [threading.Thread(target=churn, args=(rng.random(),)) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.5 + rng.random() * 1.5)
        server.proc.send_signal(signal.SIGKILL)
        server.wait(10)
        stop.set()
        for thread in threads:
            thread.join(20)
        time.sleep(SETTLE_S + 0.1)  # the sweep only takes files older than its start
        sweeper = Server(data)  # which sweeps the names a crash left without a row
        sweeper.wait_for_line("blob sweep done", timeout=60)
        sweeper.stop()
        _assert_store_matches_rows(data, f"round {round_no}")


def _assert_store_matches_rows(data: Path, where: str) -> None:
    with sqlite3.connect(data / "pichub.db") as conn:
        rows = conn.execute("SELECT id, format, sha256 FROM images").fetchall()
    root = data / "blobs"
    names: dict[int, int] = {}
    for path in store_files(root):
        assert not path.name.startswith(".tmp-"), (where, path)
        names[path.stat().st_ino] = names.get(path.stat().st_ino, 0) + 1
        assert path.name.split(".", 1)[0] in {r[0] for r in rows}, (where, "orphan", path)
    for image_id, fmt, digest in rows:
        ext = "jpg" if fmt == "jpeg" else fmt
        path = root / image_id[:2] / image_id[2:4] / f"{image_id}.{ext}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, (where, image_id)
    for path in store_files(root):
        st = path.stat()
        assert st.st_nlink == names[st.st_ino], (where, path)
