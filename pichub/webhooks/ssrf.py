"""Server-side request forgery guard for webhook targets (docs/security.md: Outbound requests).

A target is refused when it is not http(s), has no host, or any address it
resolves to is loopback, private, link-local, multicast, reserved,
unspecified or otherwise not globally routable (IPv4 and IPv6, including
IPv4 addresses embedded in IPv6: mapped, 6to4 and NAT64), unless
`allow_private` is set. A `Policy` says the same with more words: which
setting allows private targets (named in the refusal), and private networks
that are allowed one by one (upload fetches use it: `storage.fetch_*`).

`check_url` runs when a webhook is created or changed. At delivery time
`GuardedResolver` sits in the ClientSession's connector: it resolves, checks
and returns only the checked addresses, so the socket connects to exactly the
address that was checked and a DNS answer that changes in between (rebinding)
cannot slip through. aiohttp never asks the resolver about literal IP hosts,
so the worker calls `check_literal` for those.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from pichub.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedAddress(OSError):
    """A resolved address that is not allowed; an OSError so aiohttp reports it as a DNS failure."""


def _tunnelled_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a 6to4 or NAT64 (64:ff9b::/96) address."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_blocked(ip: IPAddress) -> bool:
    """True for any address a webhook must not reach without `allow_private_networks`."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            return is_blocked(ip.ipv4_mapped)
        inner = _tunnelled_ipv4(ip)
        if (inner is not None and is_blocked(inner)) or ip.is_site_local:
            return True
    return (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


@dataclass(frozen=True)
class Policy:
    """Which addresses an outbound request may reach: any when `allow_private`, else only
    those `is_blocked` lets through and those inside `allowed` (private networks the
    operator trusts one by one). `setting` is what a refusal tells the caller to change."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()
    setting: str = "webhooks.allow_private_networks"

    @classmethod
    def of(cls, allow: bool | Policy) -> Policy:
        return allow if isinstance(allow, Policy) else cls(allow_private=allow)

    @classmethod
    def parse(cls, allow_private: bool, allowed: Sequence[str], setting: str) -> Policy:
        """A policy from settings: `allowed` holds CIDRs (`10.0.0.5/32`, `fd00::/8`)."""
        networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allowed)
        return cls(allow_private, networks, setting)

    def refuses(self, ip: IPAddress) -> bool:
        if self.allow_private or not is_blocked(ip):
            return False
        return not any(ip.version == net.version and ip in net for net in self.allowed)

    def refusal(self, host: str, ip: IPAddress) -> str:
        return (f"{host} resolves to a private or reserved address ({ip}); "
                f"set {self.setting} to allow it")


def parse_ip(host: str) -> IPAddress | None:
    """The address of a literal IP host (brackets and IPv6 zone allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _target(url: str) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise ValidationError.field("url", "must be a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise ValidationError.field("url", "must start with http:// or https://")
    if not parsed.host:
        raise ValidationError.field("url", "must include a host")
    return parsed


def _refuse(ip: IPAddress, policy: Policy) -> ValidationError:
    return ValidationError.field(
        "url", f"resolves to a private or reserved address ({ip}); "
        f"set {policy.setting} to allow it",
    )


def check_literal(url: str, allow_private: bool | Policy) -> IPAddress | None:
    """Check the scheme and host; a literal IP host is checked too and returned.

    Raises ValidationError (422, field `url`). Host names are left to the resolver.
    """
    host = _target(url).host
    assert host is not None
    ip = parse_ip(host)
    policy = Policy.of(allow_private)
    if ip is not None and policy.refuses(ip):
        raise _refuse(ip, policy)
    return ip


async def check_url(url: str, allow_private: bool | Policy,
                    resolver: AbstractResolver | None = None) -> list[IPAddress]:
    """Resolve the URL's host and check every address; returns the addresses.

    Raises ValidationError (422, field `url`) when the URL is not http(s), has
    no host, does not resolve, or any address is refused.
    """
    ip = check_literal(url, allow_private)
    if ip is not None:
        return [ip]
    parsed = _target(url)
    assert parsed.host is not None and parsed.port is not None
    guard = GuardedResolver(allow_private, resolver)
    try:
        results = await guard.resolve(parsed.host, parsed.port, socket.AF_UNSPEC)
    except RefusedAddress as exc:
        raise ValidationError.field("url", str(exc)) from None
    except OSError:
        raise ValidationError.field("url", "host name does not resolve") from None
    return [ipaddress.ip_address(r["host"]) for r in results]


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses private answers and returns only checked addresses."""

    def __init__(self, allow_private: bool | Policy,
                 inner: AbstractResolver | None = None) -> None:
        self.policy = Policy.of(allow_private)
        self._inner = inner or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise OSError(f"{host} has no addresses")
        for result in results:
            ip = ipaddress.ip_address(result["host"])
            if self.policy.refuses(ip):
                raise RefusedAddress(self.policy.refusal(host, ip))
        return results

    async def close(self) -> None:
        await self._inner.close()
