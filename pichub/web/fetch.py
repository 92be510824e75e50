"""Upload by URL: each URL fetched into `tmp/` through the SSRF guard, as a file part would be.

A URL is one more item of an upload: `fetch_all` turns each into a `Received` (a
temp file, or the error that item fails with) and `services.uploads` processes it
like any uploaded file, so every rule of an upload applies to it.

The guard (`webhooks.ssrf`, with the `storage.fetch_*` policy): a literal IP host is
checked before each request; a host name is resolved by `GuardedResolver`, which
hands the connector only checked addresses, so the socket goes to exactly the
address that was checked (a DNS answer that changes in between cannot slip
through). Redirects are followed here, not by aiohttp: at most MAX_REDIRECTS, each
target checked like the first URL, a loop refused as soon as it shows.

The bounds: `max_upload_mb` (a larger `Content-Length` is refused before any of
the body is read, a body without one is cut one byte past the limit, the
connection closed either way), `fetch_timeout_s` for the whole URL (redirects and
body), `fetch_read_timeout_s` for connecting and for each wait for more bytes, and
the free-disk reserve as the file grows. The first bytes must be an image type
PicHub reads, so an HTML page or an SVG is refused without downloading the rest.
No cookies are kept between fetches, nothing is decompressed (`Accept-Encoding:
identity`) and no proxy from the environment is used.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Final

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from pichub.config import StorageSettings
from pichub.errors import (
    InsufficientStorage,
    PayloadTooLarge,
    PichubError,
    UnsupportedMediaType,
    ValidationError,
    is_disk_full,
)
from pichub.imaging.formats import sniff
from pichub.imaging.ops import ACCEPTED
from pichub.services.uploads import MB, Received
from pichub.webhooks import ssrf

MAX_REDIRECTS: Final = 3
PARALLEL: Final = 4  # URLs of one request fetched side by side
CONNECTIONS: Final = 32  # fetches in flight, all requests together; more wait their turn
MAX_URL_CHARS: Final = 4096
SNIFF_BYTES: Final = 512  # read before deciding whether the body is an image at all
CHUNK: Final = 256 * 1024
FLUSH_BYTES: Final = 4 * CHUNK
TMP_PREFIX: Final = "upload-url-"
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
SETTING: Final = "storage.fetch_allow_private_networks"
USER_AGENT: Final = "PicHub (upload by URL)"


def _bad(message: str) -> ValidationError:
    return ValidationError.field("url", message)


class UrlFetcher:
    """Fetches upload URLs for every request of the app; `start()`, then `await close()`."""

    def __init__(self, storage: StorageSettings, tmp_dir: Path,
                 resolver: AbstractResolver | None = None) -> None:
        self.storage = storage
        self.tmp_dir = tmp_dir
        self.policy = ssrf.Policy.parse(storage.fetch_allow_private_networks,
                                        storage.fetch_allowed_networks, SETTING)
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Open the HTTP session (call from the running event loop)."""
        connector = aiohttp.TCPConnector(
            resolver=ssrf.GuardedResolver(self.policy, self._resolver), use_dns_cache=False,
            limit=CONNECTIONS, force_close=True)
        read = self.storage.fetch_read_timeout_s
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=read, sock_read=read),
            headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5",
                     "Accept-Encoding": "identity"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch_all(self, urls: Sequence[str], first_index: int) -> list[Received]:
        """Each URL as a received file or its error, in order; `index` counts on from
        `first_index`. On cancellation every temp file written so far is removed."""
        gate = asyncio.Semaphore(PARALLEL)

        async def one(index: int, url: str) -> Received:
            async with gate:
                return await self.fetch(index, url)

        tasks = [asyncio.ensure_future(one(first_index + i, url)) for i, url in enumerate(urls)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            for done in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(done, Received) and done.path is not None:
                    await asyncio.to_thread(done.path.unlink, True)
            raise

    async def fetch(self, index: int, url: str) -> Received:
        """The URL's body in a temp file, or (in `error`) why it cannot be uploaded."""
        url = url.strip()
        item = Received(index, clean_name(_url_name(url)))
        path = self.tmp_dir / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        limit = asyncio.timeout(self.storage.fetch_timeout_s)
        try:
            async with limit:
                item.original_name = await self._fetch(url, path)
            item.path = path
        except PichubError as exc:
            item.error = exc
        except TimeoutError:
            item.error = self._too_slow(limit.expired())
        except aiohttp.ClientError as exc:
            item.error = _client_error(exc)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            item.error = InsufficientStorage.disk_full()
        finally:
            if item.path is None:
                await asyncio.to_thread(path.unlink, True)
        return item

    def _too_slow(self, whole: bool) -> ValidationError:
        if whole:
            return _bad(f"the file did not arrive within {self.storage.fetch_timeout_s:g} s "
                        "(storage.fetch_timeout_s)")
        return _bad(f"the server did not answer for {self.storage.fetch_read_timeout_s:g} s "
                    "(storage.fetch_read_timeout_s)")

    async def _fetch(self, url: str, path: Path) -> str:
        """Follow the URL's redirects, then save its body to `path`; returns its name."""
        assert self._session is not None, "UrlFetcher.start() was not called"
        if len(url) > MAX_URL_CHARS:
            raise _bad(f"must be at most {MAX_URL_CHARS} characters")
        current, seen = url, {url}
        for hop in range(MAX_REDIRECTS + 1):
            self._check_address(current, hop)
            async with self._session.get(current, allow_redirects=False) as resp:
                if resp.status in REDIRECTS:
                    current = _next_hop(resp, hop, seen)
                    continue
                if resp.status != 200:
                    raise _bad(f"the server answered HTTP {resp.status} "
                               f"{resp.reason or ''}".rstrip())
                await self._save(resp, path)
                return clean_name(_name(resp, url))
        raise AssertionError("unreachable: _next_hop refuses the redirect past the last")

    def _check_address(self, url: str, hop: int) -> None:
        """The scheme and host of `url`, and its address when it is a literal IP."""
        try:
            ssrf.check_literal(url, self.policy)
        except ValidationError as exc:
            if hop == 0:
                raise
            reason = exc.details[0]["message"]
            raise _bad(f"redirected to {_short(url)}, which is refused: {reason}") from None
        except ValueError:
            raise _bad("must be a valid URL") from None

    async def _save(self, resp: aiohttp.ClientResponse, path: Path) -> None:
        """Stream the body to `path`: refused when over the size limit (by its declared
        length before reading any of it), when its first bytes are not an image, or when
        the disk would go below its reserve."""
        limit_mb = self.storage.max_upload_mb
        limit = limit_mb * MB
        declared = resp.content_length
        if declared is not None and declared > limit:
            raise PayloadTooLarge.file(limit_mb, declared)
        reserve = self.storage.min_free_mb * MB
        size, checked, buffer = 0, False, bytearray()
        fh = await asyncio.to_thread(open, path, "wb")
        try:
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge("File size exceeds maximum limit",
                                          f"Maximum file size is {limit_mb}MB. The file at "
                                          "this URL is larger.")
                buffer += chunk
                if not checked and len(buffer) >= SNIFF_BYTES:
                    _require_image(buffer)
                    checked = True
                if len(buffer) >= FLUSH_BYTES:
                    await asyncio.to_thread(_append, fh, bytes(buffer), reserve)
                    buffer.clear()
            if not checked:
                _require_image(buffer)
            if buffer:
                await asyncio.to_thread(_append, fh, bytes(buffer), reserve)
        finally:
            await asyncio.to_thread(fh.close)


def _next_hop(resp: aiohttp.ClientResponse, hop: int, seen: set[str]) -> str:
    """Where a redirect points (absolute, without fragment); 422 past the last redirect
    allowed, for a loop, or without a usable `Location`."""
    location = resp.headers.get("Location", "").strip()
    if not location:
        raise _bad(f"the server answered HTTP {resp.status} without a Location")
    if hop == MAX_REDIRECTS:
        raise _bad(f"more than {MAX_REDIRECTS} redirects")
    try:
        target = str(resp.url.join(URL(location)).with_fragment(None))
    except (ValueError, TypeError):
        raise _bad("redirected to an invalid URL") from None
    if target in seen:
        raise _bad(f"redirects in a loop (back to {_short(target)})")
    seen.add(target)
    return target


def _require_image(head: bytes | bytearray) -> None:
    if sniff(bytes(head[:SNIFF_BYTES])) is None:
        raise UnsupportedMediaType("Unsupported file format",
                                   f"Accepted formats: {ACCEPTED}. The type is read from the "
                                   "bytes; the URL sent something else.")


def _append(fh: BinaryIO, data: bytes, reserve: int) -> None:
    """Blocking: append `data`, then check that the disk keeps its free-space reserve."""
    fh.write(data)
    if reserve:
        stat = os.statvfs(fh.fileno())
        if stat.f_bavail * stat.f_frsize < reserve:
            raise InsufficientStorage.disk_full()


def _client_error(exc: aiohttp.ClientError) -> PichubError:
    """A failed request as the 422 of its URL; a refused address says so."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ssrf.RefusedAddress):
            return _bad(str(exc.os_error))
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return _bad(f"{exc.host} does not resolve")
        return _bad(f"cannot connect to {exc.host}:{exc.port} "
                    f"({exc.os_error.strerror or type(exc.os_error).__name__})")
    if isinstance(exc, aiohttp.InvalidURL):
        return _bad("must be a valid URL")
    return _bad(f"the request failed ({type(exc).__name__}: {exc})"[:300])


def _short(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "…"


def _url_name(url: str) -> str:
    try:
        return URL(url).name
    except (ValueError, TypeError):
        return ""


def _name(resp: aiohttp.ClientResponse, asked: str) -> str:
    """The file's name: from `Content-Disposition`, else the last segment of the URL's
    path, the final URL's before the one asked for, preferring one with an extension."""
    disposition = resp.content_disposition
    if disposition is not None and disposition.filename:
        return disposition.filename
    names = [name for name in (resp.url.name, _url_name(asked)) if name]
    return next((name for name in names if "." in name.strip(".")), names[0] if names else "")


def clean_name(raw: str) -> str:
    """A name from a URL or a header, safe to show: its last path segment, without control
    or format characters (no bidi tricks), at most 255 characters; `image` when empty."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return text[:255] or "image"
