"""ObjectStore: the bucket of `[storage.s3]`, spoken to through aiobotocore.

One client per process, opened at start-up (`open`) and closed at shutdown (`close`):
signature v4, the configured region, path-style addressing when `path_style`, and the
standard AWS credential chain (environment, ~/.aws) for keys left unset. aiobotocore is
imported here only, and only when the S3 backend is chosen: PicHub on the filesystem
backend starts without it.

Every failure of the bucket or the network on the way becomes `ServiceUnavailable`
(503 with the error envelope); a missing key is an answer (None/False), not a failure.
Files go up from disk in parts (`PART` bytes in memory at most per file) and come down
to a temp name beside their target, renamed into place once whole and fsynced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pichub.blobs import TMP_PREFIX, fsync_dir
from pichub.config import S3Settings
from pichub.errors import PichubError, ServiceUnavailable

log = logging.getLogger(__name__)
PART: Final = 8 * 2**20  # bytes read per request of an upload (multipart above it)
CHUNK: Final = 2**20  # bytes written per step of a download
DELETE_BATCH: Final = 1000  # the most keys one DeleteObjects takes
CHECK_TIMEOUT_S: Final = 5.0
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class Listed:
    """One object of a listing: its key, size and last change (a Unix time)."""

    key: str
    size: int
    modified: float


def unavailable(exc: BaseException) -> ServiceUnavailable:
    """The one error every bucket failure becomes."""
    return ServiceUnavailable("Object storage is unavailable, try again",
                              f"{type(exc).__name__} from the object storage")


@contextlib.contextmanager
def _guarded(what: str) -> Iterator[None]:
    """Turn any failure of the bucket (or of the network to it) into ServiceUnavailable."""
    try:
        yield
    except PichubError:
        raise
    except Exception as exc:
        log.warning("object storage: %s failed: %r", what, exc)
        raise unavailable(exc) from exc


def _missing(exc: Exception) -> bool:
    """True for a ClientError saying the key (or bucket object) does not exist."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    return str(response.get("Error", {}).get("Code", "")) in _MISSING


class ObjectStore:
    """The bucket: put, get, delete, list, head and presign objects by key."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()

    async def open(self) -> None:
        """Create the session and the client (no request is made yet)."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        s3 = self.settings
        config = AioConfig(
            signature_version="s3v4", region_name=s3.region,
            s3={"addressing_style": "path" if s3.path_style else "auto"},
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required")
        secret = s3.secret_access_key
        self._client = await self._stack.enter_async_context(get_session().create_client(
            "s3", endpoint_url=s3.endpoint_url, region_name=s3.region, config=config,
            aws_access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None))

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    def key(self, relative: str) -> str:
        """The key of a file at `relative` (`ab/cd/<id>.<ext>`) in the store's layout."""
        return self.prefix + relative

    async def put_file(self, key: str, path: Path) -> None:
        """Upload the file at `path` as `key`, `PART` bytes at a time."""
        size = (await asyncio.to_thread(path.stat)).st_size
        with _guarded(f"put {key}"):
            if size <= PART:
                data = await asyncio.to_thread(path.read_bytes)
                await self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
            else:
                await self._multipart(key, path, size)

    async def _multipart(self, key: str, path: Path, size: int) -> None:
        started = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = started["UploadId"]
        try:
            parts = []
            with open(path, "rb") as fh:  # noqa: ASYNC230 - reads go through a thread below
                for number in range(1, (size + PART - 1) // PART + 1):
                    data = await asyncio.to_thread(fh.read, PART)
                    done = await self._client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                        Body=data)
                    parts.append({"PartNumber": number, "ETag": done["ETag"]})
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                          UploadId=upload_id)
            raise

    async def get_file(self, key: str, path: Path) -> bool:
        """Download `key` to `path` atomically; False (nothing written) when it is missing."""
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        fd, tmp_name = await asyncio.to_thread(tempfile.mkstemp, dir=path.parent,
                                               prefix=TMP_PREFIX)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh, _guarded(f"get {key}"):
                try:
                    answer = await self._client.get_object(Bucket=self.bucket, Key=key)
                except Exception as exc:
                    if _missing(exc):
                        return False
                    raise
                async with answer["Body"] as body:
                    while chunk := await body.read(CHUNK):
                        await asyncio.to_thread(fh.write, chunk)
                await asyncio.to_thread(_seal, fh)
            await asyncio.to_thread(os.replace, tmp, path)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        await asyncio.to_thread(fsync_dir, path.parent)
        return True

    async def delete(self, keys: list[str]) -> None:
        """Delete `keys` (missing ones too), in batches."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            with _guarded("delete"):
                answer = await self._client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": key} for key in batch], "Quiet": True})
            if errors := answer.get("Errors"):
                raise unavailable(RuntimeError(f"{len(errors)} key(s) not deleted"))

    async def pages(self, prefix: str) -> AsyncIterator[list[Listed]]:
        """Every object whose key starts with `prefix`, a page (up to 1000) at a time."""
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            with _guarded("list"):
                answer = await self._client.list_objects_v2(**args)
            yield [Listed(item["Key"], item["Size"], item["LastModified"].timestamp())
                   for item in answer.get("Contents", [])]
            token = answer.get("NextContinuationToken")
            if not answer.get("IsTruncated") or not token:
                return

    async def keys(self, prefix: str) -> list[str]:
        """The keys starting with `prefix` (a few: the files of one image)."""
        return [item.key async for page in self.pages(prefix) for item in page]

    async def head(self, key: str) -> int | None:
        """The size of `key`; None when it is missing."""
        with _guarded(f"head {key}"):
            try:
                answer = await self._client.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if _missing(exc):
                    return None
                raise
        return int(answer["ContentLength"])

    async def presigned_get(self, key: str, ttl_s: int, *, mime: str | None = None,
                            disposition: str | None = None) -> str:
        """A URL that GETs `key` without credentials for `ttl_s` seconds; `mime` and
        `disposition` set the answer's Content-Type and Content-Disposition."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if mime:
            params["ResponseContentType"] = mime
        if disposition:
            params["ResponseContentDisposition"] = disposition
        with _guarded("presign"):
            url: str = await self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=ttl_s)
        return url

    async def check(self) -> None:
        """Raise ServiceUnavailable unless the bucket answers (HeadBucket) in time."""
        with _guarded("check"):
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._client.head_bucket(Bucket=self.bucket)


def _seal(fh: Any) -> None:
    fh.flush()
    os.fchmod(fh.fileno(), 0o644)
    os.fsync(fh.fileno())
