"""Fetching an image from a URL a client names (Chevereto's `source=<url>`), safely.

The same SSRF guard as webhooks (`webhooks.ssrf`): literal IP hosts are checked
here, host names by `GuardedResolver` at connect time, so the socket goes to
the address that was checked; private, loopback and reserved targets are
refused unless `webhooks.allow_private_networks`. At most MAX_REDIRECTS
redirects, each target checked again. The body is streamed to `tmp/` like a
multipart file, never past `storage.max_upload_mb` (413), and the whole fetch
must finish within FETCH_TIMEOUT_S (422 otherwise, as for any unusable source).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Final
from urllib.parse import unquote

import aiohttp
from yarl import URL

from pichub.errors import PayloadTooLarge, ValidationError
from pichub.services.uploads import MB, Received
from pichub.webhooks import ssrf

FETCH_TIMEOUT_S: Final = 30.0
MAX_REDIRECTS: Final = 3
CHUNK: Final = 256 * 1024
FIELD: Final = "source"


def _refused(message: str) -> ValidationError:
    return ValidationError.field(FIELD, message)


async def fetch_to_file(url: str, tmp_dir: Path, *, max_upload_mb: int, allow_private: bool,
                        index: int = 0) -> Received:
    """Download `url` into a temp file under `tmp_dir`: the received file, named after the
    URL's last path segment. Raises ValidationError (422) or PayloadTooLarge (413)."""
    dest = tmp_dir / f"fetch-{secrets.token_hex(8)}"
    connector = aiohttp.TCPConnector(resolver=ssrf.GuardedResolver(allow_private),
                                     use_dns_cache=False)
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         trust_env=False) as session:
            final = await _download(session, url, dest, max_upload_mb * MB, allow_private)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return Received(index, _name_of(final), dest)


async def _download(session: aiohttp.ClientSession, url: str, dest: Path, limit: int,
                    allow_private: bool) -> URL:
    target = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                ssrf.check_literal(target, allow_private)
            except ValidationError as exc:
                raise _refused(exc.details[0]["message"]) from None
            async with session.get(target, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in (301, 302, 303, 307, 308) and location:
                    target = str(resp.url.join(URL(location)))
                    continue
                if resp.status != 200:
                    raise _refused(f"the URL answered HTTP {resp.status}")
                await _save(resp, dest, limit)
                return resp.url
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, ssrf.RefusedAddress):
            raise _refused(str(exc.os_error)) from None
        raise _refused("the URL's host could not be reached") from None
    except (aiohttp.ClientError, ValueError):
        raise _refused("the URL could not be fetched") from None
    except TimeoutError:
        raise _refused(f"fetching the URL took longer than {FETCH_TIMEOUT_S:g} s") from None
    raise _refused(f"more than {MAX_REDIRECTS} redirects")


async def _save(resp: aiohttp.ClientResponse, dest: Path, limit: int) -> None:
    """Stream the body into `dest`, refusing it (413) as soon as it passes `limit`."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge.file(limit // MB, declared)
    size = 0
    fh = await asyncio.to_thread(open, dest, "wb")
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge.file(limit // MB, size)
            await asyncio.to_thread(fh.write, chunk)
    finally:
        await asyncio.to_thread(fh.close)


def _name_of(url: URL) -> str:
    """The URL's last path segment, as the image's original name."""
    name = unquote(url.path.rstrip("/").rsplit("/", 1)[-1])
    return name[:255] or "image"
