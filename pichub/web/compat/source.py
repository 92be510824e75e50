"""Chevereto's `source`: a file part, a base64 string (plain or `data:` URL) or an http(s) URL,
read from a multipart or an urlencoded body without ever holding it in memory.

imgBB-style clients send `source=<base64>` urlencoded, often before `key`, so
the body is parsed as it streams: a base64 value is decoded chunk by chunk into
a temp file under `tmp/` (never past `storage.max_upload_mb`: 413); a URL is
only remembered (at most MAX_URL bytes) and fetched after the caller is known
(`web.fetch`). Other fields are bounded like the multipart ones (`web.multipart`).
"""

from __future__ import annotations

import asyncio
import binascii
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from pichub.config import StorageSettings
from pichub.errors import BadRequest, PayloadTooLarge, ValidationError
from pichub.services.uploads import MB, Received
from pichub.web import multipart

FIELD: Final = "source"
MAX_URL: Final = 2048
_DATA_URL = re.compile(rb"^data:[^,]{0,100},", re.IGNORECASE)
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


@dataclass
class SourceForm:
    """A Chevereto request body: the file (on disk), or the URL to fetch, and the fields."""

    files: list[Received] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    field_bytes: int = 0

    def cleanup(self) -> None:
        for item in self.files:
            if item.path is not None:
                item.path.unlink(missing_ok=True)


class SourceSink:
    """A `source` text value arriving in pieces: a URL is kept, base64 goes to a file."""

    def __init__(self, dest: Path, limit: int) -> None:
        self.dest, self.limit = dest, limit
        self.head = b""  # the first bytes, until the kind of value is known
        self.url: bytes | None = None
        self.fh: BinaryIO | None = None
        self.pending = b""  # base64 characters not yet a multiple of 4
        self.size = 0

    async def feed(self, chunk: bytes) -> None:
        if self.url is not None:
            self.url += chunk
            if len(self.url) > MAX_URL:
                raise ValidationError.field(FIELD, f"a URL is at most {MAX_URL} characters")
            return
        if self.fh is None:
            self.head += chunk
            if len(self.head) < 8 and chunk:
                return
            await self._start()
            return
        await self._decode(chunk)

    async def _start(self) -> None:
        head, self.head = self.head.lstrip(), b""
        if head[:8].lower().startswith((b"http://", b"https://")):
            self.url = b""
            await self.feed(head)
            return
        self.fh = await asyncio.to_thread(open, self.dest, "wb")
        await self._decode(_DATA_URL.sub(b"", head, count=1))

    async def _decode(self, chunk: bytes) -> None:
        # Form decoding turns an unescaped `+` into a space; URL-safe base64 is accepted too.
        text = self.pending + chunk.translate(_BASE64_FIX, b"\r\n\t")
        usable = len(text) - len(text) % 4
        self.pending = text[usable:]
        if not usable:
            return
        if _NOT_BASE64.search(text, 0, usable):
            raise _not_a_source()
        try:
            data = binascii.a2b_base64(text[:usable], strict_mode=True)
        except binascii.Error:
            raise _not_a_source() from None
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge.file(self.limit // MB, self.size)
        assert self.fh is not None
        await asyncio.to_thread(self.fh.write, data)

    async def finish(self, form: SourceForm, name: str) -> None:
        """Record what the value was: a URL, or the decoded file (as `name`)."""
        if self.fh is None and self.url is None:
            if not self.head.strip():
                raise ValidationError.field(FIELD, "is required")
            await self._start()
        if self.url is not None:
            form.url = self.url.decode("utf-8", "replace").strip()
            return
        assert self.fh is not None
        await asyncio.to_thread(self.fh.close)
        if self.pending.strip(b"="):
            raise _not_a_source()
        form.files.append(Received(0, name, self.dest))

    async def discard(self) -> None:
        """After a failure: the partly written file goes."""
        if self.fh is not None and not self.fh.closed:
            await asyncio.to_thread(self.fh.close)
        self.dest.unlink(missing_ok=True)


_BASE64_FIX = bytes.maketrans(b" -_", b"++/")


def _not_a_source() -> ValidationError:
    return ValidationError.field(FIELD, "must be an image file, base64 or an http(s) URL")


def _sink(tmp_dir: Path, storage: StorageSettings) -> SourceSink:
    return SourceSink(tmp_dir / f"{multipart.TMP_PREFIX}{secrets.token_hex(8)}",
                      storage.max_upload_mb * MB)


async def read_source_form(request: web.Request, tmp_dir: Path,
                           storage: StorageSettings) -> SourceForm:
    """The body of a Chevereto upload, multipart or urlencoded (or none: query only)."""
    form = SourceForm()
    try:
        if request.content_type.startswith("multipart/"):
            await _read_multipart(request, form, tmp_dir, storage)
        elif request.content_type == "application/x-www-form-urlencoded":
            await _read_urlencoded(request, form, tmp_dir, storage)
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        form.cleanup()
        raise BadRequest("Malformed request body") from exc
    except BaseException:
        form.cleanup()
        raise
    return form


async def _read_multipart(request: web.Request, form: SourceForm, tmp_dir: Path,
                          storage: StorageSettings) -> None:
    reader = await request.multipart()
    holder = multipart.Form()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not supported")
        if part.name == FIELD and (form.files or form.url is not None):
            raise ValidationError.field(FIELD, "one source per request")
        if part.name == FIELD and part.filename is not None:
            path = tmp_dir / f"{multipart.TMP_PREFIX}{secrets.token_hex(8)}"
            form.files.append(Received(0, multipart.original_name(part.filename), path))
            try:
                await multipart.stream_file(part, path, storage.max_upload_mb * MB,
                                            storage.min_free_mb * MB)
            except PayloadTooLarge:
                raise PayloadTooLarge.file(storage.max_upload_mb,
                                           request.content_length or 0) from None
        elif part.name == FIELD:
            sink = _sink(tmp_dir, storage)
            while chunk := await part.read_chunk(multipart.CHUNK):
                await _feed(sink, chunk)
            await _finish(sink, form)
        elif part.name:
            await multipart.read_field(part, holder)
    form.fields.update(holder.fields)


async def _feed(sink: SourceSink, chunk: bytes) -> None:
    try:
        await sink.feed(chunk)
    except BaseException:
        await sink.discard()
        raise


async def _finish(sink: SourceSink, form: SourceForm) -> None:
    try:
        await sink.finish(form, "image")
    except BaseException:
        await sink.discard()
        raise


class _Fields:
    """The urlencoded fields other than `source`, bounded like multipart form fields."""

    def __init__(self, form: SourceForm) -> None:
        self.form = form
        self.value = bytearray()

    def add(self, chunk: bytes) -> None:
        self.value += chunk
        if len(self.value) > multipart.MAX_FIELD_BYTES:
            raise PayloadTooLarge("A form field is too long",
                                  f"At most {multipart.MAX_FIELD_BYTES // 1024} KB per field")

    def done(self, name: str) -> None:
        form = self.form
        form.field_bytes += len(self.value)
        if len(form.fields) >= multipart.MAX_FIELDS or \
                form.field_bytes > multipart.MAX_FIELDS_BYTES:
            raise PayloadTooLarge("Form fields are too large")
        form.fields[name] = self.value.decode("utf-8", "replace")
        self.value = bytearray()


def _unquote(raw: bytes) -> tuple[bytes, bytes]:
    """Percent-decode `raw`; an escape cut by the chunk's end is returned to wait for more."""
    hold = 1 if raw.endswith(b"%") else 2 if raw[-2:-1] == b"%" else 0
    body, rest = (raw[:-hold], raw[-hold:]) if hold else (raw, b"")
    return urllib.parse.unquote_to_bytes(body.replace(b"+", b" ")), rest


async def _read_urlencoded(request: web.Request, form: SourceForm, tmp_dir: Path,
                           storage: StorageSettings) -> None:
    """`a=1&source=…&key=…`, parsed as it arrives (`source` may be tens of megabytes)."""
    name: bytes | None = None  # the current field's name once its `=` has arrived
    pending, partial = b"", b""  # unparsed bytes; the name being read
    sink: SourceSink | None = None
    fields = _Fields(form)
    async for chunk in request.content.iter_chunked(multipart.CHUNK):
        pending += chunk
        while pending:
            if name is None:
                cut = min((i for i in (pending.find(b"="), pending.find(b"&")) if i >= 0),
                          default=-1)
                if cut < 0:
                    partial, pending = partial + pending, b""
                    if len(partial) > 256:
                        raise PayloadTooLarge("A form field name is too long")
                    break
                if pending[cut:cut + 1] == b"&":  # a name without a value
                    partial, pending = b"", pending[cut + 1:]
                    continue
                name, partial, pending = partial + pending[:cut], b"", pending[cut + 1:]
                if urllib.parse.unquote_plus(name.decode("latin-1")) == FIELD:
                    sink = _sink(tmp_dir, storage)
                continue
            end = pending.find(b"&")
            piece, pending = (pending, b"") if end < 0 else (pending[:end], pending[end + 1:])
            if end < 0:
                data, held = _unquote(piece)
                pending = held
            else:
                data, held = urllib.parse.unquote_to_bytes(piece.replace(b"+", b" ")), b""
            if sink is not None:
                await _feed(sink, data)
            else:
                fields.add(data)
            if end >= 0:
                await _close_field(name, sink, fields, form)
                name, sink = None, None
            elif held:
                break
    if name is not None:
        await _close_field(name, sink, fields, form)


async def _close_field(name: bytes, sink: SourceSink | None, fields: _Fields,
                       form: SourceForm) -> None:
    if sink is not None:
        await _finish(sink, form)
    else:
        fields.done(urllib.parse.unquote_plus(name.decode("latin-1")))
