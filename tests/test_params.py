"""Ids and page numbers from any string: a 404 or a 422, never a 500 (one parser for all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser import form_client

from pichub.models.base import MAX_ROW_ID, parse_int
from pichub.services.common import PageRequest
from pichub.web.params import MAX_PAGE, page_number, pagination, row_id
from tests import samples
from tests.conftest import Api

HUGE = "99999999999999999999"  # > 2^63: SQLite raised OverflowError → 500 before


@pytest.mark.parametrize("raw", ["²", "١٢", "1e3", "0x10", "1.0", "", " ", "1_000", "--1", "∞"])
def test_only_ascii_integers_parse(raw: str) -> None:
    assert parse_int(raw) is None


def test_ascii_integers_parse_with_sign_and_spaces() -> None:
    assert [parse_int(v) for v in ("0", " 42 ", "-7", "+3", HUGE)] == [0, 42, -7, 3, int(HUGE)]


@pytest.mark.parametrize("raw", ["0", "-1", HUGE, str(MAX_ROW_ID + 1), "²", "abc", "1 2"])
def test_row_ids_outside_sqlite_are_not_found(raw: str) -> None:
    with pytest.raises(Exception) as info:
        row_id(raw, "album")
    assert getattr(info.value, "status", None) == 404


def test_pagination_bounds_and_lenient_html_pages() -> None:
    assert pagination({}) == PageRequest(20, 1)
    assert pagination({"page": str(MAX_PAGE), "per_page": "100"}) == PageRequest(100, MAX_PAGE)
    # a cursor wins over the page number; an empty one is no cursor
    assert pagination({"page": "x", "cursor": "abc"}) == PageRequest(20, cursor="abc")
    assert pagination({"page": "3", "cursor": ""}) == PageRequest(20, 3)
    for query in ({"page": HUGE}, {"page": "²"}, {"per_page": "101"}, {"page": "0"}):
        with pytest.raises(Exception) as info:
            pagination(query)
        assert getattr(info.value, "status", None) == 422
    assert [page_number({"page": v}) for v in ("²", HUGE, "-3", "2")] == [1, 1, 1, 2]


async def _status(api: Api, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return await api.call(method, path, **kwargs)


async def test_out_of_range_ids_answer_404_over_http(api: Api) -> None:
    status, image = await api.upload(("a.jpg", samples.jpeg()))
    image_id = image["data"][0]["id"]
    checks = [
        ("GET", f"/api/v1/albums/{HUGE}", {}), ("PATCH", f"/api/v1/albums/{HUGE}",
                                                {"json": {"name": "x"}}),
        ("DELETE", f"/v1/albums/{HUGE}", {}), ("GET", f"/api/v1/webhooks/{HUGE}", {}),
        ("GET", f"/api/v1/webhooks/{HUGE}/deliveries", {}),
        ("POST", f"/api/v1/webhooks/{HUGE}/test", {}), ("GET", "/api/v1/albums/²", {}),
        ("GET", f"/api/v1/images?album_id={HUGE}", {}),
        ("PATCH", f"/api/v1/images/{image_id}", {"json": {"album_id": int(HUGE)}}),
    ]
    for method, path, kwargs in checks:
        status, body = await api.call(method, path, **kwargs)
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), (method, path)
    status, body = await api.upload(("b.jpg", samples.jpeg()), album_id=HUGE)
    assert status == 404 and body["message"] == "Album not found"
    status, body = await api.upload(("b.jpg", samples.jpeg()), album_id="١٢")
    assert status == 422 and body["error"]["details"][0]["field"] == "album_id"


async def test_bad_pages_answer_422_on_the_api_and_page_one_on_pages(api: Api) -> None:
    for path in (f"/api/v1/images?page={HUGE}", f"/api/v1/square?page={HUGE}",
                 "/api/v1/albums?page=²", "/api/v1/images?per_page=１０"):
        status, body = await api.call("GET", path)
        assert status == 422 and body["error"]["code"] == "VALIDATION_ERROR", path
    async with api.client.get(f"/?page={HUGE}") as resp:
        assert resp.status == 200
    async with api.client.get("/?page=²") as resp:
        assert resp.status == 200


async def test_ui_ids_with_unicode_digits_are_404_not_500(aiohttp_client: Any,
                                                         tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    assert (await ui.text("/dashboard?album_id=²"))[0] == 200
    assert (await ui.text(f"/dashboard?album_id={HUGE}"))[0] == 404
    assert (await ui.text("/dashboard/webhooks/²"))[0] == 404
    assert (await ui.text(f"/dashboard/webhooks/{HUGE}"))[0] == 404
    for path in ("/dashboard/tokens/²/revoke", f"/dashboard/albums/{HUGE}/delete",
                 "/dashboard/webhooks/²/delete"):
        status, _, resp = await ui.post(path)
        assert status == 303, path  # back to the list with an error message, no 500
        assert "pichub_flash" in resp.cookies
