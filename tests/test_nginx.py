"""docs/nginx.conf in front of a real `pichub serve` (docs/deploy.md).

Debian's nginx runs in the foreground on 127.0.0.1 with the sample site as
written: only the upstream port, the listen addresses, the certificate (a
self-signed one made here with openssl) and the cache path are swapped, and
each swap must find its line, so the sample cannot drift from what is tested.
PicHub trusts 127.0.0.1 as its proxy. Skipped only when nginx or openssl is
missing outside CI.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests import samples
from tests.support.server import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "docs" / "nginx.conf"
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
NGINX = shutil.which("nginx", path=SBIN_PATH)
OPENSSL = shutil.which("openssl", path=SBIN_PATH)
FORGED = "198.51.100.7"

if (NGINX is None or OPENSSL is None) and os.environ.get("CI") != "true":
    pytest.skip("nginx or openssl not installed (apt-get install nginx openssl); "
                "required when CI=true", allow_module_level=True)


class ProxiedServer(Server):
    """tests.support.server.Server, configured to sit behind nginx on 127.0.0.1."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, env={
            "PICHUB_STORAGE__MAX_UPLOAD_MB": "50",
            "PICHUB_SERVER__TRUSTED_PROXIES": '["127.0.0.1/32"]',
            "PICHUB_RATE_LIMITS__ENABLED": "true",
            "PICHUB_RATE_LIMITS__API": "6/hour",
        })


@dataclass
class Proxy:
    """nginx running the sample in front of PicHub."""

    https: str          # https://127.0.0.1:PORT
    http: str           # the plain-HTTP server that redirects
    cert: str           # the self-signed certificate, for `verify=`
    pichub: ProxiedServer
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    assert OPENSSL is not None
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def site(pichub_port: int, https_port: int, http_port: int, cert: Path, key: Path,
         cache: Path) -> str:
    """docs/nginx.conf with the deployment-specific values swapped for the test's."""
    text = SAMPLE.read_text()
    swaps = {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{pichub_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "/etc/letsencrypt/live/img.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/img.example.com/privkey.pem": str(key),
        "/var/cache/nginx/pichub": str(cache),
    }
    for old, new in swaps.items():
        assert text.count(old) == 1, f"docs/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def main_config(tmp: Path, site_text: str) -> str:
    """What /etc/nginx/nginx.conf provides, with every path in the test's tmp dir."""
    user = "user root root;" if os.geteuid() == 0 else ""  # workers must reach tmp (0700)
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
daemon off;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp / "access.log"};
{temp}
{site_text}
}}
"""


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError("nginx exited:\n" + log.read_text(errors="replace"))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx did not listen:\n" + log.read_text(errors="replace"))


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    assert NGINX is not None, "nginx is required in CI (apt-get install nginx)"
    conf_dir = tmp_path / "nginx"
    conf_dir.mkdir()
    cert, key = make_certificate(conf_dir)
    pichub = ProxiedServer(tmp_path / "data")
    https_port, http_port = free_port(), free_port()
    conf = conf_dir / "nginx.conf"
    conf.write_text(main_config(conf_dir, site(pichub.port, https_port, http_port, cert, key,
                                                conf_dir / "cache")))
    log = conf_dir / "error.log"
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(conf_dir), "-e", str(log)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(https_port, nginx, log)
        token = pichub.output.split("API token: ", 1)[1].split()[0]
        yield Proxy(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", str(cert),
                    pichub, token)
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(timeout=10)
        pichub.stop()


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
    assert got.headers["X-Cache-Status"] == "MISS"  # the optional /img/ cache is active

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
