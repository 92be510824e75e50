"""Reading upload bodies: malformed multipart is a 400, fields are bounded, tmp/ is left empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from pichub.keys import SETTINGS
from pichub.web.multipart import MAX_FIELD_BYTES, MAX_FIELDS, MAX_FIELDS_BYTES
from tests import samples
from tests.conftest import Api
from tests.support.rawhttp import RawResponse, exchange, multipart_request

B = "b0undary"


def _part(name: str, value: bytes, filename: str | None = None, headers: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (f"--{B}\r\nContent-Disposition: {disposition}\r\n{headers}\r\n").encode() + value \
        + b"\r\n"


def _end() -> bytes:
    return f"--{B}--\r\n".encode()


async def _post(api: Api, body: bytes, boundary: str | None = B) -> RawResponse:
    server = api.client.server
    host, port = str(server.host), int(server.port or 0)
    raw = multipart_request("/api/v1/upload", f"{host}:{port}", api.token, body, boundary)
    return await exchange(host, port, raw)


def _tmp(api: Api) -> list[Path]:
    return list((Path(api.app[SETTINGS].storage.data_dir) / "tmp").iterdir())


MALFORMED = {
    "no boundary": (None, _part("files[]", samples.jpeg(), "a.jpg") + _end()),
    "header line over 8190 bytes": (B, _part("files[]", samples.jpeg(), "a.jpg",
                                             headers="X-Long: " + "a" * 9000 + "\r\n") + _end()),
    "5000 part header lines": (B, _part("files[]", samples.jpeg(), "a.jpg",
                                        headers="X-H: 1\r\n" * 5000) + _end()),
    "no starting boundary": (B, b"garbage without any boundary line\r\n"),
    "boundary never closed": (B, _part("description", b"x") + b"--other--\r\n"),
    "file then broken framing": (B, _part("files[]", samples.jpeg(), "a.jpg") + b"junk"),
    "bad boundary parameter": ("a" * 80, _part("files[]", samples.jpeg(), "a.jpg")),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_multipart_is_400_and_leaves_nothing(api: Api, case: str) -> None:
    boundary, body = MALFORMED[case]
    resp = await _post(api, body, boundary)
    assert resp.status == 400, resp.body
    assert b'"BAD_REQUEST"' in resp.body and b"Traceback" not in resp.body
    assert _tmp(api) == []
    status, listed = await api.call("GET", "/api/v1/images")
    assert listed["meta"]["total"] == 0


async def test_too_many_fields_is_413_before_reading_them_all(api: Api) -> None:
    fields = b"".join(_part(f"f{i}", b"v" * 10) for i in range(MAX_FIELDS + 1))
    resp = await _post(api, _part("files[]", samples.jpeg(), "a.jpg") + fields + _end())
    assert resp.status == 413 and b"PAYLOAD_TOO_LARGE" in resp.body
    assert _tmp(api) == []


async def test_one_field_over_its_limit_is_413(api: Api) -> None:
    body = _part("description", b"d" * (MAX_FIELD_BYTES + 1)) \
        + _part("files[]", samples.jpeg(), "a.jpg") + _end()
    resp = await _post(api, body)
    assert resp.status == 413 and b"per field" in resp.body


async def test_fields_together_over_their_limit_are_413(api: Api) -> None:
    each = MAX_FIELD_BYTES - 10
    count = MAX_FIELDS_BYTES // each + 1
    assert count < MAX_FIELDS
    fields = b"".join(_part(f"f{i}", b"v" * each) for i in range(count))
    resp = await _post(api, fields + _part("files[]", samples.jpeg(), "a.jpg") + _end())
    assert resp.status == 413 and b"in all" in resp.body
    assert _tmp(api) == []


async def test_unknown_fields_within_bounds_are_fine(api: Api) -> None:
    fields = b"".join(_part(f"extra{i}", b"x" * 100) for i in range(20))
    resp = await _post(api, fields + _part("files[]", samples.jpeg(), "a.jpg") + _end())
    assert resp.status == 201, resp.body
