"""Start-up: failures exit at once with one line; what the server says when it is up.

Reported: a ConfigError or any other failure after the banner was printed, and
the process kept running, neither listening nor exiting (the database threads
opened by the app were never closed), so systemd and scripts never saw it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support.server import PICHUB, Server, free_port

ENV = {"PATH": "/usr/bin:/bin", "PICHUB_STORAGE__MIN_FREE_MB": "0"}


def serve(data_dir: Path, port: int, env: dict[str, str] | None = None,
          command: tuple[str, ...] = PICHUB) -> subprocess.CompletedProcess[str]:
    """`pichub serve`, which must exit by itself: the timeout fails the test if it hangs."""
    return subprocess.run([*command, "serve", "--data-dir", str(data_dir), "--port", str(port)],
                          capture_output=True, text=True, timeout=30, env={**ENV, **(env or {})})


def the_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line on stderr (log lines may precede it), and no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith(("error:", "config:"))]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_an_unsupported_rate_limit_storage_exits_2(tmp_path: Path) -> None:
    proc = serve(tmp_path / "data", free_port(),
                 {"PICHUB_RATE_LIMITS__STORAGE_URI": "memcached://127.0.0.1:11211"})
    assert proc.returncode == 2
    assert "rate_limits.storage_uri" in the_error(proc)


def test_redis_storage_without_the_redis_package_exits_2(tmp_path: Path) -> None:
    """As in an installation that lacks the package: importing it fails."""
    without_redis = (sys.executable, "-c", "import sys; sys.modules['redis'] = None; "
                     "from pichub.cli import main; raise SystemExit(main(sys.argv[1:]))")
    proc = serve(tmp_path / "data", free_port(),
                 {"PICHUB_RATE_LIMITS__STORAGE_URI": "redis://127.0.0.1:6379/0"}, without_redis)
    assert proc.returncode == 2
    line = the_error(proc)
    assert "rate_limits.storage_uri" in line and "'redis' package" in line


def test_a_port_in_use_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = serve(tmp_path / "data", port)
    assert proc.returncode == 1
    assert "API token" in proc.stdout  # the failure comes after the first-start banner
    line = the_error(proc)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in line


def test_a_failure_after_the_database_opened_exits_1(tmp_path: Path) -> None:
    """`tmp/` cannot be made (a file is in the way) once the app's database is open."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "tmp").write_text("in the way")
    proc = serve(data, free_port())
    assert proc.returncode == 1
    assert "tmp" in the_error(proc)


def test_start_up_names_the_allowed_hosts_and_warns_of_unsigned_webhooks(
        tmp_path: Path) -> None:
    unsigned = Server(tmp_path / "a", env={"PICHUB_WEBHOOKS__URL": "http://127.0.0.1:9/hook"})
    unsigned.wait_for_line("webhooks.secret")
    unsigned.stop()
    assert ("Allowed hosts: localhost, 127.0.0.1, ::1 (add another name with "
            "server.allowed_hosts)") in unsigned.logged
    warning = next(line for line in unsigned.logged.splitlines() if "webhooks.secret" in line)
    assert "WARNING" in warning and "webhooks.url" in warning and "not signed" in warning

    signed = Server(tmp_path / "b", env={"PICHUB_WEBHOOKS__URL": "http://127.0.0.1:9/hook",
                                         "PICHUB_WEBHOOKS__SECRET": "whsec_c2VjcmV0c2VjcmV0"})
    signed.stop()
    assert "Allowed hosts:" in signed.logged and "not signed" not in signed.logged
