"""Processes sharing one data directory (docs/scale-out.md): each gets a variant cache of
its own, only one that starts alone empties `tmp/`, and several may start at once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from pichub.app import STALE_TMP_S, _claim_cache, _claim_tmp
from tests.support.server import PICHUB, free_port


def test_each_process_gets_its_own_cache_directory(tmp_path: Path) -> None:
    first, lock1 = _claim_cache(tmp_path / "cache")
    second, lock2 = _claim_cache(tmp_path / "cache")
    assert (first.name, second.name) == ("cache", "cache-1")
    assert lock1 is not None and lock2 is not None
    os.close(lock1)  # the first process stopped: a new one takes its (warm) directory
    again, lock3 = _claim_cache(tmp_path / "cache")
    assert again == first and lock3 is not None
    for fd in (lock2, lock3):
        os.close(fd)


def test_only_a_process_alone_empties_tmp(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    fd, alone = _claim_tmp(tmp)
    assert alone
    receiving, leftover = tmp / "upload-receiving", tmp / "upload-leftover"
    receiving.write_bytes(b"part of an upload")
    leftover.write_bytes(b"from a crash")
    old = time.time() - STALE_TMP_S - 60
    os.utime(leftover, (old, old))
    fd2, alone2 = _claim_tmp(tmp)  # a second process starts beside the first
    assert not alone2
    assert receiving.exists() and not leftover.exists()
    for held in (fd, fd2):
        os.close(held)
    fd3, alone3 = _claim_tmp(tmp)  # both stopped: the next one is alone
    assert alone3 and list(tmp.iterdir()) == []
    os.close(fd3)


def test_processes_starting_at_once_on_a_new_data_directory(tmp_path: Path) -> None:
    """Migrations, the first admin and the server key are made once, whoever comes first."""
    procs = [subprocess.Popen([*PICHUB, "serve", "--data-dir", str(tmp_path), "--port",
                               str(free_port())], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={"PATH": "/usr/bin:/bin", "PICHUB_STORAGE__MIN_FREE_MB": "0"})
             for _ in range(3)]
    outputs = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if "listening on" in line:
                    break
            outputs.append("".join(lines))
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=30)
    assert all("listening on" in out for out in outputs), outputs
    assert sum("API token:" in out for out in outputs) == 1
    assert len(list(tmp_path.glob("secret.key*"))) == 1
