"""From (image, spec) to a cached variant file: disk cache, single-flight, bounded pool.

`Pipeline.variant` answers a cache hit from the in-memory index without
touching the pool. While the index is still loading from disk (`load_cache`, a
background job after start-up), a miss first looks for the file on disk
(`DiskCache.adopt`), so a variant made before a restart is never made again.
A miss joins the single flight for its cache key; the leader is admitted only
while fewer than `workers + queue_size` transforms are admitted (running or
waiting for a thread), else it fails fast with 503 and `Retry-After`, so a
burst of distinct URLs can never queue unbounded work or memory. In the pool
(`pool.PriorityPool`) variants run ahead of upload work, so a burst of uploads
delays a cold variant by at most the jobs already running. The transform and
the cache write run together in the pool; an eviction pass is scheduled in the
background whenever a put leaves the cache over its bounds (or enough hits wait
to have their recency written to disk).

Counters (`transforms_run`, `transforms_rejected`, `cache_hits`,
`cache_misses`) are plain attributes; /metrics exports them as they are.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from PIL import Image

from pichub.blobs import atomic_write, working_beside, working_path
from pichub.errors import ServiceUnavailable
from pichub.imaging import geometry, working
from pichub.imaging.cache import CacheHit, DiskCache, IndexLoader
from pichub.imaging.formats import ext_of, mime_of
from pichub.imaging.geometry import Size
from pichub.imaging.pool import MemoryBudget, Priority, PriorityPool
from pichub.imaging.spec import TransformSpec
from pichub.imaging.transform import Encoded, transform
from pichub.pacing import Pacing, Progress
from pichub.singleflight import SingleFlight

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Cache hits to collect before their recency is written to disk (in the background).
TOUCH_BATCH = 256
#: Stored images whose facts are remembered (see `Pipeline.source`), and for how long.
SOURCES_MAX = 10_000
SOURCE_TTL_S = 5.0
#: How background jobs step when not told otherwise (storage.loader_files, loader_sleep_ms).
DEFAULT_PACING = Pacing()


class TransformFn(Protocol):
    """The shape of `transform.transform` (injectable, e.g. to hold a worker in tests)."""

    def __call__(
        self,
        source: Path,
        source_format: str,
        spec: TransformSpec,
        *,
        default_quality: int = ...,
        max_dimension: int | None = ...,
        max_decode_bytes: int | None = ...,
        plan_size: Size | None = ...,
        on_decoded: Callable[[Image.Image], object] | None = ...,
        decode_at_least: Size = ...,
    ) -> Encoded: ...


@dataclass(frozen=True)
class Original:
    """The stored image variants are made from: its file, format, size and frames. Its
    working copies (imaging.working) are found beside the file."""

    path: Path
    format: str
    size: Size
    frames: int = 1


@dataclass(frozen=True)
class Variant:
    """A variant ready to be sent with sendfile: file, type, length and a strong ETag.

    `recent`: used moments ago, so cheap to open on the event loop (CacheHit.recent).
    """

    path: Path
    mime: str
    size: int
    etag: str
    recent: bool = field(default=False, compare=False)  # a hint, not identity


@dataclass(frozen=True)
class Source:
    """The facts /img needs about a stored image. The file's never change for an id; who
    may see it (`owner`, `visibility`, `expires_at`, `max_views`) may, and every change
    makes the pipeline forget the image (`forget`)."""

    format: str
    modified: datetime
    etag: str
    width: int
    height: int
    frames: int
    owner: int = 0
    visibility: str = "public"
    expires_at: datetime | None = None
    max_views: int | None = None
    #: In a password-protected album: served as a private image is (owner or signed link).
    locked: bool = False

    @property
    def shared(self) -> bool:
        """Whether any answer for it may be given to anyone and kept by any cache forever:
        not private, not in a password-protected album, never expiring, no views to count."""
        return (self.visibility != "private" and not self.locked and self.expires_at is None
                and self.max_views is None)

    @property
    def restricted(self) -> bool:
        """Only its owner or a signed link may have it: private, or in a locked album."""
        return self.visibility == "private" or self.locked


class Pipeline:
    """Owns the image thread pool; makes and caches variants.

    It also remembers, for a few seconds, the `Source` of images it served
    (`source`/`remember`), so a cache hit needs no database query. `purge`,
    which runs when an image is deleted, forgets it at once; a lookup that
    was under way meanwhile is not remembered (`generation`); the expiry
    bounds the staleness should an image ever vanish without a purge.
    """

    def __init__(
        self,
        cache: DiskCache,
        workers: int,
        queue_size: int,
        default_quality: int,
        *,
        max_dimension: int | None = None,
        max_decode_bytes: int | None = None,
        upload_memory_bytes: int = 320 * 2**20,
        transform_fn: TransformFn = transform,
        on_transform: Callable[[float], object] = lambda seconds: None,
        pacing: Pacing = DEFAULT_PACING,
    ) -> None:
        self.cache = cache
        self.default_quality = default_quality
        self.max_dimension = max_dimension
        self.max_decode_bytes = max_decode_bytes
        self._transform = transform_fn
        self.on_transform = on_transform  # told the seconds of each transform (for /metrics)
        self._pool = PriorityPool(workers)
        self.upload_memory = MemoryBudget(upload_memory_bytes)
        self._capacity = workers + queue_size
        self._admitted = 0
        self._flights: SingleFlight[str, CacheHit] = SingleFlight()
        self._background: set[asyncio.Task[None]] = set()
        self._evicting = False
        self.pacing = pacing  # of background jobs (`load_cache`, `background`)
        self._stepping = asyncio.Lock()  # one background step in the pool at a time
        self._sources: OrderedDict[str, tuple[Source, float]] = OrderedDict()
        self._generation = 0
        self.transforms_run = 0
        self.transforms_rejected = 0
        self.cache_hits = 0
        self.cache_misses = 0

    async def load_cache(self, progress: Progress | None = None) -> None:
        """Load the cache index from disk in paced background steps (pichub.pacing), then
        trim the cache to its bounds. Requests are served meanwhile (see `variant`)."""
        progress = progress or Progress("variant cache index", log)
        loader = IndexLoader(self.cache, self.pacing.files)
        while await self.background(loader.step):
            progress.update(loader.seen, loader.evicted + loader.temps_removed)
        kept = await self.background(loader.finish)
        progress.update(loader.seen, loader.evicted + loader.temps_removed)
        progress.finish("%d variants indexed (%d files, %d bytes in the cache), %d deleted "
                        "as over the bounds, %d stale temp files removed", kept,
                        len(self.cache), self.cache.total_bytes, loader.evicted,
                        loader.temps_removed)
        self._maybe_evict()

    async def background(self, fn: Callable[[], T]) -> T:
        """Run one step of a background job (the cache loader, the orphan sweep) in the pool
        at BACKGROUND priority, then rest as long as it took (at least `pacing.sleep_s`)
        before the next step of any job: together they hold at most one thread half of
        the time, and every variant or upload waiting goes first."""
        async with self._stepping:
            started = time.monotonic()
            result = await self.run(Priority.BACKGROUND, fn)
            await asyncio.sleep(max(self.pacing.sleep_s, time.monotonic() - started))
            return result

    def cached(self, image_id: str, spec: TransformSpec) -> Variant | None:
        """The variant if it is already cached (counted as a hit), else None.

        In memory, no I/O: lets the view rate-limit only misses before calling `variant`.
        """
        spec = spec.with_default_quality(self.default_quality)
        key, etag = _key_and_etag(spec, image_id)
        hit = self.cache.lookup(key, ext_of(spec.fm))
        if hit is None:
            return None
        self.cache_hits += 1
        self._maybe_evict()
        return Variant(hit.path, mime_of(spec.fm), hit.size, etag, hit.recent)

    async def variant(self, image_id: str, original: Original, spec: TransformSpec) -> Variant:
        """The cached variant of `image_id` for `spec`, made now if missing.

        Raises ServiceUnavailable (503, Retry-After: 1) when the pool and its
        queue are full; the caller handles `spec.is_identity()` itself.
        """
        found = self.cached(image_id, spec)
        if found is not None:
            return found
        spec = spec.with_default_quality(self.default_quality)
        key, ext = spec.cache_key(image_id), ext_of(spec.fm)
        if self.cache.loading:  # made before the restart, not indexed yet?
            adopted = await asyncio.to_thread(self.cache.adopt, key, ext)
            if adopted is not None:
                self.cache_hits += 1
                self._maybe_evict()
                return Variant(adopted.path, mime_of(spec.fm), adopted.size, _etag(key),
                               adopted.recent)
        self.cache_misses += 1
        hit = await self._flights.do(
            key, lambda: self._produce(key, ext, original, spec)
        )
        return Variant(hit.path, mime_of(spec.fm), hit.size, _etag(key))

    @property
    def generation(self) -> int:
        """Changes on every purge: read it before a database lookup, pass it to `remember`."""
        return self._generation

    def source(self, image_id: str) -> Source | None:
        """The remembered facts of `image_id`, if remembered within SOURCE_TTL_S."""
        found = self._sources.get(image_id)
        if found is None:
            return None
        if time.monotonic() - found[1] > SOURCE_TTL_S:
            del self._sources[image_id]
            return None
        return found[0]

    def remember(self, image_id: str, source: Source, generation: int) -> None:
        """Remember `source` unless a purge happened since `generation` was read."""
        if generation != self._generation:
            return
        self._sources[image_id] = (source, time.monotonic())
        self._sources.move_to_end(image_id)
        if len(self._sources) > SOURCES_MAX:
            self._sources.popitem(last=False)

    def forget(self, image_id: str) -> None:
        """Forget the remembered facts of `image_id` (who may see it changed); a lookup
        under way meanwhile is not remembered."""
        self._generation += 1
        self._sources.pop(image_id, None)

    def forget_all(self) -> None:
        """Forget what is remembered of every image (another process changed an album: which
        images it holds is not known here); lookups under way are not remembered."""
        self._generation += 1
        self._sources.clear()

    async def purge(self, image_id: str) -> int:
        """Forget `image_id` and delete every cached variant of it (after the image is deleted)."""
        self.forget(image_id)
        return await self.run(Priority.VARIANT, self.cache.purge_image, image_id)

    async def convert(self, estimate: int, fn: Callable[..., T], *args: Any) -> T:
        """Upload work of about `estimate` bytes of memory: it waits for that share of
        `upload_memory` (without holding a thread), then runs at UPLOAD priority."""
        async with self.upload_memory.reserve(estimate):
            return await self.run(Priority.UPLOAD, fn, *args)

    def run(self, priority: Priority, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run blocking work (file I/O, Pillow) in this pool at `priority`.

        Not admission-bounded: uploads use it after their bodies are on disk (they
        wait, bounded by connections and rate limits, rather than fail); variants
        go through `variant`, which is.
        """
        return self._pool.submit(priority, functools.partial(fn, *args))

    async def drain(self) -> None:
        """Wait for background work (eviction) scheduled so far."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def close(self) -> None:
        """Shut the pool down: queued jobs are cancelled, running ones finish (blocking)."""
        self._pool.shutdown()

    async def aclose(self) -> None:
        """Let background eviction finish, then shut the pool down (for cleanup_ctx)."""
        await self.drain()
        await asyncio.to_thread(self.close)

    async def _produce(
        self, key: str, ext: str, original: Original, spec: TransformSpec
    ) -> CacheHit:
        cached = self.cache.lookup(key, ext)  # a flight for this key may have landed meanwhile
        if cached is not None:
            return cached
        if self._admitted >= self._capacity:
            self.transforms_rejected += 1
            raise ServiceUnavailable(
                "Server is busy, try again", {"retry_after_s": 1}, headers={"Retry-After": "1"}
            )
        self._admitted += 1
        self.transforms_run += 1
        try:
            hit, seconds = await self.run(Priority.VARIANT, self._make, key, ext, original,
                                          spec)
        finally:
            self._admitted -= 1
        self.on_transform(seconds)
        self._maybe_evict()
        return hit

    def _make(
        self, key: str, ext: str, original: Original, spec: TransformSpec
    ) -> tuple[CacheHit, float]:
        """In a worker thread: transform, then write the result to the cache."""
        started = time.perf_counter()
        encoded = self._render(original, spec)
        path = self.cache.put(key, ext, encoded.data)
        return CacheHit(path, len(encoded.data)), time.perf_counter() - started

    def _render(self, original: Original, spec: TransformSpec) -> Encoded:
        """The variant, from the smallest working copy that serves it, else from the original
        (which then leaves its working copies behind, when it had none)."""
        limits: dict[str, Any] = {"default_quality": self.default_quality,
                                  "max_dimension": self.max_dimension,
                                  "max_decode_bytes": self.max_decode_bytes}
        if original.frames > 1:
            return self._transform(original.path, original.format, spec, **limits)
        copies = working_beside(original.path)
        p = geometry.plan(original.size, spec.w, spec.h, spec.fit, self.max_dimension)
        level = working.pick(original.size, p.resize, tuple(copies))
        if level is not None:
            copy = copies[level]
            try:
                return self._transform(copy, working.format_of(copy), spec,
                                       plan_size=original.size, **limits)
            except FileNotFoundError:
                pass  # deleted meanwhile: the original tells what happened
        levels = working.levels_for(original.size)
        if copies or not levels:
            return self._transform(original.path, original.format, spec, **limits)
        return self._transform(original.path, original.format, spec,
                               on_decoded=functools.partial(self._keep_copies, original),
                               decode_at_least=working.level_size(original.size, levels[0]),
                               **limits)

    @staticmethod
    def _keep_copies(original: Original, frame: Image.Image) -> None:
        """Write the working copies of an image that had none (stored before they existed,
        or restored from a backup), from the pixels a transform has just decoded."""
        icc = frame.info.get("icc_profile")
        for copy in working.make(frame, original.size, icc if isinstance(icc, bytes) else None):
            atomic_write(working_path(original.path, copy.level, copy.ext), copy.data)

    def _maybe_evict(self) -> None:
        """Schedule one background `cache.evict` when over budget or with many hits to
        write back; never more than one at a time."""
        over = self.cache.over_budget
        if self._evicting or not (over or self.cache.pending_touches >= TOUCH_BATCH):
            return
        self._evicting = True
        task = asyncio.get_running_loop().create_task(self._evict())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _evict(self) -> None:
        try:
            removed = await self.run(Priority.BACKGROUND, self.cache.evict)
            log.debug("variant cache: evicted %d files", len(removed))
        except Exception:
            log.exception("variant cache eviction failed")
        finally:
            self._evicting = False


@functools.lru_cache(maxsize=4096)
def _key_and_etag(spec: TransformSpec, image_id: str) -> tuple[str, str]:
    """Cache key and ETag of a hot variant, memoised: two SHA-256s per hit otherwise."""
    key = spec.cache_key(image_id)
    return key, _etag(key)


def _etag(key: str) -> str:
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'
