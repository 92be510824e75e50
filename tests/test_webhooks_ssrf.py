"""SSRF guard: check_url at creation, GuardedResolver at connect time (real local receiver)."""

from __future__ import annotations

import ipaddress
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pichub.errors import ValidationError
from pichub.webhooks import ssrf
from tests.support.dns import FakeDNS

PRIVATE_URLS = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.10/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://localhost:8080/hook",
]




def _field_error(exc: ValidationError) -> Any:
    assert exc.status == 422
    return exc.details[0]["field"]


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_targets_refused_by_default(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        await ssrf.check_url(url, allow_private=False)
    assert _field_error(info.value) == "url"
    assert "allow_private_networks" in info.value.message


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_targets_allowed_with_the_flag(url: str) -> None:
    addresses = await ssrf.check_url(url, allow_private=True)
    assert addresses and all(ssrf.is_blocked(ip) for ip in addresses)


@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", "https://[2606:4700:4700::1111]:8443/"])
async def test_public_literal_addresses_pass_without_dns(url: str) -> None:
    addresses = await ssrf.check_url(url, allow_private=False)
    assert len(addresses) == 1 and addresses[0].is_global


async def test_host_names_are_checked_on_every_address() -> None:
    dns = FakeDNS({"hooks.example": ["93.184.216.34"], "mixed.example": ["10.0.0.7"]})
    assert await ssrf.check_url("https://hooks.example/x", False, dns) == [
        ipaddress.ip_address("93.184.216.34")
    ]
    with pytest.raises(ValidationError):
        await ssrf.check_url("https://mixed.example/x", False, dns)


@pytest.mark.parametrize("url", ["ftp://example.com/", "javascript:alert(1)", "http://",
                                 "file:///etc/passwd", "example.com/hook", ""])
async def test_non_http_urls_and_missing_hosts_are_422(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        await ssrf.check_url(url, allow_private=True)
    assert _field_error(info.value) == "url"


async def test_unresolvable_host_is_422() -> None:
    with pytest.raises(ValidationError) as info:
        await ssrf.check_url("http://nothing.invalid/", False, FakeDNS({}))
    assert "resolve" in info.value.message


async def _receiver(aiohttp_server: Any) -> tuple[Any, list[str]]:
    seen: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    return await aiohttp_server(app), seen


async def test_resolver_refuses_a_rebound_name_and_nothing_reaches_the_receiver(
    aiohttp_server: Any,
) -> None:
    server, seen = await _receiver(aiohttp_server)
    # First answer public (creation check passes), then the name rebinds to loopback.
    dns = FakeDNS({"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    url = f"http://rebind.example:{server.port}/hook"
    await ssrf.check_url(url, False, dns)
    connector = aiohttp.TCPConnector(resolver=ssrf.GuardedResolver(False, dns),
                                     use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.post(url, data=b"{}")
    assert isinstance(info.value.os_error, ssrf.RefusedAddress)
    assert seen == []


async def test_connection_goes_to_the_checked_address(aiohttp_server: Any) -> None:
    server, seen = await _receiver(aiohttp_server)
    # The name exists only in the fake DNS: reaching the receiver proves the
    # socket connected to the address the guarded resolver returned.
    dns = FakeDNS({"receiver.example": ["127.0.0.1"]})
    connector = aiohttp.TCPConnector(resolver=ssrf.GuardedResolver(True, dns),
                                     use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"http://receiver.example:{server.port}/hook", data=b"{}") as r:
            assert r.status == 200
    assert seen == ["/hook"]
    assert dns.lookups == ["receiver.example"]


def test_is_blocked_table() -> None:
    blocked = ["127.0.0.1", "10.0.0.1", "169.254.0.1", "::1", "::ffff:192.168.0.1", "fe80::1"]
    allowed = ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
    assert all(ssrf.is_blocked(ipaddress.ip_address(a)) for a in blocked)
    assert not any(ssrf.is_blocked(ipaddress.ip_address(a)) for a in allowed)
