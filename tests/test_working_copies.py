"""Working copies through the real service: made at upload, used by /img, deleted with their
image, made again lazily or by `pichub backfill`, never left without their image."""

from __future__ import annotations

import io
import signal
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from pichub.blobs import BlobStore
from pichub.imaging.spec import TransformSpec
from pichub.imaging.transform import transform
from pichub.keys import BLOBS, PIPELINE
from pichub.services.sweep import SETTLE_S
from tests import samples
from tests.conftest import Api
from tests.support.quality import ssim
from tests.support.server import Server, pichub
from tests.test_imaging_working import photo

BIG = (2400, 1600)


def _jpeg(size: tuple[int, int] = BIG, **save: Any) -> bytes:
    out = io.BytesIO()
    photo(size).save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def _copies(blobs: BlobStore, image_id: str) -> dict[int, Path]:
    return blobs.working_copies(image_id)


async def _upload(api: Api, data: bytes, **fields: Any) -> dict[str, Any]:
    status, body = await api.upload(("photo.jpg", data), **fields)
    assert status == 201, body
    return dict(body["data"][0])


async def _get(api: Api, path: str) -> bytes:
    async with api.client.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def test_an_upload_keeps_copies_that_variants_use_and_delete_removes(api: Api) -> None:
    image = await _upload(api, _jpeg())  # default options: stored as WebP
    blobs: BlobStore = api.app[BLOBS]
    copies = _copies(blobs, image["id"])
    assert sorted(copies) == [512, 1600]
    with Image.open(copies[1600]) as im:
        assert im.format == "JPEG" and im.size == (1600, 1067)
    pipeline = api.app[PIPELINE]
    data = await _get(api, f"/img/{image['id']}.png?w=800&h=600&fit=cover")
    with Image.open(io.BytesIO(data)) as served:
        assert served.size == (800, 600)
        original = blobs.path(image["id"], "webp")
        spec = TransformSpec.parse({"w": "800", "h": "600", "fm": "png"}, None, "webp", 4096)
        with Image.open(io.BytesIO(transform(original, "webp", spec).data)) as direct:
            assert ssim(served, direct) >= 0.98
    assert pipeline.transforms_run == 1
    status, _ = await api.call("DELETE", f"/api/v1/images/{image['id']}")
    assert status == 200
    assert _copies(blobs, image["id"]) == {}
    assert not original.exists()


async def test_an_upright_rotated_photo_is_served_the_same_through_its_copy(api: Api) -> None:
    rotated = _jpeg((1600, 2400))  # portrait pixels…
    with Image.open(io.BytesIO(rotated)) as im:
        exif = Image.Exif()
        exif[0x0112] = 6  # …shown rotated: 2400×1600 upright
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90, exif=exif.tobytes())
    image = await _upload(api, out.getvalue())
    assert (image["width"], image["height"]) == (2400, 1600)
    blobs: BlobStore = api.app[BLOBS]
    assert sorted(_copies(blobs, image["id"])) == [512, 1600]
    for query, size in (("w=400&h=400&fit=outside", (600, 400)), ("h=300", (450, 300))):
        data = await _get(api, f"/img/{image['id']}.png?{query}")
        with Image.open(io.BytesIO(data)) as served:
            assert served.size == size


async def test_small_and_animated_images_get_no_copies(api: Api) -> None:
    small = await _upload(api, samples.jpeg((700, 500)))
    animated = await _upload(api, samples.animated_gif(4, (900, 700)))
    blobs: BlobStore = api.app[BLOBS]
    assert _copies(blobs, small["id"]) == {} and _copies(blobs, animated["id"]) == {}


async def test_copies_missing_are_made_by_the_first_transform(api: Api) -> None:
    image = await _upload(api, _jpeg(), convertToWebP="false")  # kept as the JPEG it was
    blobs: BlobStore = api.app[BLOBS]
    for path in _copies(blobs, image["id"]).values():
        path.unlink()  # as after a restore, or for an image stored before copies existed
    await _get(api, f"/img/{image['id']}.webp?w=300")  # from the original: leaves copies
    assert sorted(_copies(blobs, image["id"])) == [512, 1600]


async def test_batch_uploads_are_processed_together_and_keep_their_order(api: Api) -> None:
    files = [("a.jpg", _jpeg((1800, 1200))), ("bad.svg", samples.SVG),
             ("c.png", samples.png_alpha((900, 700))), ("d.jpg", samples.jpeg((300, 200)))]
    status, body = await api.upload(*files)
    assert status == 201
    assert [i["original_name"] for i in body["data"]] == ["a.jpg", "c.png", "d.jpg"]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "UNSUPPORTED_MEDIA_TYPE")]
    status, listed = await api.call("GET", "/api/v1/images")
    assert [i["original_name"] for i in listed["data"]] == ["d.jpg", "c.png", "a.jpg"]


# --- back-fill and crashes, against real processes ---------------------------------------------


def _images(data_dir: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(data_dir / "pichub.db")) as conn:
        return conn.execute("SELECT id, format FROM images ORDER BY seq").fetchall()


def test_backfill_makes_what_is_missing_resumably_and_idempotently(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        auth = {"Authorization": f"Bearer {server.token}"}
        for name in ("a", "b", "c"):
            resp = requests.post(server.base + "/api/v1/upload", headers=auth, timeout=60,
                                 files={"file": (f"{name}.jpg", _jpeg((1600, 1200)))})
            assert resp.status_code == 201
    finally:
        server.stop()
    blobs = BlobStore(tmp_path / "data" / "blobs")
    ids = [image_id for image_id, _ in _images(tmp_path / "data")]
    for image_id in ids:
        for path in blobs.working_copies(image_id).values():
            path.unlink()
    data = ["--data-dir", str(tmp_path / "data")]
    first = pichub("backfill", "--limit", "2", *data)  # stopped part-way…
    assert first.returncode == 0, first.stderr
    assert "looked at 2 image(s): 2 working copies made" in first.stdout, first.stdout
    # 1600 px long: a 512 copy only (the 1600 level is for originals of 2400 px and more).
    assert [sorted(blobs.working_copies(i)) for i in ids] == [[512], [512], []]
    again = pichub("backfill", *data)  # …and resumed: only the third is left to do
    assert "looked at 3 image(s): 1 working copies made" in again.stdout, again.stdout
    assert all(blobs.working_copies(i) for i in ids)
    last = pichub("backfill", *data)
    assert "0 working copies made" in last.stdout


def test_kill_9_during_uploads_leaves_no_copy_without_its_image(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = Server(data_dir)
    token = server.token
    photo_bytes = _jpeg()
    for delay in (0.3, 0.8, 1.4):
        stop = threading.Event()

        def upload_loop(base: str = server.base, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    requests.post(base + "/api/v1/upload", timeout=30,
                                  headers={"Authorization": f"Bearer {token}"},
                                  files={"file": ("p.jpg", photo_bytes)})
                except requests.RequestException:
                    return

        loops = [threading.Thread(target=upload_loop) for _ in range(3)]
        for loop in loops:
            loop.start()
        time.sleep(delay)
        server.proc.send_signal(signal.SIGKILL)
        server.wait(10)
        stop.set()
        for loop in loops:
            loop.join(30)
        server = Server(data_dir)
    server.stop()
    time.sleep(SETTLE_S)  # what the kills left behind is older than the next start-up...
    server = Server(data_dir)
    server.wait_for_line("blob sweep done")  # ...whose sweep runs in the background
    server.stop()
    known = {image_id for image_id, _ in _images(data_dir)}
    blobs = BlobStore(data_dir / "blobs")
    for path in blobs.walk():
        assert path.name.split(".", 1)[0] in known, path  # no blob or copy without its row
    for image_id, fmt in _images(data_dir):
        assert blobs.path(image_id, "jpg" if fmt == "jpeg" else fmt).is_file()
