"""Who is calling, and under which base URL: proxy-aware, spoof-resistant.

`X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are honoured
only when the socket peer is in `server.trusted_proxies` (docs/security.md); from
anyone else they are ignored, since any client can send them. The functions
are pure; the two `request_*` helpers at the bottom adapt them to aiohttp.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence

from aiohttp import web

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT = "unknown"
_PORT_SUFFIX = re.compile(r"^(?P<ip>[0-9.]+):(?P<port>\d{1,5})$")
_BRACKETED = re.compile(r"^\[(?P<ip>[0-9A-Fa-f:.]+)\](?::(?P<port>\d{1,5}))?$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?$")


def parse_trusted(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """`server.trusted_proxies` as networks ("10.0.0.0/8", "::1", "172.16.0.1")."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def parse_address(value: str | None) -> Address | None:
    """An IP from a peer or list entry, or None if it is not one.

    Accepts `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`;
    IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from dual-stack sockets) becomes IPv4.
    """
    if not value:
        return None
    text = value.strip().strip('"')
    match = _PORT_SUFFIX.match(text) or _BRACKETED.match(text)
    if match:
        if int(match["port"] or 0) > 65535:
            return None
        text = match["ip"]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's IP: the socket peer, unless the peer is a trusted proxy.

    From a trusted peer, `X-Forwarded-For` is walked from the right (the entry
    the nearest proxy appended) over trusted addresses; the first untrusted
    one is the client. All trusted → the left-most. A malformed entry stops
    the walk at the last good (trusted) address: garbage is never believed.
    An unparsable peer (e.g. a Unix socket) is reported as "unknown".
    """
    current = parse_address(peer)
    if current is None:
        return UNKNOWN_CLIENT
    if not forwarded_for or not is_trusted(current, trusted):
        return str(current)
    for entry in reversed(forwarded_for.split(",")):
        address = parse_address(entry)
        if address is None:
            break
        current = address
        if not is_trusted(address, trusted):
            break
    return str(current)


def rate_limit_key(ip: str) -> str:
    """The rate-limit identity of a client IP: IPv6 is grouped by its /64.

    A single IPv6 host usually owns a whole /64, so per-address keys would let
    it rotate addresses to escape the limits (and fill the limiter's memory).
    """
    address = parse_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        prefix = ipaddress.IPv6Network((address, 64), strict=False)
        return f"ip6:{prefix.network_address}"
    return f"ip:{address if address is not None else ip}"


def forwarded_base_url(
    scheme: str,
    host: str,
    peer: str | None,
    headers: Mapping[str, str],
    trusted: Sequence[Network],
    public_url: str | None,
) -> str:
    """The absolute base URL (`https://example.com`, no trailing slash).

    `public_url` if configured; else, from a trusted proxy, the first value
    of `X-Forwarded-Proto` (http/https only) and `X-Forwarded-Host`; else the
    request's own scheme and `Host`. Invalid values fall back a step, and an
    invalid `Host` becomes "localhost", so a URL is always well formed.
    """
    if public_url:
        return public_url.rstrip("/")
    if is_trusted(parse_address(peer), trusted):
        proto = _first_value(headers, "x-forwarded-proto").lower()
        scheme = proto if proto in ("http", "https") else scheme
    host = forwarded_host(peer, headers, trusted) or host
    scheme = scheme if scheme in ("http", "https") else "http"
    host = host if _HOST.match(host) else "localhost"
    return f"{scheme}://{host}"


def forwarded_host(peer: str | None, headers: Mapping[str, str],
                   trusted: Sequence[Network]) -> str | None:
    """The first `X-Forwarded-Host` value, when the peer is trusted and the value well formed."""
    if not is_trusted(parse_address(peer), trusted):
        return None
    value = _first_value(headers, "x-forwarded-host")
    return value if _HOST.match(value) else None


def _first_value(headers: Mapping[str, str], name: str) -> str:
    """The first comma-separated value of the first header `name` (any case)."""
    for key, value in headers.items():
        if key.lower() == name:
            return value.split(",", 1)[0].strip()
    return ""


def request_client_ip(request: web.Request, trusted: Sequence[Network]) -> str:
    """`client_ip` of an aiohttp request (all `X-Forwarded-For` lines joined in order)."""
    headers = request.headers
    # A request aiohttp refused while parsing (bad framing, over-long line) carries a plain
    # dict of headers, not a multidict; the access log still asks who sent it.
    lines = headers.getall("X-Forwarded-For", []) if hasattr(headers, "getall") else []
    forwarded = ",".join(lines)
    if isinstance(trusted, tuple):  # as parse_trusted makes it: hashable, so memoised
        return _remembered_client_ip(request.remote, forwarded or None, trusted)
    return client_ip(request.remote, forwarded or None, trusted)


@functools.lru_cache(maxsize=4096)
def _remembered_client_ip(peer: str | None, forwarded_for: str | None,
                          trusted: tuple[Network, ...]) -> str:
    """`client_ip`, remembered: the access log asks it of every request, and a busy server
    sees the same few peers (and proxy headers) over and over."""
    return client_ip(peer, forwarded_for, trusted)


def request_base_url(
    request: web.Request, trusted: Sequence[Network], public_url: str | None
) -> str:
    """`forwarded_base_url` of an aiohttp request."""
    return forwarded_base_url(
        request.scheme, request.host, request.remote, request.headers, trusted, public_url
    )
