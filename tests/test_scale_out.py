"""Two `pichub serve` processes behind nginx, sharing one configuration (docs/scale-out.md).

Both read the same config file: the database and storage sections come from
tests/support/backends.py (by default one SQLite file and one data directory on this
machine, which SQLite's WAL makes correct across processes; with
PICHUB_TEST_BACKEND=scale, PostgreSQL and an S3 bucket, each process then with a data
directory of its own as on separate machines), rate limits live in a real redis-server,
and a real webhook receiver gets every event. nginx spreads requests round-robin over
the two. Scenarios: what one process writes the other reads and deletes, and a delete
through one stops the other's cached variants within the change feed's bound; 200
uploads through nginx give 200 `image.uploaded` deliveries, none twice; `kill -9` of one
process under load loses no upload that was answered 201, and the deliveries it had
leased are made by the other once their lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from pichub.services.changefeed import POLL_S
from pichub.webhooks.worker import LEASE_MARGIN_S
from tests import samples
from tests.support import backends
from tests.support.nginx import NGINX, OPENSSL, Nginx
from tests.support.redis import redis_server
from tests.support.seaweed import Seaweed
from tests.support.server import Server
from tests.webhook_receiver import Receiver

if (NGINX is None or OPENSSL is None) and os.environ.get("CI") != "true":
    pytest.skip("nginx or openssl not installed (apt-get install nginx openssl); "
                "required when CI=true", allow_module_level=True)

SHARD_WEIGHT = 20  # each test here starts servers (tests/support/shards.py)
SECRET = "0123456789abcdef" * 4  # auth.secret_key: one for every process
WEBHOOK_TIMEOUT_S = 1.0  # a lease is this plus LEASE_MARGIN_S (webhooks/worker.py)
LEASE_S = WEBHOOK_TIMEOUT_S + LEASE_MARGIN_S
DELIVERY_DELAY_S = 0.05  # the receiver's answer time


@dataclass
class SlowReceiver(Receiver):
    """The test webhook receiver on a thread of its own, answering after DELIVERY_DELAY_S;
    while `holding`, it answers nothing (so each process has a delivery under way)."""

    arrived_at: list[float] = field(default_factory=list)  # time.monotonic() of each request
    held: int = 0
    release: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived_at.append(time.monotonic())
        response = await super().handle(request)
        if self.release is not None:
            self.held += 1
            await self.release.wait()
        await asyncio.sleep(DELIVERY_DELAY_S)
        return response

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Hold every request that arrives until the block ends."""
        assert self.loop is not None
        release = asyncio.Event()
        self.held, self.release = 0, release
        try:
            yield
        finally:
            self.release = None
            self.loop.call_soon_threadsafe(release.set)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Serve on a thread of its own while the block runs."""
        loop = self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert started.wait(10)
        try:
            yield
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    def repeats(self, since: float) -> list[float]:
        """Seconds after `since` at which an event that had arrived before then came again."""
        first: dict[str, float] = {}
        again = []
        for received, at in zip(list(self.received), list(self.arrived_at), strict=False):
            event_id = received.event["id"]
            if event_id in first and first[event_id] <= since < at:
                again.append(at - since)
            first.setdefault(event_id, at)
        return again

    def uploaded(self) -> list[tuple[str, str]]:
        """(event id, image id) of every image.uploaded delivery received so far."""
        return [(r.event["id"], r.event["data"]["id"]) for r in list(self.received)
                if r.event["type"] == "image.uploaded"]


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = []
    for name, values in sections.items():
        flat = {k: v for k, v in values.items() if not isinstance(v, dict) and v is not None}
        lines += [f"[{name}]", *(f"{k} = {value(v)}" for k, v in flat.items()), ""]
        for sub, table in values.items():
            if isinstance(table, dict):
                lines += [f"[{name}.{sub}]", *(f"{k} = {value(v)}" for k, v in table.items()
                                                 if v is not None), ""]
    return "\n".join(lines)


def shared_config(tmp_path: Path, redis_url: str, hook_url: str,
                  overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """The one config file every process reads."""
    sections: dict[str, dict[str, Any]] = {
        "server": {"trusted_proxies": ["127.0.0.1/32"]},
        "storage": {"min_free_mb": 0},
        "rate_limits": {"enabled": True, "storage_uri": redis_url, "api": "100000/hour",
                        "upload": "100000/hour", "img_miss": "100000/hour"},
        "webhooks": {"url": hook_url, "secret": "whsec_" + "a" * 32,
                     "allow_private_networks": True, "timeout_s": WEBHOOK_TIMEOUT_S,
                     "backoff_base_s": 0.5},
        "auth": {"secret_key": SECRET},
    }
    for chosen in (backends.sections(tmp_path), overrides or {}):
        for name, values in chosen.items():
            sections.setdefault(name, {}).update(values)
    path = tmp_path / "config.toml"
    path.write_text(_toml(sections))
    return path


@dataclass
class Cluster:
    first: Server
    second: Server
    nginx: Nginx
    receiver: SlowReceiver
    token: str
    config: Path  # the one file both read

    @property
    def sections(self) -> dict[str, Any]:
        return tomllib.loads(self.config.read_text())

    def call(self, method: str, base: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, base + path, verify=self.nginx.cert, timeout=30,
                                headers={"Authorization": f"Bearer {self.token}"}, **kwargs)

    def upload(self, base: str, data: bytes | None = None) -> requests.Response:
        return self.call("POST", base, "/api/v1/upload",
                         files={"files[]": ("a.jpg", data or samples.jpeg())})

    def uploads(self, count: int, base: str, during: Any = None) -> list[str]:
        """`count` uploads, 8 at a time; the ids of those answered 201. `during` runs once
        a third of them have been answered."""
        done = threading.Semaphore(0)

        def one(_: int) -> str | None:
            try:
                resp = self.upload(base)
            except requests.RequestException:
                return None
            finally:
                done.release()
            return str(resp.json()["data"][0]["id"]) if resp.status_code == 201 else None

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, n) for n in range(count)]
            if during is not None:
                for _ in range(count // 3):
                    done.acquire()
                during()
            return [i for f in futures if (i := f.result()) is not None]


@contextlib.contextmanager
def running_cluster(tmp_path: Path, **overrides: dict[str, Any]) -> Iterator[Cluster]:
    """Two processes behind nginx on the shared config, with `overrides` of its sections."""
    receiver = SlowReceiver()
    with receiver.running(), redis_server() as redis_url:
        config = shared_config(tmp_path, redis_url, receiver.url, overrides)
        env = {"PICHUB_CONFIG": str(config), "PICHUB_RATE_LIMITS__ENABLED": "true"}
        shared = tmp_path / "data"
        first = Server(tmp_path / "data1" if backends.SCALE else shared, env)
        second = Server(tmp_path / "data2" if backends.SCALE else shared, env)
        pair = (f"server 127.0.0.1:{first.port}; server 127.0.0.1:{second.port};")
        nginx = Nginx(tmp_path / "nginx", first.port, {"server 127.0.0.1:8080;": pair})
        try:
            yield Cluster(first, second, nginx, receiver, first.token, config)
        finally:
            nginx.stop()
            for server in (first, second):
                if server.proc.poll() is None:
                    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("scale")) as running:
        yield running


def _wait(predicate: Any, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, what
        time.sleep(0.05)
    return time.monotonic() - started


def test_one_writes_the_other_reads_and_deletes(cluster: Cluster) -> None:
    first, second, front = cluster.first.base, cluster.second.base, cluster.nginx.https
    resp = cluster.upload(first)
    assert resp.status_code == 201, resp.text
    image_id = resp.json()["data"][0]["id"]
    variant = f"/img/{image_id}.webp?w=32"
    for base in (second, front, front):
        assert cluster.call("GET", base, f"/api/v1/images/{image_id}").status_code == 200
    for _ in range(2):  # a miss, then a hit answered from the first's memory and cache
        assert cluster.call("GET", first, variant).status_code == 200
    assert cluster.call("GET", second, f"/img/{image_id}.jpg").status_code == 200
    # Rate limits are counted in Redis: each process takes from the same budget.
    remaining = [int(cluster.call("GET", base, "/api/v1/images")
                     .headers["X-RateLimit-Remaining"]) for base in (first, second, first)]
    assert remaining[0] > remaining[1] > remaining[2]
    assert cluster.call("DELETE", second, f"/api/v1/images/{image_id}").status_code in (200, 204)
    stale_for = _wait(lambda: cluster.call("GET", first, variant).status_code == 404,
                      POLL_S + 2, "the first process kept serving a deleted image's variant")
    assert stale_for < POLL_S + 1  # the change feed's bound, well under the 5 s memory
    for base in (first, second, front):
        assert cluster.call("GET", base, f"/api/v1/images/{image_id}").status_code == 404
    health = [cluster.call("GET", base, "/healthz").json() for base in (first, second)]
    expected = {"database", "redis", *(["object_storage"] if backends.SCALE else [])}
    for body in health:
        assert body["status"] == "ok" and expected <= body["checks"].keys()


def _image_ids(cluster: Cluster) -> set[str]:
    """The ids of every image row, read from PostgreSQL itself."""
    import asyncpg

    async def read() -> set[str]:
        conn = await asyncpg.connect(cluster.sections["database"]["url"])
        try:
            return {row["id"] for row in await conn.fetch("SELECT id FROM images")}
        finally:
            await conn.close()

    return asyncio.run(read())


def _bucket_ids(cluster: Cluster) -> set[str]:
    """The image ids that have objects under the cluster's prefix, read from the bucket."""
    from aiobotocore.session import get_session

    s3 = cluster.sections["storage"]["s3"]

    async def read() -> set[str]:
        async with get_session().create_client(
                "s3", endpoint_url=s3["endpoint_url"], region_name=s3["region"],
                aws_access_key_id=s3["access_key_id"],
                aws_secret_access_key=s3["secret_access_key"]) as client:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=s3["bucket"], Prefix=s3.get("prefix", ""))
            return {item["Key"].rsplit("/", 1)[1].split(".")[0]
                    async for page in pages for item in page.get("Contents", [])}

    return asyncio.run(read())


scale_only = pytest.mark.skipif(not backends.SCALE,
                                reason="PostgreSQL and S3: with PICHUB_TEST_BACKEND=scale")


@scale_only
def test_rows_go_to_postgresql_and_files_to_the_bucket(cluster: Cluster) -> None:
    assert cluster.sections["database"]["url"].startswith("postgresql://")
    assert cluster.sections["storage"]["backend"] == "s3"
    resp = cluster.upload(cluster.first.base, samples.jpeg((64, 48)))
    assert resp.status_code == 201, resp.text
    image_id = resp.json()["data"][0]["id"]
    assert image_id in _image_ids(cluster)
    assert image_id in _bucket_ids(cluster)
    # The second keeps its files in a data directory of its own: it fetches this one back.
    assert not list((cluster.second.data_dir / "blobs").rglob(f"{image_id}.*"))
    original = cluster.call("GET", cluster.second.base, f"/img/{image_id}.jpg")
    assert original.status_code == 200
    assert original.content == cluster.call("GET", cluster.first.base,
                                            f"/img/{image_id}.jpg").content


def test_uploads_through_nginx_are_each_delivered_once(cluster: Cluster) -> None:
    before = len(cluster.receiver.uploaded())
    ids = cluster.uploads(200, cluster.nginx.https)
    assert len(ids) == 200
    _wait(lambda: len(cluster.receiver.uploaded()) >= before + 200, 30,
          "not every image.uploaded event was delivered")
    time.sleep(0.5)  # a duplicate would arrive now
    delivered = cluster.receiver.uploaded()[before:]
    event_ids = [event for event, _ in delivered]
    assert len(event_ids) == len(set(event_ids)) == 200  # none twice
    assert {image for _, image in delivered} == set(ids)
    served = {cluster.first.base: 0, cluster.second.base: 0}
    for server in (cluster.first, cluster.second):
        served[server.base] = server.logged.count('path="/api/v1/upload"')
    assert all(served.values()), served  # nginx used both


def test_kill_one_process_under_load(cluster: Cluster) -> None:
    receiver = cluster.receiver
    before = {image for _, image in receiver.uploaded()}
    killed_at: list[float] = []

    def kill() -> None:
        """SIGKILL the second process while it has a delivery on the wire: a worker sends one
        delivery to an endpoint at a time, so two held requests are one from each."""
        with receiver.holding():
            _wait(lambda: receiver.held >= 2, 10, "no delivery under way in each process")
            os.kill(cluster.second.proc.pid, signal.SIGKILL)
            killed_at.append(time.monotonic())
            cluster.second.wait()

    ids = cluster.uploads(90, cluster.nginx.https, during=kill)
    assert killed_at and len(ids) > 30
    survivor = cluster.first.base
    for image_id in ids:  # every upload answered 201 is there, bytes included
        assert cluster.call("GET", survivor, f"/api/v1/images/{image_id}").status_code == 200
        assert cluster.call("GET", survivor, f"/img/{image_id}.jpg").status_code == 200
    _wait(lambda: set(ids) <= {image for _, image in receiver.uploaded()} - before,
          LEASE_S + 20, "deliveries were lost with the killed process")
    # The delivery the killed process had on the wire comes again, from the survivor, once
    # its lease has run out (a repeat before that is a timed-out attempt of the survivor's).
    _wait(lambda: max(receiver.repeats(killed_at[0]), default=0) >= LEASE_S - 1.5, LEASE_S + 10,
          "the delivery the killed process had under way never came again")
    assert cluster.call("GET", survivor, "/healthz").status_code == 200


@scale_only
def test_a_stopped_bucket_fails_uploads_cleanly_then_both_recover(tmp_path: Path) -> None:
    own = Seaweed()  # stopped and started here: the shared one stays up for the others
    try:
        section = own.settings(own.fresh_bucket(), prefix="outage/")
        with running_cluster(tmp_path, storage={"s3": section}) as pair:
            bases = (pair.first.base, pair.second.base)
            kept = {str(pair.upload(base).json()["data"][0]["id"]) for base in bases}
            assert len(kept) == 2 and _image_ids(pair) == _bucket_ids(pair) == kept
            own.stop(grace_s=0)  # abruptly, as a crash or a network cut
            for base in (*bases, pair.nginx.https):
                resp = pair.upload(base)
                assert resp.status_code == 503, resp.text
                assert resp.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            for base in bases:
                health = pair.call("GET", base, "/healthz")
                assert health.status_code == 503
                assert "object_storage" in health.json()["failing"]
            assert _image_ids(pair) == kept  # no row
            own.start()
            assert _bucket_ids(pair) == kept  # no object
            for base in bases:
                _wait(lambda b=base: pair.call("GET", b, "/healthz").status_code == 200, 30,
                      "a process did not report the bucket back")
            added = {str(pair.upload(base).json()["data"][0]["id"]) for base in bases}
            assert _image_ids(pair) == _bucket_ids(pair) == kept | added
            for base in bases:  # each fetches the other's files back from the bucket
                for image_id in kept | added:
                    assert pair.call("GET", base, f"/img/{image_id}.jpg").status_code == 200
    finally:
        own.close()
