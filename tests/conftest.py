"""Fixtures: a real PicHub app on an in-process aiohttp test server, real SQLite and blobs."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from pichub.app import create_app
from pichub.config import Settings
from pichub.keys import DB
from pichub.services import accounts
from tests.support import backends

pytest_plugins = ["tests.support.shards"]


@pytest.hookimpl(tryfirst=True)  # before -m selects by it
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the modules of the scale pass (`backends.SCALE_MODULES`) with `scale`."""
    for item in items:
        if item.path.stem in backends.SCALE_MODULES:
            item.add_marker(pytest.mark.scale)


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    data: dict[str, dict[str, Any]] = {
        "storage": {"data_dir": tmp_path / "data", "min_free_mb": 0},
        "rate_limits": {"enabled": False},
    }
    for chosen in (backends.sections(tmp_path), sections):  # the test's own keys win
        for name, values in chosen.items():
            data.setdefault(name, {}).update(values)
    return Settings(**data)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def form(*files: tuple[str, bytes], field: str = "files[]", **fields: Any) -> FormData:
    """A multipart form as upload clients send it: files first, then the options."""
    data = FormData()
    for name, content in files:
        data.add_field(field, io.BytesIO(content), filename=name,
                       content_type="application/octet-stream")
    for key, value in fields.items():
        data.add_field(key, str(value))
    return data


class Api:
    """A test client plus a user's token, speaking the API as a client would."""

    def __init__(self, client: TestClient[Any, Any], token: str) -> None:
        self.client = client
        self.token = token

    @property
    def app(self) -> Any:
        return self.client.server.app

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def call(self, method: str, path: str, *, token: str | None = None,
                   **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()

    async def upload(self, *files: tuple[str, bytes], field: str = "files[]",
                     token: str | None = None, headers: dict[str, str] | None = None,
                     **fields: Any) -> tuple[int, Any]:
        return await self.call("POST", "/api/v1/upload", data=form(*files, field=field, **fields),
                               token=token, headers=headers or {})

    async def new_user(self, name: str, scope: str = "write", quota_mb: int | None = None) -> str:
        db = self.app[DB]
        await accounts.create_user(db, name, "password-" + name, quota_mb=quota_mb)
        return await accounts.create_token(db, name, scope=scope)


ApiFactory = Callable[[Settings], Awaitable[Api]]


@pytest.fixture
def make_api(aiohttp_client: Any) -> ApiFactory:
    async def factory(settings: Settings) -> Api:
        client = await aiohttp_client(create_app(settings))
        db = client.server.app[DB]
        await accounts.create_user(db, "alice", "password-alice", is_admin=True)
        token = await accounts.create_token(db, "alice")
        return Api(client, token)

    return factory


@pytest.fixture
async def api(make_api: ApiFactory, settings: Settings) -> Api:
    return await make_api(settings)
