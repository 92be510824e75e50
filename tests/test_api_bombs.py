"""Decompression bombs against a default instance: refused before any decode.

A 965-byte GIF declaring a 2000×2000 canvas and 40 frames used to be accepted
(201) and drove the server's peak RSS from ~75 MB to ~760 MB (80 frames:
1.4 GB); animated WebP and APNG took the same path. The decode budget
(`storage.max_decode_mb`) refuses them from their headers. Memory is measured
on a fresh server process (VmHWM is the peak of the whole process's life).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from pichub.app import create_app
from tests.conftest import Api, ApiFactory, make_settings
from tests.support import bombs
from tests.support.server import Server

PEAK_LIMIT_MB = 200
REFUSAL = ("file: decoding needs 611 MB (2000×2000 pixels × 40 frames × 4 bytes), "
           "more than the limit of 400 MB")


def peak_rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


def upload(server: Server, data: bytes) -> requests.Response:
    return requests.post(server.base + "/api/v1/upload",
                         headers={"Authorization": f"Bearer {server.token}"},
                         files={"files[]": ("bomb", data)}, timeout=120)


@pytest.mark.parametrize("bomb", [bombs.gif, bombs.webp, bombs.apng], ids=["gif", "webp", "apng"])
def test_animated_bombs_get_422_and_memory_stays_low(server: Server,
                                                     bomb: Callable[[], bytes]) -> None:
    resp = upload(server, bomb())
    assert resp.status_code == 422
    body = resp.json()
    assert body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    assert body["message"] == REFUSAL
    assert body["error"]["details"] == [{"field": "file", "message": REFUSAL[len("file: "):]}]
    assert peak_rss_mb(server.proc.pid) < PEAK_LIMIT_MB


def test_a_gif_frame_outside_its_canvas_gets_422_and_memory_stays_low(server: Server) -> None:
    """A 100×100 GIF whose last frame sits at 6000,6000: Pillow would grow the image
    to 36 MP for it, after the header checks (a 1×1 frame at 65000,65000: 17 GB)."""
    resp = upload(server, bombs.gif((100, 100), 40, last_at=(6000, 6000)))
    assert resp.status_code == 422
    assert resp.json()["message"] == "file: image data is truncated or corrupt"
    assert peak_rss_mb(server.proc.pid) < PEAK_LIMIT_MB


async def get_image(client: Any, url: str) -> tuple[int, bytes]:
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    async with client.get(path) as resp:
        return resp.status, await resp.read()


def animation(data: bytes) -> tuple[tuple[int, int], int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size, getattr(im, "n_frames", 1)


async def test_a_bomb_small_enough_is_stored_and_served_animated(api: Api) -> None:
    status, body = await api.upload(("small.gif", bombs.gif((500, 400), 40)))
    assert status == 201, body
    image = body["data"][0]
    assert (image["format"], image["width"], image["height"]) == ("webp", 500, 400)
    base = image["url"].rsplit(".", 1)[0]
    for ext in ("webp", "gif"):
        status, data = await get_image(api.client, f"{base}.{ext}?w=250")
        assert status == 200
        assert animation(data) == ((250, 200), 40)


async def test_img_refuses_a_stored_image_over_the_budget(
        make_api: ApiFactory, aiohttp_client: Any, tmp_path: Path) -> None:
    """Stored under a bigger budget (or before the budget existed), then served by an
    instance with the default one: transforms are refused, the original is still served."""
    generous = await make_api(make_settings(tmp_path, storage={"max_decode_mb": 1000}))
    status, body = await generous.upload(("bomb.gif", bombs.gif()), convertToWebP="false")
    assert status == 201, body
    url = body["data"][0]["url"]
    await generous.client.close()
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    async with client.get("/" + url.split("/", 3)[3] + "?w=16") as resp:
        assert resp.status == 400
        refused = await resp.json()
    assert refused["success"] is False and refused["error"]["code"] == "BAD_REQUEST"
    assert refused["message"] == f"Image is too large to transform: {REFUSAL[len('file: '):]}"
    assert refused["error"]["details"]["max_decode_mb"] == 400
    status, data = await get_image(client, url)
    assert status == 200 and data == bombs.gif()
    status, data = await get_image(client, url + "?w=16&fm=png")  # frame 1 alone is cheap
    assert status == 200 and animation(data) == ((16, 16), 1)
