"""server.allowed_hosts: the pure rules (pichub.hosts), then the middleware on a real app."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pichub import hosts
from pichub.hosts import AllowedHosts, derive, host_of, normalize
from tests import samples
from tests.conftest import Api, ApiFactory, make_settings

MACHINE = ["box", "box.lan.example", "192.168.1.20", "fe80::1%eth0", "2001:db8::20"]


def no_lookup() -> list[str]:
    raise AssertionError("the machine's names are only looked up for a wildcard listen")


@pytest.mark.parametrize(("header", "host"), [
    ("img.example.com", "img.example.com"),
    ("Img.Example.COM:8443", "img.example.com"),
    ("img.example.com.", "img.example.com"),
    ("127.0.0.1:8080", "127.0.0.1"),
    ("[::1]:8080", "::1"),
    ("[2001:DB8::1]", "2001:db8::1"),
    ("", None),
    ("::1", None),  # IPv6 needs brackets in a Host header
    ("[not-an-address]", None),
    ("evil.example/path", None),
    ("user@evil.example", None),
    ("a b", None),
])
def test_host_of(header: str, host: str | None) -> None:
    assert host_of(header) == host


@pytest.mark.parametrize("entry", ["img.example.com/", "http://x", "a b", "", "[::1"])
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        normalize(entry)


def test_exact_domain_and_any() -> None:
    allowed = AllowedHosts(tuple(normalize(e) for e in ["Img.Example.com", ".pics.example",
                                                         "[::1]"]))
    assert allowed.allows("img.example.com") and allowed.allows("::1")
    assert allowed.allows("pics.example") and allowed.allows("a.b.pics.example")
    assert not allowed.allows("example.com") and not allowed.allows("evilpics.example")
    assert not allowed.allows("sub.img.example.com")
    assert AllowedHosts(("*",)).allows("anything.example")


def test_derived_from_public_url_and_listen_host() -> None:
    allowed = derive([], "10.0.0.5", "https://img.example.com:8443/base", no_lookup)
    assert allowed.entries == ("localhost", "127.0.0.1", "::1", "img.example.com", "10.0.0.5")
    assert derive([], "127.0.0.1", None, no_lookup).entries == hosts.LOOPBACK


def test_derived_on_a_wildcard_listen_adds_the_machine() -> None:
    allowed = derive([], "0.0.0.0", None, lambda: MACHINE)
    assert allowed.entries == ("localhost", "127.0.0.1", "::1", "box", "box.lan.example",
                               "192.168.1.20", "fe80::1", "2001:db8::20")
    with_url = derive([], "::", "https://img.example.com", no_lookup)
    assert with_url.entries == ("localhost", "127.0.0.1", "::1", "img.example.com")


def test_a_configured_list_replaces_the_derived_one_but_keeps_loopback() -> None:
    allowed = derive(["IMG.example.com", ".example.org"], "0.0.0.0", "https://x.example",
                     no_lookup)
    assert allowed.entries == ("localhost", "127.0.0.1", "::1", "img.example.com",
                               ".example.org")


def test_machine_names_include_the_host_name() -> None:
    assert socket.gethostname() in hosts.machine_names()


async def get(api: Api, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with api.client.get(path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def test_another_host_gets_400_with_the_envelope(api: Api) -> None:
    status, body = await get(api, "/api/v1/square", {"Host": "rebound.attacker.example"})
    assert status == 400
    assert body["success"] is False and body["error"]["code"] == "BAD_REQUEST"
    assert "rebound.attacker.example" in body["message"]
    status, _ = await get(api, "/api/v1/square", {"Host": "localhost:8080"})
    assert status == 200


async def test_a_browser_gets_the_error_page(api: Api) -> None:
    status, page = await get(api, "/", {"Host": "rebound.attacker.example",
                                        "Accept": "text/html"})
    assert status == 400 and "<html" in page.lower()


async def test_an_upload_never_names_a_refused_host(api: Api) -> None:
    status, body = await api.upload(("a.jpg", samples.jpeg()),
                                    headers={"Host": "evil.example"})
    assert status == 400 and "data" not in body


async def test_a_trusted_proxys_forwarded_host_must_be_allowed_too(
        make_api: ApiFactory, tmp_path: Path) -> None:
    api = await make_api(make_settings(tmp_path, server={
        "trusted_proxies": ["127.0.0.1/32", "::1/128"], "allowed_hosts": ["img.example.com"]}))
    status, body = await api.upload(("a.jpg", samples.jpeg()),
                                    headers={"X-Forwarded-Host": "img.example.com"})
    assert status == 201 and body["data"][0]["url"].startswith("http://img.example.com/")
    status, body = await get(api, "/api/v1/square", {"X-Forwarded-Host": "evil.example"})
    assert status == 400 and "evil.example" in body["message"]


async def test_an_untrusted_peers_forwarded_host_is_ignored_not_refused(api: Api) -> None:
    status, _ = await get(api, "/api/v1/square", {"X-Forwarded-Host": "evil.example"})
    assert status == 200
