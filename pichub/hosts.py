"""Which names PicHub answers to: `server.allowed_hosts`, explicit or derived.

Without `server.public_url`, absolute URLs (API answers, webhook bodies) are
built from the request's `Host` (or, from a trusted proxy, `X-Forwarded-Host`),
and a browser tricked by DNS rebinding sends the attacker's name there. So a
request naming a host outside this list is refused.

Everything here is pure except `machine_names`, which asks the system for the
machine's names and addresses (it may block on DNS: call it in a thread).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

ANY = "*"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
WILDCARD_LISTEN = frozenset({"", "0.0.0.0", "::"})
_NAME = re.compile(r"^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
_HOST_PORT = re.compile(r"^(?P<host>[^:\[\]]+)(:\d{1,5})?$")
_BRACKETED = re.compile(r"^\[(?P<host>[0-9a-f:.]+)\](:\d{1,5})?$")
# Documentation addresses: connecting a UDP socket sends nothing, but the kernel picks
# the interface of the default route, whose address is the machine's primary one.
_ROUTE_PROBES = (("192.0.2.1", socket.AF_INET), ("2001:db8::1", socket.AF_INET6))


def normalize(entry: str) -> str:
    """An allowed_hosts entry as `AllowedHosts.allows` compares it; ValueError if malformed.

    Lower case, no trailing dot, IPv6 without brackets or zone: "Example.COM." →
    "example.com", "[::1]" → "::1", "fe80::1%eth0" → "fe80::1". ".example.com" stays
    a domain pattern; "*" stays "*".
    """
    text = entry.strip().lower()
    if text == ANY:
        return text
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if _is_address(text):
        return str(ipaddress.ip_address(text.split("%", 1)[0]))  # no IPv6 zone ("%eth0")
    text = text.removesuffix(".")
    if not _NAME.match(text):
        raise ValueError(f"{entry!r} is not a host name, an IP address, .domain or *")
    return text


def host_of(header: str) -> str | None:
    """The host of a `Host` or `X-Forwarded-Host` value without its port, normalised.

    "Img.Example.com:8443" → "img.example.com", "[::1]:8080" → "::1"; None when
    the value is empty or malformed (an unbracketed IPv6 address, a path, a user).
    """
    text = header.strip().lower()
    bracketed = _BRACKETED.match(text)
    if bracketed:
        host = bracketed["host"]
        return normalize(host) if _is_address(host) else None
    match = _HOST_PORT.match(text)
    if match is None or not _is_valid(match["host"]):
        return None
    return normalize(match["host"])


@dataclass(frozen=True)
class AllowedHosts:
    """Normalised entries: exact names or addresses, ".domain" patterns, or "*"."""

    entries: tuple[str, ...]

    def allows(self, host: str) -> bool:
        """`host` as `host_of` returns it; ".example.com" allows it and every subdomain."""
        for entry in self.entries:
            if entry == ANY or entry == host:
                return True
            if entry.startswith(".") and (host == entry[1:] or host.endswith(entry)):
                return True
        return False

    def allows_header(self, value: str) -> bool:
        """Whether a `Host` (or `X-Forwarded-Host`) value names an allowed host; remembered
        per value, as a busy server sees the same few on every request."""
        return _allows_header(self, value)

    def __str__(self) -> str:
        return ", ".join(self.entries)


@functools.lru_cache(maxsize=1024)
def _allows_header(hosts: AllowedHosts, value: str) -> bool:
    host = host_of(value)
    return host is not None and hosts.allows(host)


def derive(
    allowed_hosts: Iterable[str],
    listen_host: str,
    public_url: str | None,
    machine: Callable[[], Iterable[str]],
) -> AllowedHosts:
    """The hosts to accept: loopback names always, then the configured list if not empty.

    An empty list is derived: the host of `public_url`, the listen host when it
    is a specific name or address, and, when listening on every interface with
    no `public_url`, what `machine()` returns (the names and addresses under
    which other machines reach this one).
    """
    entries = [*LOOPBACK]
    configured = [normalize(entry) for entry in allowed_hosts]
    if configured:
        entries += configured
    else:
        if public_url:
            entries.append(normalize(urlsplit(public_url).hostname or ""))
        if listen_host not in WILDCARD_LISTEN:
            entries.append(normalize(listen_host))
        elif not public_url:
            entries += (normalize(name) for name in machine() if _is_valid(name))
    return AllowedHosts(tuple(dict.fromkeys(entries)))


def machine_names() -> list[str]:
    """This machine's host name, FQDN, their addresses and its primary outbound addresses."""
    names = [socket.gethostname(), socket.getfqdn()]
    found = list(names)
    for name in dict.fromkeys(names):
        try:
            found += [str(info[4][0]) for info in socket.getaddrinfo(name, None)]
        except OSError:
            continue
    for probe, family in _ROUTE_PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                found.append(str(sock.getsockname()[0]))
        except OSError:
            continue
    return found


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_valid(name: str) -> bool:
    try:
        normalize(name)
    except ValueError:
        return False
    return True
