"""Property tests: whatever bytes a client sends, never a 500, never a traceback, no leftovers.

Hypothesis builds multipart bodies (valid, mangled, truncated, with hostile
names, headers and contents) and `/img` URLs (every parameter, odd values),
and sends them over raw sockets to a real server process. Each answer must be
one of the documented statuses with the JSON error envelope, `tmp/` must be
empty once an upload is answered, and the server log must hold no unhandled
error. Examples are derandomized so CI runs the same ones every time.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pichub.errors import BadRequest
from pichub.imaging.spec import TransformSpec
from tests import samples
from tests.support.server import Server

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
UPLOAD_STATUSES = {201, 400, 404, 413, 415, 422}
IMG_STATUSES = {200, 304, 400, 404, 503}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("fuzz") / "data",
                 {"PICHUB_SERVER__LOG_LEVEL": "warning", "PICHUB_IMAGES__MAX_DIMENSION": "300",
                  "PICHUB_STORAGE__MAX_FILES_PER_REQUEST": "4"})
    yield srv
    srv.stop()
    log = srv.logged
    assert "Traceback" not in log and "unhandled error" not in log, log


def _send(port: int, request: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection; the status and the body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # answered and closed before the end of the body
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed without an answer: {data!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(head.split(b" ", 2)[1]), body[:length]


def _assert_envelope(status: int, body: bytes) -> None:
    assert b"Traceback" not in body
    if status < 300 or status == 304:
        return
    envelope = json.loads(body)
    assert envelope["success"] is False and envelope["error"]["code"]
    assert envelope["message"] == envelope["error"]["message"]


# --- uploads --------------------------------------------------------------------------------

CONTENTS = st.sampled_from([samples.jpeg(), samples.png_alpha(), samples.animated_gif(),
                            samples.jpeg_exif(), samples.truncated_jpeg(),
                            samples.garbage_with_png_magic(), samples.SVG, b"", b"\xff\xd8\xff",
                            b"GIF89a" + b"\x00" * 20]) | st.binary(max_size=200)
NAMES = st.sampled_from(["files[]", "file", "image", "files", "image[]", "album_id", "quality",
                         "format", "remove_exif", "convertToWebP", "auto_rename", "is_public",
                         "description", "other"]) | st.text(max_size=12)
VALUES = st.sampled_from(["1", "0", "true", "false", "maybe", "auto", "jpg", "png", "avif",
                          "99999999999999999999", "-1", "²", "١٢", " 7 ", ""]) \
    | st.text(max_size=30)
FILENAMES = st.none() | st.sampled_from(["a.jpg", "x](y).png", "../../etc/passwd", "é.gif",
                                         "%2e%2e%2f.jpg", "a\"b.jpg"]) | st.text(max_size=20)
ODD_HEADERS = st.lists(st.sampled_from([
    "Content-Type: image/jpeg", "Content-Type: text/html", "Content-Length: 5",
    "Content-Length: 99999999999", "Content-Transfer-Encoding: base64",
    "Content-Transfer-Encoding: quoted-printable", "Content-Encoding: gzip", "X-Junk: \x01",
    "Content-Disposition: attachment", "no colon here"]), min_size=1, max_size=3)
# Mostly well-formed parts, so that bodies get past the framing to the checks behind it.
EXTRA_HEADERS = st.sampled_from([[], [], [], ["Content-Type: image/jpeg"]]) | ODD_HEADERS


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[str | None, bytes]:
    boundary = draw(st.sampled_from(["b0undary", "----WebKitFormBoundaryX", "a" * 70]))
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        is_file = draw(st.booleans())
        name = draw(st.sampled_from(["files[]", "file", "image"]) if is_file else NAMES)
        filename = draw(FILENAMES) if is_file else None
        content = draw(CONTENTS) if is_file else draw(VALUES).encode("utf-8", "replace")
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        headers = [f"Content-Disposition: {disposition}", *draw(EXTRA_HEADERS)]
        head = "\r\n".join(headers).encode("utf-8", "replace")
        parts.append(f"--{boundary}\r\n".encode() + head + b"\r\n\r\n" + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    mangle = draw(st.sampled_from(["none"] * 6 + ["truncate", "no-end", "lf", "no-boundary",
                                                  "wrong-boundary", "prefix"]))
    if mangle == "truncate":
        body = body[:draw(st.integers(0, len(body)))]
    elif mangle == "no-end":
        body = body[: body.rfind(b"--" + boundary.encode())]
    elif mangle == "lf":
        body = body.replace(b"\r\n", b"\n")
    elif mangle == "prefix":
        body = draw(st.binary(max_size=50)) + body
    param = {"no-boundary": None, "wrong-boundary": "nope"}.get(mangle, boundary)
    return param, body


def _tmp_files(server: Server) -> list[Path]:
    return list((server.data_dir / "tmp").iterdir())


@FUZZ
@given(case=multipart_bodies(), chunked=st.booleans())
def test_any_upload_body_gets_a_documented_answer(server: Server, case: tuple[str | None, bytes],
                                                  chunked: bool) -> None:
    boundary, body = case
    content_type = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
    if chunked:
        framing = "Transfer-Encoding: chunked\r\n"
        payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    else:
        framing, payload = f"Content-Length: {len(body)}\r\n", body
    request = (f"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {server.token}\r\nContent-Type: {content_type}\r\n"
               f"{framing}Connection: close\r\n\r\n").encode() + payload
    status, answer = _send(server.port, request)
    event(f"upload answered {status}")
    assert status in UPLOAD_STATUSES, (status, answer)
    _assert_envelope(status, answer)
    assert _tmp_files(server) == []


# --- /img parameters ---------------------------------------------------------------------------

PARAM_VALUES = st.sampled_from(["1", "16", "300", "301", "0", "-5", "99999999999999999999",
                                "²", "1e2", "0x10", "", " 10", "auto", "jpg", "jpeg", "png",
                                "webp", "avif", "gif", "bmp", "cover", "crop", "contain", "fill",
                                "inside", "outside", "CoVeR"]) | st.text(max_size=12)
PARAM_NAMES = st.sampled_from(["w", "h", "q", "fit", "fm", "s", "x"])


@pytest.fixture(scope="module")
def stored(server: Server) -> list[str]:
    """Ids of a still JPEG, a PNG with alpha and an animated GIF, stored as uploaded."""
    ids = []
    for name, data in (("a.jpg", samples.jpeg()), ("b.png", samples.png_alpha()),
                       ("c.gif", samples.animated_gif())):
        resp = requests.post(server.base + "/api/v1/upload", timeout=30,
                             headers={"Authorization": f"Bearer {server.token}"},
                             data={"convertToWebP": "false"}, files={"file": (name, data)})
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["data"][0]["id"])
    return ids


@FUZZ
@given(pick=st.integers(0, 2), ext=st.sampled_from(["", ".jpg", ".webp", ".png", ".gif",
                                                    ".avif", ".bmp", ".JPG"]),
       params=st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=5),
       root=st.booleans(), accept=st.sampled_from(["", "image/avif,image/webp,*/*", "*/*"]))
def test_any_img_url_gets_a_documented_answer(server: Server, stored: list[str], pick: int,
                                              ext: str, params: list[tuple[str, str]],
                                              root: bool, accept: str) -> None:
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params)
    prefix = "/" if root and ext else "/img/"
    path = f"{prefix}{stored[pick]}{ext}" + (f"?{query}" if query else "")
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n"
               "Connection: close\r\n\r\n").encode()
    status, answer = _send(server.port, request)
    event(f"/img answered {status}")
    assert status in IMG_STATUSES, (path, status, answer[:300])
    _assert_envelope(status, answer)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(query=st.dictionaries(PARAM_NAMES | st.text(max_size=5), PARAM_VALUES, max_size=6),
       ext=st.none() | st.text(max_size=6), stored_format=st.sampled_from(
           ["jpeg", "png", "webp", "gif", "avif"]))
def test_transform_spec_parses_or_refuses_with_400(query: dict[str, str], ext: str | None,
                                                   stored_format: str) -> None:
    try:
        spec = TransformSpec.parse(query, ext, stored_format, 4096)
    except BadRequest as exc:
        assert exc.status == 400 and exc.details["param"]
        return
    assert spec.fm in ("jpeg", "png", "webp", "avif", "gif")
    assert spec.w is None or 1 <= spec.w <= 4096
    assert spec.h is None or 1 <= spec.h <= 4096
    assert spec.q is None or 1 <= spec.q <= 100
