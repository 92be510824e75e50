"""Images and albums: listing, pagination, ownership, events in the same transaction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pichub.keys import SETTINGS
from tests import samples
from tests.conftest import Api
from tests.support import dbrows


def events(api: Api) -> list[tuple[str, dict[str, Any]]]:
    rows = dbrows.rows(api, "SELECT type, payload FROM events ORDER BY seq")
    return [(t, json.loads(p)) for t, p in rows]


async def upload_n(api: Api, n: int, **fields: Any) -> list[dict[str, Any]]:
    status, body = await api.upload(*[(f"{i}.jpg", samples.jpeg()) for i in range(n)], **fields)
    assert status == 201
    return list(body["data"])


@pytest.mark.parametrize("prefix", ["/api/v1", "/v1"])
async def test_list_newest_first_with_meta(api: Api, prefix: str) -> None:
    uploaded = await upload_n(api, 5)  # same second: order by insertion sequence
    status, body = await api.call("GET", f"{prefix}/images?page=1&per_page=2")
    assert status == 200
    assert [i["id"] for i in body["data"]] == [uploaded[4]["id"], uploaded[3]["id"]]
    meta = body["meta"]
    assert seed_meta(meta) == {"page": 1, "per_page": 2, "total": 5, "total_pages": 3}
    assert meta["prev_cursor"] is None and isinstance(meta["next_cursor"], str)
    status, body = await api.call("GET", f"{prefix}/images?page=3&per_page=2")
    assert [i["id"] for i in body["data"]] == [uploaded[0]["id"]]
    assert body["meta"]["next_cursor"] is None and isinstance(body["meta"]["prev_cursor"], str)


def seed_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The keys of `meta` the seed's clients read (the cursors come on top)."""
    assert set(meta) == {"page", "per_page", "total", "total_pages", "next_cursor",
                         "prev_cursor"}
    return {key: meta[key] for key in ("page", "per_page", "total", "total_pages")}


@pytest.mark.parametrize("query", ["page=0", "per_page=0", "per_page=101", "page=x",
                                   "per_page=1.5", "album_id=abc"])
async def test_bad_pagination_is_422(api: Api, query: str) -> None:
    status, body = await api.call("GET", f"/api/v1/images?{query}")
    assert status == 422
    assert body["error"]["code"] == "VALIDATION_ERROR"


async def test_other_users_resources_are_404(api: Api) -> None:
    [image] = await upload_n(api, 1)
    _, album = await api.call("POST", "/api/v1/albums", json={"name": "Mine"})
    bob = await api.new_user("bob")
    for method, path, kwargs in [
        ("GET", f"/api/v1/images/{image['id']}", {}),
        ("PATCH", f"/api/v1/images/{image['id']}", {"json": {"is_public": False}}),
        ("DELETE", f"/api/v1/images/{image['id']}", {}),
        ("GET", f"/api/v1/albums/{album['data']['id']}", {}),
        ("PATCH", f"/api/v1/albums/{album['data']['id']}", {"json": {"name": "x"}}),
        ("DELETE", f"/api/v1/albums/{album['data']['id']}", {}),
        ("GET", f"/api/v1/images?album_id={album['data']['id']}", {}),
    ]:
        status, body = await api.call(method, path, token=bob, **kwargs)
        assert status == 404, (method, path, body)
        assert body["error"]["code"] == "NOT_FOUND"
    status, body = await api.call("GET", "/api/v1/images", token=bob)
    assert body["data"] == [] and body["meta"]["total"] == 0
    status, body = await api.call("GET", f"/api/v1/images/{image['id']}")
    assert status == 200 and body["data"]["id"] == image["id"]


async def test_patch_image(api: Api) -> None:
    [image] = await upload_n(api, 1)
    _, album = await api.call("POST", "/api/v1/albums", json={"name": "A"})
    album_id = album["data"]["id"]
    status, body = await api.call("PATCH", f"/v1/images/{image['id']}", json={
        "album_id": album_id, "is_public": False, "description": "new"})
    assert status == 200
    assert (body["data"]["album_id"], body["data"]["is_public"], body["data"]["description"]) == (
        album_id, False, "new")
    status, body = await api.call("PATCH", f"/v1/images/{image['id']}", json={"album_id": None})
    assert status == 200 and body["data"]["album_id"] is None
    status, body = await api.call("PATCH", f"/v1/images/{image['id']}", json={"album_id": 9999})
    assert status == 404
    status, body = await api.call("PATCH", f"/v1/images/{image['id']}",
                                  json={"is_public": "yes", "description": 5})
    assert status == 422
    assert {d["field"] for d in body["error"]["details"]} == {"is_public", "description"}
    status, body = await api.call("PATCH", f"/v1/images/{image['id']}", data=b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "BAD_REQUEST"


async def test_delete_image_removes_blob_row_and_fires_event(api: Api) -> None:
    [image] = await upload_n(api, 1)
    data_dir = Path(api.app[SETTINGS].storage.data_dir)
    assert list((data_dir / "blobs").rglob("*.webp"))
    status, body = await api.call("DELETE", f"/api/v1/images/{image['id']}")
    assert status == 200
    assert body == {"success": True, "data": {"id": image["id"], "deleted": True}}
    assert not list((data_dir / "blobs").rglob("*.webp"))
    status, _ = await api.call("GET", f"/api/v1/images/{image['id']}")
    assert status == 404
    async with api.client.get(f"/img/{image['id']}.webp") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "NOT_FOUND"
    assert [t for t, _ in events(api)] == ["image.uploaded", "image.deleted"]
    assert events(api)[1][1]["data"]["id"] == image["id"]


async def test_album_crud_counts_and_events(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/albums", json={
        "name": "我的相册", "description": "这是一个示例相册", "is_public": True})
    assert status == 201
    album = body["data"]
    assert album["name"] == "我的相册" and album["image_count"] == 0
    assert album["cover_url"] is None and album["created_at"].endswith("Z")
    uploaded = await upload_n(api, 2, album_id=album["id"])
    status, body = await api.call("GET", f"/api/v1/albums/{album['id']}")
    assert body["data"]["image_count"] == 2
    assert body["data"]["cover_url"] == uploaded[1]["url"]
    status, body = await api.call("GET", f"/api/v1/images?album_id={album['id']}")
    assert body["meta"]["total"] == 2
    status, body = await api.call("PATCH", f"/api/v1/albums/{album['id']}",
                                  json={"name": "Renamed", "is_public": False})
    assert status == 200 and body["data"]["name"] == "Renamed"
    assert body["data"]["is_public"] is False
    await api.call("POST", "/api/v1/albums", json={"name": "Second"})
    status, body = await api.call("GET", "/api/v1/albums?per_page=1")
    assert body["data"][0]["name"] == "Second"
    assert seed_meta(body["meta"]) == {"page": 1, "per_page": 1, "total": 2, "total_pages": 2}
    status, body = await api.call("DELETE", f"/api/v1/albums/{album['id']}")
    assert body == {"success": True, "data": {"id": album["id"], "deleted": True}}
    status, body = await api.call("GET", f"/api/v1/images/{uploaded[0]['id']}")
    assert status == 200 and body["data"]["album_id"] is None
    types = [t for t, _ in events(api)]
    assert types == ["album.created", "image.uploaded", "image.uploaded", "album.updated",
                     "album.created", "album.deleted"]


@pytest.mark.parametrize(("payload", "field"), [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 101}, "name"), ({"name": 5}, "name"),
    ({"name": "ok", "is_public": "yes"}, "is_public"),
])
async def test_album_validation(api: Api, payload: dict[str, Any], field: str) -> None:
    status, body = await api.call("POST", "/api/v1/albums", json=payload)
    assert status == 422
    assert body["error"]["details"][0]["field"] == field
    assert events(api) == []


async def test_album_bad_json_is_400(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/albums", data=b"[1, 2",
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "BAD_REQUEST"
    status, body = await api.call("POST", "/api/v1/albums", json=["name"])
    assert status == 400


async def test_square_lists_public_images_of_everyone_without_auth(api: Api) -> None:
    public = await upload_n(api, 1)
    await upload_n(api, 1, is_public="false")
    bob = await api.new_user("bob")
    status, body = await api.upload(("b.jpg", samples.jpeg()), token=bob)
    async with api.client.get("/api/v1/square?per_page=10") as resp:
        assert resp.status == 200
        square = await resp.json()
    assert [i["id"] for i in square["data"]] == [body["data"][0]["id"], public[0]["id"]]
    assert square["meta"]["total"] == 2


async def test_read_scope_can_read_not_write(api: Api) -> None:
    await upload_n(api, 1)
    reader = await api.new_user("reader", scope="read")
    status, _ = await api.call("GET", "/api/v1/images", token=reader)
    assert status == 200
    status, body = await api.call("POST", "/api/v1/albums", json={"name": "x"}, token=reader)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"


async def test_missing_token_is_401(api: Api) -> None:
    async with api.client.get("/api/v1/images") as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body["message"] == "Invalid or expired API token"


async def test_original_served_with_type_and_head(api: Api) -> None:
    status, body = await api.upload(("a.png", samples.png_alpha()), convertToWebP="false")
    image = body["data"][0]
    for path in (f"/img/{image['id']}", f"/img/{image['id']}.png", f"/{image['id']}.png"):
        async with api.client.get(path) as resp:
            assert resp.status == 200, path
            assert resp.headers["Content-Type"] == "image/png"
            assert (await resp.read())[:4] == b"\x89PNG"
        async with api.client.head(path) as resp:
            assert resp.status == 200
            assert int(resp.headers["Content-Length"]) == image["size"]
