"""docs/nginx.conf run by a real nginx in the foreground, for tests/test_nginx.py and the bench.

The sample site is used as written: only the upstream port, the listen addresses,
the certificate (a self-signed one made here with openssl) and the cache path are
swapped, plus whatever a caller adds (`extra`), and each swap must find its text
exactly once, so the sample cannot drift from what is tested and measured.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "nginx.conf"
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
NGINX = shutil.which("nginx", path=SBIN_PATH)
OPENSSL = shutil.which("openssl", path=SBIN_PATH)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    assert OPENSSL is not None, "openssl is not installed"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def site(pichub_port: int, https_port: int, http_port: int, cert: Path, key: Path,
         cache: Path, extra: dict[str, str] | None = None) -> str:
    """docs/nginx.conf with the deployment-specific values swapped for the caller's."""
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
        **(extra or {}),
    }
    for old, new in swaps.items():
        assert text.count(old) == 1, f"docs/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def main_config(tmp: Path, site_text: str, workers: int = 1) -> str:
    """What /etc/nginx/nginx.conf provides, with every path in the caller's tmp dir."""
    user = "user root root;" if os.geteuid() == 0 else ""  # workers must reach tmp (0700)
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
daemon off;
worker_processes {workers};
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp / "access.log"};
{temp}
{site_text}
}}
"""


class Nginx:
    """nginx running docs/nginx.conf in front of PicHub on `pichub_port`, from `folder`.

    `https` is its TLS address; `cert` the certificate to verify it with; `cache` the
    directory of its /img/ cache.
    """

    def __init__(self, folder: Path, pichub_port: int, extra: dict[str, str] | None = None,
                 workers: int = 1) -> None:
        assert NGINX is not None, "nginx is not installed"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        cert, key = make_certificate(folder)
        self.cert = str(cert)
        self.cache = folder / "cache"
        https_port, http_port = free_port(), free_port()
        self.https = f"https://127.0.0.1:{https_port}"
        self.http = f"http://127.0.0.1:{http_port}"
        conf = folder / "nginx.conf"
        conf.write_text(main_config(folder, site(pichub_port, https_port, http_port, cert, key,
                                                 self.cache, extra), workers))
        self.log = folder / "error.log"
        self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(folder), "-e",
                                      str(self.log)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_listening(https_port)
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, port: int) -> None:
        for _ in range(200):
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited:\n" + self.log.read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen:\n" + self.log.read_text(errors="replace"))

    def worker_pids(self) -> list[int]:
        """The worker processes (not the cache manager and loader), for their CPU time."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()
                if b"worker process" in Path(f"/proc/{pid}/cmdline").read_bytes()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
