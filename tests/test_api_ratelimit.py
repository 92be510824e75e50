"""Rate limits through the real middleware: headers, 429, buckets, client identity."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pichub.keys import DB, SETTINGS
from pichub.services import accounts
from tests import samples
from tests.conftest import Api, ApiFactory, form, make_settings


def limited(tmp_path: Path, **server: Any) -> Any:
    return make_settings(tmp_path, rate_limits={"enabled": True, "api": "5/minute;100/hour",
                                                "upload": "2/minute"}, server=server)


async def get(api: Api, path: str, headers: dict[str, str] | None = None) -> Any:
    async with api.client.get(path, headers=headers or {}) as resp:
        return resp.status, resp.headers, await resp.json()


async def test_headers_present_decreasing_then_429(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    remaining = []
    for _ in range(5):
        status, headers, _ = await get(api, "/api/v1/images", api.headers())
        assert status == 200
        assert headers["X-RateLimit-Limit"] == "5"
        assert int(headers["X-RateLimit-Reset"]) > time.time()
        remaining.append(int(headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    status, headers, body = await get(api, "/api/v1/images", api.headers())
    assert status == 429
    assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED" and body["success"] is False
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers["X-RateLimit-Remaining"] == "0"


async def test_error_responses_carry_headers(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    status, headers, _ = await get(api, "/api/v1/images/nope", api.headers())
    assert status == 404 and headers["X-RateLimit-Remaining"] == "4"
    status, headers, _ = await get(api, "/api/v1/images", {"Authorization": "Bearer bad"})
    assert status == 401 and "X-RateLimit-Limit" in headers


async def test_refused_upload_does_no_work(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    for _ in range(2):
        status, _ = await api.upload(("a.jpg", samples.jpeg()))
        assert status == 201
    status, body = await api.upload(("a.jpg", samples.jpeg()))
    assert status == 429
    data_dir = Path(api.app[SETTINGS].storage.data_dir)
    assert len(list((data_dir / "blobs").rglob("*.*"))) == 2
    assert list((data_dir / "tmp").iterdir()) == []
    # The upload window refused it; the api window still has room (5 - 2 uploads).
    status, headers, _ = await get(api, "/api/v1/images", api.headers())
    assert status == 200 and headers["X-RateLimit-Remaining"] == "2"


async def test_upload_window_reported_when_tighter(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    async with api.client.post("/api/v1/upload", headers=api.headers(),
                               data=form(("a.jpg", samples.jpeg()))) as resp:
        assert resp.headers["X-RateLimit-Limit"] == "2"
        assert resp.headers["X-RateLimit-Remaining"] == "1"


async def test_tokens_are_isolated(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    other = await api.new_user("bob")
    for _ in range(6):
        await get(api, "/api/v1/images", api.headers())
    status, headers, _ = await get(api, "/api/v1/images", api.headers(other))
    assert status == 200 and headers["X-RateLimit-Remaining"] == "4"


async def test_a_users_tokens_and_session_share_one_budget(make_api: ApiFactory,
                                                          tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    extra = await api.new_user("bob")
    second = await accounts.create_token(api.app[DB], "bob", name="second")
    remaining = []
    for token in (extra, second, extra, second, extra):
        status, headers, _ = await get(api, "/api/v1/images", api.headers(token))
        remaining.append((status, headers["X-RateLimit-Remaining"]))
    assert remaining == [(200, "4"), (200, "3"), (200, "2"), (200, "1"), (200, "0")]
    third = await accounts.create_token(api.app[DB], "bob", name="third")
    status, _, body = await get(api, "/api/v1/images", api.headers(third))
    assert status == 429 and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"


async def test_forged_forwarded_for_ignored_from_untrusted_peer(make_api: ApiFactory,
                                                                tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    statuses = []
    for i in range(6):
        status, _, _ = await get(api, "/api/v1/square", {"X-Forwarded-For": f"203.0.113.{i}"})
        statuses.append(status)
    assert statuses == [200] * 5 + [429]


async def test_forwarded_for_honoured_from_trusted_proxy(make_api: ApiFactory,
                                                         tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path, trusted_proxies=["127.0.0.0/8", "::1/128"],
                                 allowed_hosts=["img.example"]))  # the proxy's public name
    for i in range(6):
        status, headers, _ = await get(api, "/api/v1/square",
                                       {"X-Forwarded-For": f"203.0.113.{i}"})
        assert status == 200 and headers["X-RateLimit-Remaining"] == "4"
    status, _, body = await get(api, "/api/v1/square",
                                {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "img.example"})
    assert status == 200


async def test_disabled_sends_no_headers(api: Api) -> None:
    for _ in range(10):
        status, headers, _ = await get(api, "/api/v1/images", api.headers())
        assert status == 200 and "X-RateLimit-Limit" not in headers


async def test_trusted_proxy_sets_absolute_urls(make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, server={
        "trusted_proxies": ["127.0.0.1/32", "::1/128"], "allowed_hosts": ["img.example.org"]}))
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "img.example.org"}
    status, body = await api.upload(("a.jpg", samples.jpeg()), headers=forwarded)
    assert status == 201
    assert body["data"][0]["url"].startswith("https://img.example.org/img/")
    api2 = await make_api(make_settings(tmp_path / "2"))
    status, body = await api2.upload(("a.jpg", samples.jpeg()),
                                     headers={"X-Forwarded-Host": "evil.example"})
    assert "evil.example" not in body["data"][0]["url"]
    api3 = await make_api(make_settings(tmp_path / "3",
                                        server={"public_url": "https://cdn.example.com/"}))
    status, body = await api3.upload(("a.jpg", samples.jpeg()))
    assert body["data"][0]["url"].startswith("https://cdn.example.com/img/")


async def test_an_upload_counts_once_whatever_it_carries(make_api: ApiFactory,
                                                         tmp_path: Path) -> None:
    api = await make_api(limited(tmp_path))
    status, body = await api.upload(*[(f"{i}.jpg", samples.jpeg()) for i in range(3)])
    assert status == 201 and len(body["data"]) == 3
    status, _ = await api.upload(("again.jpg", samples.jpeg()))
    assert status == 201  # 2/minute: the three-file request used one
