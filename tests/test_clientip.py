"""Client IP and base URL behind (and in front of) reverse proxies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from pichub.web.clientip import (
    Network,
    client_ip,
    forwarded_base_url,
    parse_address,
    parse_trusted,
    rate_limit_key,
    request_base_url,
    request_client_ip,
)

PROXIES = parse_trusted(["10.0.0.0/8", "fd00::/8"])
AioClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


def test_parse_trusted_accepts_hosts_and_networks() -> None:
    nets = parse_trusted(["10.1.2.3", " 192.168.0.0/16 ", "::1", "10.9.9.9/8"])
    assert [str(n) for n in nets] == ["10.1.2.3/32", "192.168.0.0/16", "::1/128", "10.0.0.0/8"]


def test_forged_forwarded_for_from_untrusted_peer_is_ignored() -> None:
    assert client_ip("203.0.113.7", "1.2.3.4", PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", "1.2.3.4", ()) == "203.0.113.7"


def test_forwarded_for_from_trusted_peer_is_honoured() -> None:
    assert client_ip("10.0.0.2", "198.51.100.9", PROXIES) == "198.51.100.9"


def test_no_forwarded_for_from_trusted_peer_gives_the_peer() -> None:
    assert client_ip("10.0.0.2", None, PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", "", PROXIES) == "10.0.0.2"


def test_rightmost_untrusted_is_picked_from_a_proxy_chain() -> None:
    # client forged "6.6.6.6"; real client 198.51.100.9; then two of our proxies
    chain = "6.6.6.6, 198.51.100.9, 10.1.1.1, 10.2.2.2"
    assert client_ip("10.0.0.2", chain, PROXIES) == "198.51.100.9"


def test_all_trusted_gives_the_leftmost() -> None:
    assert client_ip("10.0.0.2", "10.5.5.5, 10.1.1.1", PROXIES) == "10.5.5.5"


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("not-an-ip", "10.0.0.2"),  # garbage right after the proxy: the proxy itself
        ("198.51.100.9, 10.1.1.1, garbage", "10.0.0.2"),
        ("198.51.100.9, garbage, 10.1.1.1", "10.1.1.1"),  # last good trusted hop
        ("198.51.100.9, , 10.1.1.1", "10.1.1.1"),  # empty entry
        ("unknown", "10.0.0.2"),  # Squid's placeholder
        ("1.2.3.4.5", "10.0.0.2"),
        ("1.2.3.4\r\nX-Evil: 1", "10.0.0.2"),
        ("999.1.1.1", "10.0.0.2"),
    ],
)
def test_garbage_stops_the_walk_at_the_last_good_address(chain: str, expected: str) -> None:
    assert client_ip("10.0.0.2", chain, PROXIES) == expected


def test_ports_and_brackets_are_accepted() -> None:
    assert client_ip("10.0.0.2", "198.51.100.9:4711", PROXIES) == "198.51.100.9"
    assert client_ip("10.0.0.2", "[2001:db8::7]:443", PROXIES) == "2001:db8::7"
    assert client_ip("10.0.0.2", '"[2001:db8::8]"', PROXIES) == "2001:db8::8"


def test_ipv6_peers_and_chains() -> None:
    assert client_ip("2001:db8::1", "198.51.100.9", PROXIES) == "2001:db8::1"
    assert client_ip("fd00::2", "2001:db8::9, fd00::3", PROXIES) == "2001:db8::9"
    assert client_ip("fd00::2", "2001:DB8:0:0::9", PROXIES) == "2001:db8::9"  # canonical


def test_ipv4_mapped_peer_matches_ipv4_networks() -> None:
    assert client_ip("::ffff:10.0.0.2", "198.51.100.9", PROXIES) == "198.51.100.9"
    assert client_ip("::ffff:203.0.113.7", "198.51.100.9", PROXIES) == "203.0.113.7"


def test_unparsable_peer_is_unknown_and_never_trusted() -> None:
    assert client_ip(None, "198.51.100.9", PROXIES) == "unknown"
    assert client_ip("", "198.51.100.9", PROXIES) == "unknown"


def test_parse_address_rejects_non_addresses() -> None:
    for value in ["", "example.com", "1.2.3", "[1.2.3.4", "::g", "1.2.3.4:99999"]:
        assert parse_address(value) is None, value


def test_rate_limit_key_groups_ipv6_by_64() -> None:
    assert rate_limit_key("198.51.100.9") == "ip:198.51.100.9"
    assert rate_limit_key("2001:db8:1:2:aaaa::1") == "ip6:2001:db8:1:2::"
    assert rate_limit_key("2001:db8:1:2:bbbb::9") == rate_limit_key("2001:db8:1:2::5")
    assert rate_limit_key("2001:db8:1:3::1") != rate_limit_key("2001:db8:1:2::1")
    assert rate_limit_key("unknown") == "ip:unknown"


FORWARDED = {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "pics.example.org, inner"}


def test_base_url_prefers_public_url() -> None:
    url = forwarded_base_url(
        "http", "internal:8080", "10.0.0.2", FORWARDED, PROXIES, "https://cdn.example.com/"
    )
    assert url == "https://cdn.example.com"


def test_base_url_honours_forwarded_headers_from_trusted_peer() -> None:
    url = forwarded_base_url("http", "internal:8080", "10.0.0.2", FORWARDED, PROXIES, None)
    assert url == "https://pics.example.org"


def test_base_url_ignores_forwarded_headers_from_untrusted_peer() -> None:
    url = forwarded_base_url("http", "internal:8080", "203.0.113.7", FORWARDED, PROXIES, None)
    assert url == "http://internal:8080"


def test_base_url_header_names_are_case_insensitive() -> None:
    headers = {"x-forwarded-proto": "HTTPS", "x-forwarded-host": "[2001:db8::1]:8443"}
    url = forwarded_base_url("http", "a", "10.0.0.2", headers, PROXIES, None)
    assert url == "https://[2001:db8::1]:8443"


@pytest.mark.parametrize(
    ("headers", "host", "expected"),
    [
        ({"X-Forwarded-Proto": "javascript"}, "a.example", "http://a.example"),
        ({"X-Forwarded-Host": "evil.example/path"}, "a.example", "http://a.example"),
        ({"X-Forwarded-Host": "x@evil.example"}, "a.example", "http://a.example"),
        ({}, "bad host/with path", "http://localhost"),
        ({}, "", "http://localhost"),
    ],
)
def test_base_url_rejects_malformed_values(
    headers: dict[str, str], host: str, expected: str
) -> None:
    assert forwarded_base_url("http", host, "10.0.0.2", headers, PROXIES, None) == expected


def _echo_app(trusted: tuple[Network, ...], public_url: str | None) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "ip": request_client_ip(request, trusted),
                "base": request_base_url(request, trusted, public_url),
            }
        )

    app = web.Application()
    app.router.add_get("/", echo)
    return app


async def test_request_helpers_on_a_real_server_untrusted(aiohttp_client: AioClient) -> None:
    client = await aiohttp_client(_echo_app((), None))
    headers = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
    body = await (await client.get("/", headers=headers)).json()
    assert body["ip"] == "127.0.0.1"
    assert body["base"] == f"http://127.0.0.1:{client.port}"


async def test_request_helpers_on_a_real_server_trusted(aiohttp_client: AioClient) -> None:
    client = await aiohttp_client(_echo_app(parse_trusted(["127.0.0.0/8"]), None))
    headers = CIMultiDict(
        [
            ("X-Forwarded-For", "6.6.6.6, 198.51.100.9"),
            ("X-Forwarded-For", "127.0.0.5"),  # a second header line, appended by a proxy
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "pics.example.org"),
        ]
    )
    body = await (await client.get("/", headers=headers)).json()
    assert body == {"ip": "198.51.100.9", "base": "https://pics.example.org"}


async def test_request_base_url_uses_public_url(aiohttp_client: AioClient) -> None:
    client = await aiohttp_client(_echo_app((), "https://img.example.net"))
    body = await (await client.get("/")).json()
    assert body["base"] == "https://img.example.net"
