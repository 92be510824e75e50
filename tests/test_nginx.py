"""docs/nginx.conf in front of a real `pichub serve` (docs/deploy.md).

Debian's nginx runs in the foreground on 127.0.0.1 with the sample site as
written (tests/support/nginx.py): only the upstream port, the listen addresses,
the certificate (a self-signed one made here with openssl) and the cache path are
swapped, and each swap must find its line, so the sample cannot drift from what
is tested. PicHub trusts 127.0.0.1 as its proxy. Skipped only when nginx or
openssl is missing outside CI.

The /img/ cache: repeated hits are nginx's alone (PicHub's access log and its
request counter do not move), with PicHub's headers, 304s and ranges; `fm=auto`
is cached per Accept; signatures are checked by PicHub on every URL nginx has
not cached a 200 for; a deleted image is gone once nginx's copy is older than
`proxy_cache_valid` (shortened here to wait it out), or at once with the purge
command of docs/deploy.md. A private image (`X-Accel-Expires: 0`) is never kept: the
owner's answer, or a signed link's, is not served to a request without the token or the
signature.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from PIL import Image

from pichub.imaging.spec import sign
from tests import samples
from tests.support.nginx import NGINX, OPENSSL, ROOT, Nginx
from tests.support.server import Server

FORGED = "198.51.100.7"
VALIDITY = "proxy_cache_valid 200 10m;"
DEPLOY = ROOT / "docs" / "deploy.md"
SIGNING_KEY = "k3y"

if (NGINX is None or OPENSSL is None) and os.environ.get("CI") != "true":
    pytest.skip("nginx or openssl not installed (apt-get install nginx openssl); "
                "required when CI=true", allow_module_level=True)


class ProxiedServer(Server):
    """tests.support.server.Server, configured to sit behind nginx on 127.0.0.1."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, env={
            "PICHUB_STORAGE__MAX_UPLOAD_MB": "50",
            "PICHUB_SERVER__TRUSTED_PROXIES": '["127.0.0.1/32"]',
            "PICHUB_RATE_LIMITS__ENABLED": "true",
            "PICHUB_RATE_LIMITS__API": "6/hour",
            **(env or {}),
        })


@dataclass
class Proxy:
    """nginx running the sample in front of PicHub."""

    https: str          # https://127.0.0.1:PORT
    http: str           # the plain-HTTP server that redirects
    cert: str           # the self-signed certificate, for `verify=`
    cache: Path         # nginx's /img/ cache directory
    pichub: ProxiedServer
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(self.https + path, headers=headers, verify=self.cert, timeout=30)

    def upload(self, data: bytes) -> str:
        resp = requests.post(f"{self.https}/api/v1/upload", headers=self.headers(),
                             files={"files[]": ("a.jpg", data)}, verify=self.cert, timeout=30)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["data"][0]["id"])

    def pichub_saw(self, path: str) -> int:
        """Access-log lines PicHub wrote so far for requests of `path` (query included)."""
        time.sleep(0.2)  # the line is written once the answer has gone out
        return self.pichub.logged.count(f'path="{path}"')


MakeProxy = Callable[..., Proxy]


@pytest.fixture
def make_proxy(tmp_path: Path) -> Iterator[MakeProxy]:
    """Start PicHub (extra `env`) and nginx with the sample (extra `swaps`) in front."""
    running: list[tuple[Nginx, ProxiedServer]] = []

    def start(env: dict[str, str] | None = None, swaps: dict[str, str] | None = None) -> Proxy:
        assert NGINX is not None, "nginx is required in CI (apt-get install nginx)"
        folder = tmp_path / f"run{len(running)}"
        pichub = ProxiedServer(folder / "data", env)
        try:
            nginx = Nginx(folder / "nginx", pichub.port, swaps)
        except BaseException:
            pichub.stop()
            raise
        running.append((nginx, pichub))
        token = pichub.output.split("API token: ", 1)[1].split()[0]
        return Proxy(nginx.https, nginx.http, nginx.cert, nginx.cache, pichub, token)

    yield start
    for nginx, pichub in running:
        nginx.stop()
        pichub.stop()


@pytest.fixture
def proxy(make_proxy: MakeProxy) -> Proxy:
    return make_proxy()


def test_absolute_urls_use_the_proxy_scheme_host_and_port(proxy: Proxy) -> None:
    resp = requests.post(f"{proxy.https}/api/v1/upload", headers=proxy.headers(),
                         files={"files[]": ("a.jpg", samples.jpeg())}, verify=proxy.cert,
                         timeout=30)
    assert resp.status_code == 201, resp.text
    image = resp.json()["data"][0]
    assert image["url"] == f"{proxy.https}/img/{image['id']}.webp"
    assert image["links"]["thumbnail"].startswith(f"{proxy.https}/img/")

    got = requests.get(image["url"], verify=proxy.cert, timeout=10)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == image["sha256"]
    assert got.headers["X-Cache-Status"] == "MISS"  # the /img/ cache is active

    redirect = requests.get(f"{proxy.http}/api/v1/square", allow_redirects=False, timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == "https://127.0.0.1/api/v1/square"


def remaining(proxy: Proxy, forwarded_for: str) -> requests.Response:
    """An anonymous API call (limited per client IP) through nginx, with a forged header."""
    return requests.get(f"{proxy.https}/api/v1/square", headers={"X-Forwarded-For": forwarded_for},
                        verify=proxy.cert, timeout=10)


def test_client_ip_is_the_real_peer_not_a_forged_header(proxy: Proxy) -> None:
    """nginx overwrites X-Forwarded-For with $remote_addr: every forged value is dropped, so
    all these calls share the budget of 127.0.0.1 (the test client), also with a direct call."""
    first = remaining(proxy, FORGED)
    assert first.status_code == 200
    left = int(first.headers["X-RateLimit-Remaining"])
    second = remaining(proxy, "203.0.113.9")
    assert int(second.headers["X-RateLimit-Remaining"]) == left - 1
    direct = requests.get(f"{proxy.pichub.base}/api/v1/square", timeout=10)
    assert int(direct.headers["X-RateLimit-Remaining"]) == left - 2
    for n in range(left - 2):
        assert remaining(proxy, f"192.0.2.{n + 1}").status_code == 200
    limited = remaining(proxy, "192.0.2.200")  # a fresh forged address does not help
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"


def noise_jpeg(size: tuple[int, int]) -> bytes:
    """Random pixels at quality 100: ~4 bytes a pixel, so 40 MB without a slow encoder."""
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=100, subsampling=0)
    return out.getvalue()


def test_a_40_mb_upload_passes_through(proxy: Proxy) -> None:
    data = noise_jpeg((3700, 2800))
    assert 36 * 2**20 < len(data) < 50 * 2**20
    resp = requests.post(f"{proxy.https}/api/v1/upload", headers=proxy.headers(),
                         files={"files[]": ("big.jpg", data)}, data={"convertToWebP": "false"},
                         verify=proxy.cert, timeout=120)
    assert resp.status_code == 201, resp.text[:500]
    image = resp.json()["data"][0]
    assert image["size"] == len(data) and image["format"] == "jpeg"
    assert image["sha256"] == hashlib.sha256(data).hexdigest()


# --- the /img/ cache -----------------------------------------------------------------------

#: PicHub's headers that a copy served by nginx must carry unchanged.
KEPT_HEADERS = ("Cache-Control", "Content-Type", "ETag", "Last-Modified", "Content-Length",
                "Accept-Ranges", "X-Content-Type-Options", "Referrer-Policy")


def counted(proxy: Proxy, method: str, route: str, status: int) -> float:
    """PicHub's own request counter (/metrics, asked directly) for one route and status."""
    text = requests.get(f"{proxy.pichub.base}/metrics", timeout=10).text
    found = re.search(rf'^pichub_http_requests_total{{method="{method}",route="{re.escape(route)}",'
                      rf'status="{status}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_repeated_hits_are_served_by_nginx_alone(proxy: Proxy) -> None:
    image_id = proxy.upload(samples.jpeg((640, 480)))
    path = f"/img/{image_id}.webp?w=200&h=150&fit=cover&q=80"
    first = proxy.get(path)
    assert first.status_code == 200 and first.headers["X-Cache-Status"] == "MISS"
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for _ in range(5):
        again = proxy.get(path)
        assert again.status_code == 200 and again.headers["X-Cache-Status"] == "HIT"
        assert again.content == first.content
        assert {name: again.headers[name] for name in KEPT_HEADERS} == {
            name: first.headers[name] for name in KEPT_HEADERS}
    head = requests.head(proxy.https + path, verify=proxy.cert, timeout=10)
    assert head.status_code == 200 and head.headers["X-Cache-Status"] == "HIT"
    assert head.content == b"" and head.headers["ETag"] == first.headers["ETag"]
    assert proxy.pichub_saw(path) == 1
    assert counted(proxy, "GET", "/img/{id}.{ext}", 200) == 1
    assert counted(proxy, "HEAD", "/img/{id}.{ext}", 200) == 0


def test_conditional_and_range_hits_are_answered_by_nginx(proxy: Proxy) -> None:
    image_id = proxy.upload(samples.jpeg((640, 480)))
    path = f"/img/{image_id}.webp?w=120"
    first = proxy.get(path)
    assert proxy.get(path).headers["X-Cache-Status"] == "HIT"
    not_modified = proxy.get(path, **{"If-None-Match": first.headers["ETag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    since = proxy.get(path, **{"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    partial = proxy.get(path, Range="bytes=0-9")
    assert partial.status_code == 206 and partial.content == first.content[:10]
    assert proxy.get(path, **{"If-None-Match": '"other"'}).status_code == 200
    assert proxy.pichub_saw(path) == 1


def test_fm_auto_is_cached_once_per_accept_value(proxy: Proxy) -> None:
    image_id = proxy.upload(samples.jpeg((300, 200)))
    path = f"/img/{image_id}?w=50&fm=auto"
    kinds = {"image/avif,image/webp,*/*": "image/avif", "image/webp,*/*": "image/webp",
             "*/*": "image/jpeg"}
    for cached in ("MISS", "HIT"):
        for accept, mime in kinds.items():
            got = proxy.get(path, Accept=accept)
            assert got.status_code == 200 and got.headers["X-Cache-Status"] == cached
            assert got.headers["Content-Type"] == mime and got.headers["Vary"] == "Accept"
    assert proxy.pichub_saw(path) == len(kinds)


def test_signatures_are_checked_by_pichub_for_every_uncached_url(make_proxy: MakeProxy) -> None:
    proxy = make_proxy(env={"PICHUB_IMAGES__SIGNING_KEY": SIGNING_KEY})
    image_id = proxy.upload(samples.jpeg())
    path = f"/img/{image_id}.webp"
    good = sign(path, {"w": "40"}, SIGNING_KEY)
    signed = f"{path}?w=40&s={good}"
    assert [proxy.get(signed).headers["X-Cache-Status"] for _ in range(2)] == ["MISS", "HIT"]
    wrong = sign(path, {"w": "40"}, "another key")
    for refused in (f"{path}?w=40", f"{path}?w=40&s={wrong}", f"{path}?w=41&s={good}"):
        for _ in range(2):  # a 403 is never cached: PicHub answers each one
            got = proxy.get(refused)
            assert got.status_code == 403 and got.json()["error"]["code"] == "FORBIDDEN"
        assert proxy.pichub_saw(refused) == 2
    assert proxy.pichub_saw(signed) == 1


def delete(proxy: Proxy, image_id: str) -> None:
    resp = requests.delete(f"{proxy.https}/api/v1/images/{image_id}", headers=proxy.headers(),
                           verify=proxy.cert, timeout=30)
    assert resp.status_code == 200, resp.text


def test_a_deleted_image_is_gone_once_the_copy_expires(make_proxy: MakeProxy) -> None:
    """nginx renews an expired copy with a conditional request (PicHub: 304) and drops it
    once PicHub answers 404. The validity is cut from 10 minutes to 2 s to wait it out
    (nginx counts whole seconds: a copy is fresh for 2 to 3 s)."""
    proxy = make_proxy(swaps={VALIDITY: "proxy_cache_valid 200 2s;"})
    image_id = proxy.upload(samples.jpeg())
    path = f"/img/{image_id}.webp?w=64"
    first = proxy.get(path)
    assert proxy.get(path).headers["X-Cache-Status"] == "HIT"
    time.sleep(3.5)
    renewed = proxy.get(path)
    assert renewed.headers["X-Cache-Status"] == "REVALIDATED"
    assert renewed.content == first.content and proxy.pichub_saw(path) == 2
    delete(proxy, image_id)
    assert proxy.get(path).status_code == 200  # nginx's copy, until it expires
    time.sleep(3.5)
    for _ in range(2):
        gone = proxy.get(path)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOT_FOUND"


def purge_command() -> str:
    """The command docs/deploy.md gives to remove an image from nginx's cache at once (run
    here without `sudo`: the test owns the cache)."""
    [line] = [line for line in DEPLOY.read_text().splitlines() if "xargs -r rm -f" in line]
    return line.strip().replace("sudo ", "")


def test_the_documented_purge_removes_an_image_from_nginx_at_once(proxy: Proxy) -> None:
    image_id = proxy.upload(samples.jpeg())
    other = proxy.upload(samples.jpeg((80, 60)))
    paths = [f"/img/{image_id}.webp", f"/img/{image_id}.webp?w=30", f"/img/{image_id}?w=31"]
    kept = f"/img/{other}.webp?w=30"
    for path in [*paths, kept] * 2:
        assert proxy.get(path).status_code == 200
    assert proxy.get(kept).headers["X-Cache-Status"] == "HIT"
    delete(proxy, image_id)
    command = purge_command().replace("/var/cache/nginx/pichub", str(proxy.cache))
    subprocess.run(["sh", "-c", command], env={"ID": image_id, "PATH": "/usr/bin:/bin"},
                   check=True, timeout=30)
    for path in paths:
        gone = proxy.get(path)
        assert gone.status_code == 404, (path, gone.headers.get("X-Cache-Status"))
    assert proxy.get(kept).headers["X-Cache-Status"] == "HIT"


# --- private images are never kept by nginx ------------------------------------------------


def upload_private(proxy: Proxy) -> str:
    resp = requests.post(f"{proxy.https}/api/v1/upload", headers=proxy.headers(),
                         files={"files[]": ("a.jpg", samples.jpeg((320, 240)))},
                         data={"visibility": "private", "convertToWebP": "false"},
                         verify=proxy.cert, timeout=30)
    assert resp.status_code == 201, resp.text
    assert resp.json()["data"][0]["visibility"] == "private"
    return str(resp.json()["data"][0]["id"])


def refused(got: requests.Response, image: bytes) -> None:
    """A 404 envelope that carries none of the image's bytes."""
    assert got.status_code == 404 and got.json()["error"]["code"] == "NOT_FOUND"
    assert got.headers.get("X-Cache-Status") != "HIT"
    assert image[:64] not in got.content and got.content[:2] != b"\xff\xd8"


def test_the_owners_view_of_a_private_image_is_not_served_to_anyone_else(proxy: Proxy) -> None:
    image_id = upload_private(proxy)
    path = f"/img/{image_id}.jpg?w=100"
    owned = []
    for _ in range(2):  # twice: a copy kept after the first answer would be a HIT
        got = proxy.get(path, **proxy.headers())
        assert got.status_code == 200 and got.content[:2] == b"\xff\xd8"
        assert got.headers["Cache-Control"].startswith("private")
        assert got.headers["X-Cache-Status"] != "HIT"
        owned.append(got.content)
    for _ in range(2):
        refused(proxy.get(path), owned[0])
    refused(proxy.get(f"/img/{image_id}.jpg"), owned[0])
    assert proxy.pichub_saw(path) == 4  # every request reached PicHub
    assert not [p for p in proxy.cache.rglob("*") if p.is_file() and image_id.encode()
                in p.read_bytes()], "nginx kept a private image on disk"


def test_a_signed_links_answer_is_not_served_without_its_signature(proxy: Proxy) -> None:
    image_id = upload_private(proxy)
    resp = requests.post(f"{proxy.https}/api/v1/images/{image_id}/links",
                         headers=proxy.headers(), json={"expires_in": 3600, "w": 80},
                         verify=proxy.cert, timeout=30)
    assert resp.status_code == 201, resp.text
    url = resp.json()["data"]["url"]
    assert url.startswith(f"{proxy.https}/img/{image_id}.") and "sig=" in url
    signed = url.removeprefix(proxy.https)
    seen = [proxy.get(signed) for _ in range(2)]
    assert [got.status_code for got in seen] == [200, 200]
    assert all(got.headers["X-Cache-Status"] != "HIT" for got in seen)
    body = seen[0].content
    base, query = signed.split("?", 1)
    kept = "&".join(part for part in query.split("&")
                    if not part.startswith(("sig=", "exp=")))
    for stripped in (f"{base}?{kept}", base,
                     signed.replace("sig=", "sig=0"), f"{base}?{kept}&exp=9999999999"):
        refused(proxy.get(stripped), body)
    assert proxy.pichub_saw(signed) == 2
