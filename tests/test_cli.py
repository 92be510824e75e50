"""The `pichub` CLI against a real server subprocess on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pichub import cli
from pichub.db.database import Database
from pichub.services import accounts
from tests import samples
from tests.support.server import Server, pichub


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


def test_first_start_prints_admin_once_and_token_works(server: Server, tmp_path: Path) -> None:
    out = server.output
    assert "username:  admin" in out
    token = re.search(r"API token: (\S+)", out)
    password = re.search(r"password:  (\S+)", out)
    assert token and password and len(password.group(1)) >= 12
    resp = requests.post(f"{server.base}/api/v1/upload",
                         headers={"Authorization": f"Bearer {token.group(1)}"},
                         files={"files[]": ("a.jpg", samples.jpeg())}, timeout=30)
    assert resp.status_code == 201, resp.text
    url = resp.json()["data"][0]["url"]
    assert url.startswith(server.base + "/img/")
    assert requests.get(url, timeout=10).content[:4] == b"RIFF"
    server.stop()
    again = Server(server.data_dir)
    try:
        assert "API token" not in again.output
    finally:
        again.stop()


def test_user_and_token_commands(server: Server) -> None:
    data = ["--data-dir", str(server.data_dir)]
    made = pichub("user", "create", "bob", "--quota-mb", "5", "--password-stdin", *data,
                  stdin="hunter2hunter2\n")
    assert made.returncode == 0, made.stderr
    dup = pichub("user", "create", "bob", "--password-stdin", *data, stdin="hunter2hunter2\n")
    assert dup.returncode == 1 and "taken" in dup.stderr
    listed = pichub("user", "list", *data)
    assert "admin" in listed.stdout and "bob" in listed.stdout and "5MB" in listed.stdout

    created = pichub("token", "create", "bob", "--name", "picgo", "--scope", "read", *data)
    assert created.returncode == 0
    token = created.stdout.strip()
    assert "\n" not in token and token.startswith("ph_") and len(token) >= 43
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.base}/api/v1/images", headers=headers, timeout=10).ok
    resp = requests.post(f"{server.base}/api/v1/albums", headers=headers, json={"name": "x"},
                         timeout=10)
    assert resp.status_code == 403

    table = pichub("token", "list", "bob", *data).stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "SCOPE", "CREATED", "LAST", "USED"]
    row = table[1].split()
    assert row[1:3] == ["picgo", "read"] and row[0].isdigit()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[4])  # used just now

    revoked = pichub("token", "revoke", row[0], *data)
    assert revoked.returncode == 0
    resp = requests.get(f"{server.base}/api/v1/images", headers=headers, timeout=10)
    assert resp.status_code == 401
    assert pichub("token", "revoke", row[0], *data).returncode == 1
    assert pichub("token", "list", "nobody", *data).returncode == 1


def test_help_lists_commands() -> None:
    out = pichub("--help").stdout
    for word in ("serve", "user", "token"):
        assert word in out


def test_access_log_lines_reach_the_output(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data")
    requests.get(srv.base + "/api/v1/square?page=1", timeout=10)
    srv.stop()
    rest = srv.logged
    lines = [line for line in rest.splitlines() if "pichub.access" in line]
    assert any('method=GET path="/api/v1/square?page=1" status=200' in line
               and "client=127.0.0.1" in line for line in lines), rest


def test_user_disable_enable_delete(server: Server) -> None:
    data = ["--data-dir", str(server.data_dir)]
    assert pichub("user", "create", "bob", "--password-stdin", *data,
                  stdin="hunter2hunter2\n").returncode == 0
    token = pichub("token", "create", "bob", *data).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    resp = requests.post(f"{server.base}/api/v1/upload", headers=headers,
                         files={"files[]": ("a.jpg", samples.jpeg())}, timeout=30)
    assert resp.status_code == 201, resp.text
    image_id = resp.json()["data"][0]["id"]
    blob = server.data_dir / "blobs" / image_id[:2] / image_id[2:4] / f"{image_id}.webp"
    assert blob.exists()
    images = f"{server.base}/api/v1/images"
    assert pichub("user", "disable", "bob", *data).returncode == 0
    assert requests.get(images, headers=headers, timeout=10).status_code == 401  # at once
    assert pichub("user", "enable", "bob", *data).returncode == 0
    assert requests.get(images, headers=headers, timeout=10).status_code == 200
    refused = pichub("user", "delete", "bob", *data)  # no terminal and no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr and blob.exists()
    deleted = pichub("user", "delete", "bob", "--yes", *data)
    assert deleted.returncode == 0, deleted.stderr
    assert not blob.exists()
    assert requests.get(images, headers=headers, timeout=10).status_code == 401
    assert requests.get(f"{server.base}/img/{image_id}.webp", timeout=10).status_code == 404
    assert "bob" not in pichub("user", "list", *data).stdout
    assert pichub("user", "disable", "bob", *data).returncode == 1


def test_invite_create_prints_a_working_link(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", {"PICHUB_AUTH__REGISTRATION": "invite"})
    try:
        data = ["--data-dir", str(srv.data_dir)]
        made = pichub("invite", "create", "--expires", "2h", "--note", "for dora", *data)
        assert made.returncode == 0, made.stderr
        link = made.stdout.strip()
        assert "\n" not in link and "/signup?invite=" in link and "single use" in made.stderr
        path = link[link.index("/signup"):]
        browser = requests.Session()
        page = browser.get(srv.base + path, timeout=10)
        assert page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
        assert csrf is not None
        form = {"csrf_token": csrf.group(1), "username": "dora", "password": "hunter2hunter2",
                "confirm_password": "hunter2hunter2", "invite": path.split("=", 1)[1]}
        done = browser.post(srv.base + "/signup", data=form, allow_redirects=False, timeout=10)
        assert done.status_code == 303 and done.headers["Location"] == "/dashboard"
        assert requests.get(srv.base + path, timeout=10).status_code == 403  # used once
        assert "dora" in pichub("user", "list", *data).stdout
        assert pichub("invite", "create", "--expires", "soon", *data).returncode == 2
    finally:
        srv.stop()


def test_user_reset_2fa(tmp_path: Path) -> None:
    """In-process (no server needed): the TOTP secret and recovery codes go."""
    data = ["--data-dir", str(tmp_path / "data")]
    db_path = tmp_path / "data" / "pichub.db"
    asyncio.run(_with_totp(db_path))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["user", "reset-2fa", "bob", *data]) == 0
    assert "two-factor sign-in of bob is off" in out.getvalue()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM totp").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM recovery_codes").fetchone() == (0,)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["user", "reset-2fa", "nobody", *data]) == 1
    assert "error:" in err.getvalue()


async def _with_totp(db_path: Path) -> None:
    """bob, with a (confirmed) TOTP secret and a recovery code, straight in the database."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = await Database.open(db_path)
    try:
        bob = await accounts.create_user(db, "bob", "password-bob")
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO totp (user_id, secret, confirmed_at, created_at)"
                               " VALUES (?, 'sealed', '2026-01-01', '2026-01-01')", (bob,))
            await conn.execute("INSERT INTO recovery_codes (user_id, code_hash)"
                               " VALUES (?, 'h')", (bob,))
    finally:
        await db.close()
