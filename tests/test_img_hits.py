"""The cache-hit lane (pichub.web.hits) behind pichub's Runner, as `pichub serve` runs it.

Each test makes a variant through the app (the first request is a miss), then
asks for it again: the lane must answer a plain hit exactly as the app did
(same status, bytes and headers, counted in /metrics by route template, one
access-log line), and must hand everything else to the app, whose answers
(400, 403, 304, 206, 404) must not change. `lane.answered` says which of the
two answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from pichub.app import create_app
from pichub.config import Settings
from pichub.imaging.spec import sign
from pichub.keys import DB, PIPELINE, SETTINGS, TRUSTED_PROXIES
from pichub.server import Runner
from pichub.services import accounts
from pichub.web.connections import Limits
from pichub.web.hits import HitLane
from pichub.web.observe import access_logger
from tests import samples
from tests.conftest import make_settings

#: Headers that differ between two answers of the same thing.
PER_ANSWER = {"date"}


@dataclass
class Served:
    """A PicHub app behind `Runner` with the lane, on 127.0.0.1, and a client session."""

    base: str
    app: web.Application
    lane: HitLane
    http: aiohttp.ClientSession
    token: str

    async def get(self, path: str, method: str = "GET",
                  **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
        async with self.http.request(method, self.base + path, headers=headers) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.read()

    async def upload(self, data: bytes, **fields: str) -> str:
        form = aiohttp.FormData()
        form.add_field("files[]", data, filename="a.jpg", content_type="image/jpeg")
        for name, value in fields.items():
            form.add_field(name, value)
        async with self.http.post(self.base + "/api/v1/upload", data=form,
                                  headers={"Authorization": f"Bearer {self.token}"}) as resp:
            body = await resp.json()
            assert resp.status == 201, body
            return str(body["data"][0]["id"])

    async def delete(self, image_id: str) -> None:
        async with self.http.delete(f"{self.base}/api/v1/images/{image_id}",
                                    headers={"Authorization": f"Bearer {self.token}"}) as resp:
            assert resp.status == 200


Serve = Callable[[Settings], Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[Runner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(settings: Settings) -> Served:
        app = create_app(settings)
        runner = Runner(app, Limits(10, 10, 100), lane=HitLane, keepalive_timeout=30,
                        access_log_class=access_logger(app[TRUSTED_PROXIES]))
        runners.append(runner)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        await accounts.create_user(app[DB], "alice", "password-alice", is_admin=True)
        token = await accounts.create_token(app[DB], "alice")
        lane = runner.guarded.lane
        assert isinstance(lane, HitLane)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Served(f"http://127.0.0.1:{site.port}", app, lane, http, token)

    yield start
    for http in sessions:
        await http.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def served(serve: Serve, tmp_path: Path) -> Served:
    return await serve(make_settings(tmp_path))


Answer = tuple[int, CIMultiDict[str], bytes]


def same_answer(first: Answer, again: Answer) -> None:
    """Equal status, body and headers (but the date)."""
    assert first[0] == again[0] and first[2] == again[2]
    assert ({k.lower(): v for k, v in first[1].items() if k.lower() not in PER_ANSWER}
            == {k.lower(): v for k, v in again[1].items() if k.lower() not in PER_ANSWER})


async def test_a_hit_takes_the_lane_and_gets_the_views_answer(served: Served) -> None:
    image_id = await served.upload(samples.jpeg((640, 480)))
    for url in (f"/img/{image_id}.webp?w=200&h=150&fit=cover&q=80", f"/img/{image_id}?w=64"):
        answered = served.lane.answered
        first = await served.get(url)  # a miss: made and answered by the view
        assert served.lane.answered == answered
        again = await served.get(url)
        assert served.lane.answered == answered + 1
        same_answer(first, again)
        headers = again[1]
        assert again[0] == 200 and "Vary" not in headers
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert headers["Accept-Ranges"] == "bytes"
        assert int(headers["Content-Length"]) == len(again[2])
        head = await served.get(url, method="HEAD")
        assert served.lane.answered == answered + 2
        assert head[0] == 200 and head[2] == b""
        same_answer((200, head[1], b""), (200, headers, b""))
    text = (await served.get("/metrics"))[2].decode()
    for method, count in (("GET", 2), ("HEAD", 1)):  # the miss and the hit; the hit
        for route in ("/img/{id}.{ext}", "/img/{id}"):
            assert (f'pichub_http_requests_total{{method="{method}",route="{route}",'
                    f'status="200"}} {count}.0') in text


async def test_conditional_and_range_requests_go_to_the_view(served: Served) -> None:
    image_id = await served.upload(samples.jpeg((640, 480)))
    url = f"/img/{image_id}.webp?w=120"
    _, headers, body = await served.get(url)
    await served.get(url)
    answered = served.lane.answered
    status, not_modified, empty = await served.get(url, **{"If-None-Match": headers["ETag"]})
    assert status == 304 and empty == b"" and not_modified["ETag"] == headers["ETag"]
    since = headers["Last-Modified"]
    assert (await served.get(url, **{"If-Modified-Since": since}))[0] == 304
    status, partial, piece = await served.get(url, Range="bytes=0-9")
    assert status == 206 and piece == body[:10] and partial["ETag"] == headers["ETag"]
    assert (await served.get(url, **{"If-None-Match": '"other"'}))[0] == 200
    assert served.lane.answered == answered


async def test_a_foreign_host_is_refused_by_the_view(served: Served) -> None:
    image_id = await served.upload(samples.jpeg())
    url = f"/img/{image_id}.webp?w=20"
    await served.get(url)
    await served.get(url)
    answered = served.lane.answered
    status, _, body = await served.get(url, Host="evil.example")
    assert status == 400 and b"BAD_REQUEST" in body
    assert served.lane.answered == answered


async def test_fm_auto_hits_vary_by_accept(served: Served) -> None:
    image_id = await served.upload(samples.jpeg((300, 200)))
    url = f"/img/{image_id}?w=50&fm=auto"
    kinds = {"image/avif,image/webp,*/*": "image/avif", "image/webp,*/*": "image/webp",
             "*/*": "image/jpeg"}
    for accept in kinds:
        await served.get(url, Accept=accept)  # one miss per negotiated format
    answered = served.lane.answered
    for accept, mime in kinds.items():
        status, headers, _ = await served.get(url, Accept=accept)
        assert status == 200 and headers["Content-Type"] == mime
        assert headers["Vary"] == "Accept"
    assert served.lane.answered == answered + len(kinds)


async def test_signed_urls_are_checked_on_every_hit(serve: Serve, tmp_path: Path) -> None:
    served = await serve(make_settings(tmp_path, images={"signing_key": "k3y"}))
    image_id = await served.upload(samples.jpeg())
    path = f"/img/{image_id}.webp"
    good = sign(path, {"w": "30"}, "k3y")
    assert (await served.get(f"{path}?w=30&s={good}"))[0] == 200  # the miss
    assert (await served.get(f"{path}?w=30&s={good}"))[0] == 200
    assert served.lane.answered == 1
    for url in (f"{path}?w=30", f"{path}?w=30&s={sign(path, {'w': '30'}, 'other')}",
                f"{path}?w=30&h=30&s={good}"):
        status, _, body = await served.get(url)
        assert status == 403 and b"FORBIDDEN" in body, url
    assert served.lane.answered == 1


async def test_hits_are_counted_and_logged_as_through_the_view(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = served.app[PIPELINE]
    # Before the first request: aiohttp asks whether to log once per connection.
    with caplog.at_level(logging.INFO, logger="pichub.access"):
        image_id = await served.upload(samples.jpeg())
        url = f"/img/{image_id}.webp?w=40"
        await served.get(url)
        hits = pipeline.cache_hits
        for _ in range(3):
            await served.get(url)
        for _ in range(50):  # the line is written once the response has been sent
            if len([r for r in caplog.records if url in r.getMessage()]) == 4:
                break
            await asyncio.sleep(0.02)
    assert served.lane.answered == 3 and pipeline.cache_hits == hits + 3
    lines = [r.getMessage() for r in caplog.records if r.name == "pichub.access" and url in
             r.getMessage()]
    assert len(lines) == 4 and len(set(line.split(" duration_ms=")[0] for line in lines)) == 1
    assert all(f'path="{url}" status=200' in line and "client=127.0.0.1" in line
               for line in lines)
    _, _, text = await served.get("/metrics")
    assert ('pichub_http_requests_total{method="GET",route="/img/{id}.{ext}",status="200"} 4.0'
            in text.decode())
    assert ('pichub_http_request_duration_seconds_count{route="/img/{id}.{ext}"} 4.0'
            in text.decode())
    assert f"pichub_variant_cache_hits_total {float(pipeline.cache_hits)}" in text.decode()


async def test_a_deleted_image_is_gone_for_the_lane_too(served: Served) -> None:
    image_id = await served.upload(samples.jpeg())
    url = f"/img/{image_id}.webp?w=48"
    await served.get(url)
    assert (await served.get(url))[0] == 200 and served.lane.answered == 1
    await served.delete(image_id)
    status, _, body = await served.get(url)
    assert status == 404 and b"NOT_FOUND" in body
    assert served.lane.answered == 1


async def test_a_variant_file_gone_under_the_lane_is_the_views_404(served: Served) -> None:
    """The index still lists it, the file is gone (a purge racing the hit): the lane hands
    the request to the app, which answers with its envelope."""
    image_id = await served.upload(samples.jpeg())
    url = f"/img/{image_id}.webp?w=50"
    await served.get(url)
    cache = Path(served.app[SETTINGS].storage.data_dir) / "cache"
    [variant] = [p for p in cache.rglob("*.webp")]
    variant.unlink()
    status, headers, body = await served.get(url)
    assert status == 404 and b"NOT_FOUND" in body
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert served.lane.answered == 0


async def test_what_the_lane_declines_is_answered_as_before(served: Served) -> None:
    """Originals, root URLs, bad parameters and bodies go to the view, unchanged."""
    image_id = await served.upload(samples.jpeg())
    await served.get(f"/img/{image_id}.webp?w=30")
    for url in (f"/img/{image_id}.webp", f"/{image_id}.webp?w=30"):
        assert (await served.get(url))[0] == 200
    for query in ("w=0", "fit=stretch", "q=101"):
        status, _, body = await served.get(f"/img/{image_id}.webp?{query}")
        assert status == 400 and b"BAD_REQUEST" in body
    assert (await served.get(f"/img/{image_id}.bmp?w=30"))[0] == 404
    async with served.http.get(f"{served.base}/img/{image_id}.webp?w=30",
                               data=b"a body") as resp:
        assert resp.status == 200
    assert served.lane.answered == 0


async def test_a_private_image_never_takes_the_lane(served: Served) -> None:
    image_id = await served.upload(samples.jpeg((640, 480)), visibility="private")
    url = f"/img/{image_id}.webp?w=200"
    owner = {"Authorization": f"Bearer {served.token}"}
    answered = served.lane.answered
    for _ in range(2):  # a miss, then a cached variant: the app checks the owner both times
        status, headers, body = await served.get(url, **owner)
        assert status == 200 and body[:4] == b"RIFF"
        assert headers["Cache-Control"] == "private, no-cache"
    status, headers, body = await served.get(url)  # anonymous, the variant in the cache
    assert status == 404 and b"RIFF" not in body
    assert headers["Content-Type"].startswith("application/json")
    assert served.lane.answered == answered
