"""Delete links: handed out once per upload; GET shows a page and deletes nothing (previews and
crawlers fetch GETs), POST deletes like any delete; a wrong or used token is a 404."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import samples
from conftest import Api

from pichub.keys import DB, SETTINGS


async def _page(api: Api, method: str, url: str) -> tuple[int, str, Any]:
    path = url.split("://", 1)[1].split("/", 1)[1]
    async with api.client.request(method, "/" + path, headers={"Accept": "text/html"},
                                  allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_get_confirms_post_deletes(api: Api) -> None:
    status, body = await api.upload(("cat.jpg", samples.jpeg((200, 100))))
    image = body["data"][0]
    delete_url = image["delete_url"]
    async with api.client.get(f"/img/{image['id']}.webp?w=50") as resp:
        assert resp.status == 200  # a variant in the cache
    data_dir = Path(api.app[SETTINGS].storage.data_dir)
    variants = data_dir / "cache" / image["id"][:2] / image["id"]
    assert any(variants.iterdir())

    status, html, headers = await _page(api, "GET", delete_url)
    assert status == 200 and "Delete this image?" in html and 'method="post"' in html
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
    status, _ = await api.call("GET", f"/api/v1/images/{image['id']}")
    assert status == 200  # the GET deleted nothing

    status, html, _ = await _page(api, "POST", delete_url)
    assert status == 200 and "Image deleted" in html
    status, _ = await api.call("GET", f"/api/v1/images/{image['id']}")
    assert status == 404
    assert not list(data_dir.glob(f"blobs/*/*/{image['id']}.*"))
    assert not variants.exists() or not any(variants.iterdir())
    rows = await api.app[DB].fetchall("SELECT payload FROM events WHERE type = 'image.deleted'")
    assert [json.loads(r["payload"])["data"]["id"] for r in rows] == [image["id"]]
    assert "delete_url" not in json.loads(rows[0]["payload"])["data"]

    for method in ("GET", "POST"):  # used: 404, like a wrong one
        status, html, _ = await _page(api, method, delete_url)
        assert status == 404 and "Not found" in html
    status, _, _ = await _page(api, "POST", delete_url[:-3] + "abc")
    assert status == 404


async def test_links_are_unguessable_and_never_repeated(api: Api) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()), ("b.jpg", samples.jpeg()))
    first, second = (image["delete_url"] for image in body["data"])
    assert first != second and len(first.rsplit("/", 1)[1]) == 43
    stored = await api.app[DB].fetchall("SELECT token_hash FROM delete_links")
    assert {row["token_hash"] for row in stored}.isdisjoint({first, second})
    events = await api.app[DB].fetchall("SELECT payload FROM events")
    assert all("delete_url" not in row["payload"] for row in events)
