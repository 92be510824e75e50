"""Settings: defaults, TOML, env overrides, one-line errors, and the documented example."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from pichub.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert (s.server.host, s.server.port, s.server.public_url) == ("127.0.0.1", 8080, None)
    assert s.server.trusted_proxies == [] and s.server.shutdown_timeout_s == 30
    assert s.storage.data_dir == Path("./pichub-data")
    assert (s.storage.max_upload_mb, s.storage.max_pixels, s.storage.max_frames,
            s.storage.min_free_mb, s.storage.max_decode_mb) == (50, 100_000_000, 500, 512, 400)
    assert (s.images.default_quality, s.images.max_dimension, s.images.cache_max_mb) == (
        85, 4096, 1024)
    assert s.images.signing_key is None and s.images.workers >= 1
    r = s.rate_limits
    assert (r.enabled, r.api, r.upload, r.img_miss, r.login, r.storage_uri) == (
        True, "60/minute;1000/hour;10000/day", "10/minute", "120/minute", "10/minute",
        "memory://")
    w = s.webhooks
    assert (w.url, w.secret, w.allow_private_networks, w.timeout_s, w.max_attempts,
            w.backoff_base_s) == (None, None, False, 10, 8, 30)


def test_toml_then_env_then_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[storage]\nmax_upload_mb = 5\n')
    monkeypatch.setenv("PICHUB_SERVER__PORT", "9100")
    monkeypatch.setenv("PICHUB_NOT_A_THING", "ignored")
    monkeypatch.setenv("PICHUB_SERVER__NOPE", "ignored too")
    s = load_settings(cfg)
    assert (s.server.port, s.server.host, s.storage.max_upload_mb) == (9100, "0.0.0.0", 5)
    s = load_settings(cfg, storage={"data_dir": tmp_path / "d"})
    assert s.storage.data_dir == tmp_path / "d" and s.storage.max_upload_mb == 5
    monkeypatch.setenv("PICHUB_CONFIG", str(cfg))
    assert load_settings().server.host == "0.0.0.0"


@pytest.mark.parametrize(("text", "needle"), [
    ("[server]\nprot = 1\n", "server.prot"),
    ("[servre]\nport = 1\n", "[servre]"),
    ("[server]\nport = 'x'\n", "server.port"),
    ("[server]\nport = 70000\n", "server.port"),
    ("[server]\ntrusted_proxies = ['10.0.0.0/33']\n", "server.trusted_proxies"),
    ("[rate_limits]\napi = 'lots'\n", "rate_limits.api"),
    ("[rate_limits]\nstorage_uri = 'memcached://localhost:11211'\n", "rate_limits.storage_uri"),
    ("[server]\nallowed_hosts = ['img.example.com/x']\n", "server.allowed_hosts"),
    ("[images]\ndefault_quality = 0\n", "images.default_quality"),
    ("[database]\nurl = 'mysql://db/pichub'\n", "database.url"),
    ("[database]\npool_size = 2\n", "database.pool_size"),
    ("[storage]\nbackend = 'ftp'\n", "storage.backend"),
    ("[storage.s3]\nserve = 'stream'\n", "storage.s3.serve"),
    ("not toml at all [", "not valid TOML"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nport = 'eighty'\n")
    proc = subprocess.run([sys.executable, "-m", "pichub", "serve", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "server.port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_example_config_parses_and_documents_every_key() -> None:
    example = ROOT / "config.example.toml"
    s = load_settings(example)
    assert isinstance(s, Settings)
    text = example.read_text()
    data = tomllib.loads(text)
    for section, info in Settings.model_fields.items():
        assert f"[{section}]" in text
        model = info.annotation
        assert model is not None
        for key, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):  # a nested table
                assert f"[{section}.{key}]" in text, f"[{section}.{key}] undocumented"
                for inner in sub.model_fields:
                    assert f"{inner} =" in text, f"{section}.{key}.{inner} undocumented"
                continue
            assert f"{key} =" in text or f"# {key} =" in text, f"{section}.{key} undocumented"
    assert data["server"]["port"] == 8080
