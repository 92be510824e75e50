"""A PicHub app for the sharing tests: two users, a session cookie, a clock moved by hand."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from pichub.app import create_app
from pichub.config import Settings
from pichub.keys import CLOCK, DB
from pichub.services import accounts, sessions
from tests import samples
from tests.conftest import Api


class FakeClock:
    """A clock the test moves by hand (`keys.CLOCK`)."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


class Sharing(Api):
    """Alice (the owner), Bob (another user), a cookie of Alice's session, and the clock."""

    def __init__(self, client: TestClient[Any, Any], token: str, other: str, cookie: str,
                 clock: FakeClock) -> None:
        super().__init__(client, token)
        self.other = other
        self.cookie = cookie
        self.clock = clock

    async def fetch(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        async with self.client.get(path, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def link(self, image_id: str, **body: Any) -> str:
        status, answer = await self.call("POST", f"/api/v1/images/{image_id}/links",
                                         json={"expires_in": 3600, **body})
        assert status == 201, answer
        url = urlsplit(answer["data"]["url"])
        return f"{url.path}?{url.query}"


async def start(aiohttp_client: Any, settings: Settings, clock: FakeClock) -> Sharing:
    app = create_app(settings)
    app[CLOCK] = clock
    client = await aiohttp_client(app)
    db = app[DB]
    await accounts.create_user(db, "alice", "password-alice")
    await accounts.create_user(db, "bob", "password-bob")
    alice = await accounts.create_token(db, "alice")
    bob = await accounts.create_token(db, "bob")
    user = await accounts.actor_from_token(db, alice)
    cookie, _ = await sessions.start(db, user.user_id, timedelta(hours=1))
    return Sharing(client, alice, bob, cookie, clock)


async def upload(site: Sharing, data: bytes | None = None, **fields: Any) -> dict[str, Any]:
    status, body = await site.upload(("photo.jpg", data or samples.jpeg((320, 240))),
                                     convertToWebP="false", **fields)
    assert status == 201, body
    if {"expires_in", "expires_at"} & fields.keys():
        await settle()
    image: dict[str, Any] = body["data"][0]
    return image


async def events(site: Sharing, type_: str) -> list[dict[str, Any]]:
    """The data of every event of `type_` in the outbox, oldest first."""
    rows = await site.app[DB].fetchall("SELECT payload FROM events WHERE type = ? ORDER BY seq",
                                       (type_,))
    return [json.loads(row[0])["data"] for row in rows]


async def settle() -> None:
    """Let the expiry sweep that setting an expiry woke run and go back to sleep, so a
    clock the test moves next is seen by the requests (or by a sweep the test runs)."""
    await asyncio.sleep(0.05)
