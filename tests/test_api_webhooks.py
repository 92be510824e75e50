"""Webhooks through the API and a real receiver."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests import samples
from tests.conftest import Api, ApiFactory, make_settings
from tests.support.server import Server, free_port
from tests.webhook_receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


def hooks_settings(tmp_path: Path, **webhooks: Any) -> Any:
    return make_settings(tmp_path, webhooks={"allow_private_networks": True,
                                             "backoff_base_s": 0.05, **webhooks})


async def test_events_arrive_signed(make_api: ApiFactory, tmp_path: Path,
                                    receiver: Receiver) -> None:
    api = await make_api(hooks_settings(tmp_path))
    status, body = await api.call("POST", "/api/v1/webhooks",
                                  json={"url": receiver.url, "description": "mine"})
    assert status == 201, body
    hook = body["data"]
    assert hook["secret"].startswith("whsec_") and hook["events"][0] == "image.uploaded"
    status, listed = await api.call("GET", "/api/v1/webhooks")
    assert [h["id"] for h in listed["data"]] == [hook["id"]] and "secret" not in listed["data"][0]

    _, album = await api.call("POST", "/api/v1/albums", json={"name": "A"})
    album_id = album["data"]["id"]
    _, up = await api.upload(("a.jpg", samples.jpeg()), album_id=album_id)
    image_id = up["data"][0]["id"]
    await api.call("PATCH", f"/api/v1/albums/{album_id}", json={"name": "B"})
    await api.call("DELETE", f"/api/v1/images/{image_id}")
    await api.call("DELETE", f"/api/v1/albums/{album_id}")
    got = await receiver.wait_for(5)
    assert sorted(receiver.types()) == sorted(["album.created", "image.uploaded", "album.updated",
                                               "image.deleted", "album.deleted"])
    verifier = Webhook(hook["secret"])
    for item in got:
        event = verifier.verify(item.body, item.headers)
        assert item.headers["webhook-id"] == event["id"] and event["id"].startswith("evt_")
        assert item.headers["X-PicHub-Event"] == event["type"]
        assert event["created_at"].endswith("Z")
    by_type = {r.event["type"]: r.event for r in got}
    assert by_type["image.uploaded"]["data"]["id"] == image_id
    assert by_type["album.updated"]["data"]["name"] == "B"


async def test_filtered_events_test_ping_and_deliveries(make_api: ApiFactory, tmp_path: Path,
                                                        receiver: Receiver) -> None:
    api = await make_api(hooks_settings(tmp_path))
    _, body = await api.call("POST", "/api/v1/webhooks",
                             json={"url": receiver.url, "events": ["album.created"]})
    hook_id = body["data"]["id"]
    await api.upload(("a.jpg", samples.jpeg()))
    await api.call("POST", "/api/v1/albums", json={"name": "A"})
    await receiver.wait_for(1)  # the album's event is out before the ping is queued after it
    status, ping = await api.call("POST", f"/api/v1/webhooks/{hook_id}/test")
    assert status == 202 and ping["data"]["type"] == "ping"
    await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert sorted(receiver.types()) == ["album.created", "ping"]
    status, log = await api.call("GET", f"/api/v1/webhooks/{hook_id}/deliveries")
    assert status == 200 and log["meta"]["total"] == 2
    first = log["data"][0]
    assert first["type"] == "ping" and first["status"] == "delivered"
    assert first["response_status"] == 200 and first["attempt"] == 1
    assert first["delivered_at"].endswith("Z")


async def test_retries_keep_the_same_id(make_api: ApiFactory, tmp_path: Path,
                                        receiver: Receiver) -> None:
    api = await make_api(hooks_settings(tmp_path))
    receiver.status = 500
    _, body = await api.call("POST", "/api/v1/webhooks", json={"url": receiver.url})
    await api.call("POST", "/api/v1/albums", json={"name": "A"})
    await receiver.wait_for(2)
    receiver.status = 204
    got = await receiver.wait_for(3)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    await asyncio.sleep(0.3)
    _, log = await api.call("GET", f"/api/v1/webhooks/{body['data']['id']}/deliveries")
    assert log["data"][0]["status"] == "delivered" and log["data"][0]["attempt"] == 3


async def test_private_targets_refused_by_default(api: Api, receiver: Receiver) -> None:
    for url in (receiver.url, "http://10.1.2.3/x", "http://169.254.169.254/latest",
                "http://[::1]/x", "http://localhost:9/x", "ftp://example.com/x", "not a url"):
        status, body = await api.call("POST", "/api/v1/webhooks", json={"url": url})
        assert status == 422, url
        assert body["error"]["details"][0]["field"] == "url"
    status, body = await api.call("GET", "/api/v1/webhooks")
    assert body["data"] == []


async def test_crud_ownership_and_validation(make_api: ApiFactory, tmp_path: Path,
                                             receiver: Receiver) -> None:
    api = await make_api(hooks_settings(tmp_path))
    _, body = await api.call("POST", "/api/v1/webhooks", json={"url": receiver.url})
    hook_id = body["data"]["id"]
    status, body = await api.call("PATCH", f"/api/v1/webhooks/{hook_id}",
                                  json={"events": ["image.deleted"], "description": "d"})
    assert status == 200 and body["data"]["events"] == ["image.deleted"]
    status, body = await api.call("POST", "/api/v1/webhooks",
                                  json={"url": receiver.url, "events": ["nope"]})
    assert status == 422
    bob = await api.new_user("bob")
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/deliveries"),
                         ("POST", "/test")):
        kwargs: dict[str, Any] = {"json": {"description": "x"}} if method == "PATCH" else {}
        status, _ = await api.call(method, f"/api/v1/webhooks/{hook_id}{path}", token=bob,
                                   **kwargs)
        assert status == 404, (method, path)
    status, body = await api.call("DELETE", f"/api/v1/webhooks/{hook_id}")
    assert body == {"success": True, "data": {"id": hook_id, "deleted": True}}


async def test_global_endpoint_from_config(make_api: ApiFactory, tmp_path: Path,
                                           receiver: Receiver) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    api = await make_api(hooks_settings(tmp_path, url=receiver.url, secret=secret))
    bob = await api.new_user("bob")
    await api.call("POST", "/api/v1/albums", json={"name": "alice's"})
    await api.call("POST", "/api/v1/albums", json={"name": "bob's"}, token=bob)
    got = await receiver.wait_for(2)
    names = sorted(Webhook(secret).verify(r.body, r.headers)["data"]["name"] for r in got)
    assert names == ["alice's", "bob's"]


async def test_kill_9_with_receiver_down_delivers_after_restart(tmp_path: Path) -> None:
    port = free_port()
    env = {"PICHUB_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",
           "PICHUB_WEBHOOKS__BACKOFF_BASE_S": "0.2", "PICHUB_WEBHOOKS__TIMEOUT_S": "2"}
    server = await asyncio.to_thread(Server, tmp_path / "data", env)
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"http://127.0.0.1:{port}/hook"

    def setup() -> tuple[dict[str, Any], str]:
        hook = requests.post(f"{server.base}/api/v1/webhooks", headers=headers,
                             json={"url": url}, timeout=10).json()["data"]
        image = requests.post(f"{server.base}/api/v1/upload", headers=headers,
                              files={"files[]": ("a.jpg", samples.jpeg())}, timeout=10)
        assert image.status_code == 201
        return hook, image.json()["data"][0]["id"]

    hook, image_id = await asyncio.to_thread(setup)
    await asyncio.sleep(0.5)  # the worker tries, the receiver is down
    server.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(server.wait, 10)

    receiver = Receiver()
    await receiver.start(port)
    again = await asyncio.to_thread(Server, tmp_path / "data", env)
    try:
        got = await receiver.wait_for(1, seconds=20)
        event = Webhook(hook["secret"]).verify(got[0].body, got[0].headers)
        assert event["type"] == "image.uploaded" and event["data"]["id"] == image_id
        log = await asyncio.to_thread(
            lambda: requests.get(f"{again.base}/api/v1/webhooks/{hook['id']}/deliveries",
                                 headers=headers, timeout=10).json())
        assert log["data"][0]["event_id"] == json.loads(got[0].body)["id"]
        assert log["data"][0]["attempt"] >= 2
    finally:
        await asyncio.to_thread(again.stop)
        await receiver.stop()
