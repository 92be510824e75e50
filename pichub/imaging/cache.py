"""The variant cache: encoded variants on disk, bounded in bytes and in files, least
recently used evicted.

Layout: `root/<id[:2]>/<image_id>/<digest>.<ext>`, where a cache key is
`<image_id>/<digest>` (TransformSpec.cache_key). One directory per image keeps
purging an image to a single `rmtree`, with no separate image → keys index to
keep consistent; the two-character shard keeps directories small.

Recency lives in an in-memory index (a dict of path → entry in least- to
most-recently-used order: a hit moves its entry to the end) so a hit costs no
system call and can be answered on the event loop. An entry is one int, the
variant's size with the time of its last use packed above it: with its key and
its slot in the dict, about 180 bytes a variant (240 bytes of RSS after a load
from disk, measured at 100,000), which `max_files` bounds as nginx's keys_zone
does (250,000 by default: about 60 MB).

At start-up the index is read from disk in the background, in steps (`IndexLoader`,
run by `Pipeline.load_cache`), oldest mtime first; until it is done, `loading` is true
and a miss may be a file the loader has not reached yet, which `adopt` checks on disk.
Hits record their key and the next `evict()` (in a worker thread) bumps those files'
mtimes so the order survives a restart. Every blocking method (`put`, `adopt`,
`evict`, `purge_image`, the loader's) is meant to run in a thread; the index is
guarded by a lock.

Files are written the safe way: a temp file in the same directory, fsync,
`os.replace`. Eviction spares entries used in the last `min_age_s` seconds,
so a variant just handed to a response is not deleted before it is sent (the
cache may overshoot its bounds by that much for that long).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pichub.blobs import TMP_PREFIX, atomic_write

_ID: Final = r"[A-Za-z0-9_-]{1,128}"
_KEY: Final = re.compile(rf"({_ID})/([0-9a-f]{{8,128}})")
_EXT: Final = re.compile(r"[a-z0-9]{1,8}")
#: A temp file older than this is a leftover of a crash; the loader removes it.
STALE_TEMP_S: Final = 3600.0
#: A hit within this many seconds of the previous use of a variant is `recent`.
RECENT_S: Final = 60.0
#: Default bound on the number of variants (config: images.cache_max_files).
MAX_FILES: Final = 250_000
#: Low bits of an index entry that hold the size (1 TiB); the time of last use is above.
_SIZE_BITS: Final = 40
_SIZE_MASK: Final = (1 << _SIZE_BITS) - 1


def _entry(size: int, used: float = 0.0) -> int:
    """An index entry: `size`, and `used` (time.monotonic() of the last use, in centiseconds;
    0 = not used since start-up) above it. One int costs 28-36 bytes; a (size, time)
    object or tuple three times that."""
    return min(size, _SIZE_MASK) | int(used * 100) << _SIZE_BITS


def _found(mtime: float, size: int) -> int:
    """What the loader keeps of a file until it orders them: its mtime (in centiseconds)
    and its size, as one int that sorts by mtime."""
    return int(mtime * 100) << _SIZE_BITS | min(size, _SIZE_MASK)


def _size(entry: int) -> int:
    return entry & _SIZE_MASK


def _used(entry: int) -> float:
    return (entry >> _SIZE_BITS) / 100


@dataclass(frozen=True)
class CacheHit:
    """A cached variant: where it is and how big.

    `recent`: it was used within RECENT_S before this hit, so its directory
    entry and inode are almost surely in the kernel's caches and opening it
    costs microseconds (the view then opens it on the event loop).
    """

    path: Path
    size: int
    recent: bool = field(default=False, compare=False)  # a hint, not identity


def _image_dir(image_id: str) -> str:
    if re.fullmatch(_ID, image_id) is None:
        raise ValueError(f"bad image id: {image_id!r}")
    return f"{image_id[:2]}/{image_id}"


@functools.lru_cache(maxsize=4096)  # hot keys: skips two regex matches per hit
def _relpath(key: str, ext: str) -> str:
    match = _KEY.fullmatch(key)
    if match is None or _EXT.fullmatch(ext) is None:
        raise ValueError(f"bad cache key or extension: {key!r}, {ext!r}")
    image_id, digest = match.groups()
    return f"{_image_dir(image_id)}/{digest}.{ext}"


class DiskCache:
    """Encoded variants on disk under `root`, at most `max_bytes` and `max_files` after
    `evict()`."""

    def __init__(self, root: Path, max_bytes: int, *, max_files: int = MAX_FILES,
                 min_age_s: float = 10.0) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.min_age_s = min_age_s
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._touched: set[str] = set()
        self._hits_since_flush = 0
        self._total = 0
        self._loading = True
        self._purged: set[str] = set()  # image directories purged while loading
        self._removals = 0  # bumped after files go behind the index's back (see `adopt`)

    @property
    def total_bytes(self) -> int:
        """Bytes of every variant the index knows of."""
        return self._total

    @property
    def pending_touches(self) -> int:
        """Hits since recency was last written to disk (see `evict`)."""
        return self._hits_since_flush

    @property
    def loading(self) -> bool:
        """True until the index has been loaded from disk: a miss may then be on disk."""
        return self._loading

    @property
    def over_budget(self) -> bool:
        return self._total > self.max_bytes or len(self._index) > self.max_files

    def __len__(self) -> int:
        return len(self._index)

    def path_for(self, key: str, ext: str) -> Path:
        """Where the variant `key` with extension `ext` lives (whether or not it exists)."""
        return self.root / _relpath(key, ext)

    def lookup(self, key: str, ext: str) -> CacheHit | None:
        """The variant if cached, marked most recently used. In memory only: loop-safe."""
        rel = _relpath(key, ext)
        with self._lock:
            return self._hit(rel)

    def _hit(self, rel: str) -> CacheHit | None:
        """`rel` moved to the most recent end of the index; caller holds the lock."""
        entry = self._index.pop(rel, None)
        if entry is None:
            return None
        now = time.monotonic()
        size, last = entry & _SIZE_MASK, (entry >> _SIZE_BITS) / 100  # _size, _used inlined:
        self._index[rel] = size | int(now * 100) << _SIZE_BITS  # _entry: the hot path
        self._touched.add(rel)
        self._hits_since_flush += 1
        return CacheHit(self.root / rel, size, last > 0.0 and now - last < RECENT_S)

    def get(self, key: str, ext: str) -> Path | None:
        """The variant's path if cached (see `lookup`)."""
        hit = self.lookup(key, ext)
        return hit.path if hit else None

    def put(self, key: str, ext: str, data: bytes) -> Path:
        """Store a variant atomically and index it as most recently used. Blocking."""
        rel = _relpath(key, ext)
        path = self.root / rel
        try:
            atomic_write(path, data, durable_name=False)
        except FileNotFoundError:  # a concurrent purge removed the directory: once more
            atomic_write(path, data, durable_name=False)
        with self._lock:
            self._forget(rel)
            self._index[rel] = _entry(len(data), time.monotonic())
            self._total += len(data)
        return path

    def adopt(self, key: str, ext: str) -> CacheHit | None:
        """The variant if its file is on disk though not indexed (the loader has not reached
        it yet), then indexed as most recently used; None if there is no such file. Blocking
        (one stat)."""
        rel = _relpath(key, ext)
        for _ in range(3):
            removals = self._removals
            try:
                size = os.stat(self.root / rel).st_size
            except (FileNotFoundError, NotADirectoryError):
                return None
            with self._lock:
                if rel in self._index:
                    return self._hit(rel)
                if self._removals != removals:
                    continue  # files went meanwhile (purge, loader): look again
                self._index[rel] = _entry(size, time.monotonic())
                self._total += size
                return CacheHit(self.root / rel, size)
        return None

    def purge_image(self, image_id: str) -> int:
        """Remove every variant of `image_id`; returns how many files went. Blocking."""
        prefix = _image_dir(image_id)
        directory = self.root / prefix
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except FileNotFoundError:
            names = []
        rels = [f"{prefix}/{name}" for name in names]
        with self._lock:
            if self._loading:
                self._purged.add(prefix)
            for rel in rels:
                self._forget(rel)
        shutil.rmtree(directory, ignore_errors=True)
        self._removed(rels)
        return sum(not name.startswith(TMP_PREFIX) for name in names)

    def evict(self) -> list[Path]:
        """Delete least-recently-used variants until within `max_bytes` and `max_files`.
        Blocking.

        Also writes pending recency to disk (file mtimes) for the next start-up,
        so it is worth calling when under budget too. Returns the deleted paths.
        """
        self._flush_touches()
        victims: list[str] = []
        deadline = time.monotonic() - self.min_age_s
        with self._lock:
            excess_bytes = self._total - self.max_bytes
            excess_files = len(self._index) - self.max_files
            for rel, entry in self._index.items():
                if (excess_bytes <= 0 and excess_files <= 0) or _used(entry) > deadline:
                    break  # within bounds, or everything from here on is younger still
                victims.append(rel)
                excess_bytes -= _size(entry)
                excess_files -= 1
            for rel in victims:
                self._forget(rel)
        for rel in victims:
            (self.root / rel).unlink(missing_ok=True)
        return [self.root / rel for rel in victims]

    def scan(self) -> int:
        """Load the whole index from disk at once (`IndexLoader` in one go); the number of
        variants found. Blocking."""
        loader = IndexLoader(self, 10_000)
        while loader.step():
            pass
        loader.finish()
        return loader.found

    def _walk(self, per_batch: int) -> Iterator[list[tuple[str, int, float]]]:
        """(path, size, mtime) of every file, temp files included, `per_batch` at a time."""
        batch: list[tuple[str, int, float]] = []
        for shard in _subdirs(self.root):
            for image in _subdirs(shard):
                for entry in _files(image):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    batch.append((f"{shard.name}/{image.name}/{entry.name}", st.st_size,
                                  st.st_mtime))
                    if len(batch) >= per_batch:
                        yield batch
                        batch = []
        if batch:
            yield batch

    def _forget(self, rel: str) -> None:
        """Drop `rel` from the index; caller holds the lock."""
        entry = self._index.pop(rel, None)
        if entry is not None:
            self._total -= _size(entry)
        self._touched.discard(rel)

    def _removed(self, rels: list[str]) -> None:
        """After files went that `adopt` may have seen: forget them (in case it indexed one
        meanwhile) and bump `_removals` (so an `adopt` under way looks again)."""
        with self._lock:
            for rel in rels:
                self._forget(rel)
            self._removals += 1

    def _flush_touches(self) -> None:
        with self._lock:
            touched, self._touched = self._touched, set()
            self._hits_since_flush = 0
        for rel in touched:
            try:
                os.utime(self.root / rel)
            except FileNotFoundError:
                pass


class IndexLoader:
    """Loads a DiskCache's index from disk: `step()` until it returns False, then `finish()`.

    Each step stats `per_step` files (blocking: run it in a thread) and keeps each variant's
    mtime and size, in one int, until `finish` orders them oldest first. Memory stays
    within the cache's bounds however many files are on disk: once the loader holds an
    eighth more than `max_files` or `max_bytes`, it keeps the newest within the bounds and
    deletes the older ones, as eviction would (only then does it sort: a cache within its
    bounds is sorted once). Temp files older than STALE_TEMP_S (a crash mid-write) are
    removed. `finish` puts what it kept in front of what requests indexed meanwhile,
    which stays most recent. It works on its DiskCache's insides, under its lock.
    """

    def __init__(self, cache: DiskCache, per_step: int) -> None:
        self.cache = cache
        self._batches = cache._walk(per_step)
        self._found: dict[str, int] = {}  # path -> _found(mtime, size), in the walk's order
        self._bytes = 0
        self._slack = max(per_step, cache.max_files // 8)
        self.seen = 0  # files looked at, temp files included
        self.found = 0  # variants among them
        self.evicted = 0  # variants deleted as older than what the bounds keep
        self.temps_removed = 0

    @property
    def held(self) -> int:
        """Variants found and kept so far (at most an eighth or a step more than the cache's
        `max_files`)."""
        return len(self._found)

    def step(self) -> bool:
        """Look at the next few files; False when there were none left."""
        batch = next(self._batches, None)
        if batch is None:
            return False
        stale = time.time() - STALE_TEMP_S
        for rel, size, mtime in batch:
            if rel.rpartition("/")[2].startswith(TMP_PREFIX):
                if mtime < stale:
                    (self.cache.root / rel).unlink(missing_ok=True)
                    self.temps_removed += 1
                continue
            self.found += 1
            self._found[rel] = _found(mtime, size)
            self._bytes += size
        self.seen += len(batch)
        cache = self.cache
        if (len(self._found) > cache.max_files + self._slack
                or self._bytes > cache.max_bytes + cache.max_bytes // 8):
            self._trim(self._oldest_first())
        return True

    def finish(self) -> int:
        """Index what the loader kept; returns how many variants that is."""
        cache, found = self.cache, self._found
        order = self._oldest_first()
        self._trim(order)
        with cache._lock:
            purged = set(cache._purged)
        loaded = {rel: _size(found[rel]) for rel in order
                  if rel in found and rel.rpartition("/")[0] not in purged}
        kept, self._found = len(found), {}
        del order, found
        loaded_bytes = sum(loaded.values())
        with cache._lock:
            for rel in cache._index:  # indexed by requests meanwhile: they stay most recent
                loaded_bytes -= _size(loaded.pop(rel, 0))
            if cache._purged != purged:  # purged since the copy: rare, and a scan is O(n)
                late = cache._purged - purged
                for rel in [rel for rel in loaded if rel.rpartition("/")[0] in late]:
                    loaded_bytes -= loaded.pop(rel)
            loaded.update(cache._index)
            cache._index = loaded
            cache._total += loaded_bytes
            cache._loading = False
            cache._purged.clear()
        return kept

    def _oldest_first(self) -> list[str]:
        return sorted(self._found, key=self._found.__getitem__)

    def _trim(self, order: list[str]) -> None:
        """Delete the oldest of `order` (what the loader holds, oldest first) until the rest
        is within the cache's bounds."""
        cache, found = self.cache, self._found
        count, victims = len(found), []
        for rel in order:
            if count <= cache.max_files and self._bytes <= cache.max_bytes:
                break
            self._bytes -= _size(found.pop(rel))
            count -= 1
            victims.append(rel)
        if not victims:
            return
        with cache._lock:  # a request may have indexed one meanwhile: it is the index's now
            victims = [rel for rel in victims if rel not in cache._index]
        for rel in victims:
            (cache.root / rel).unlink(missing_ok=True)
        cache._removed(victims)
        self.evicted += len(victims)


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _files(path: Path) -> list[os.DirEntry[str]]:
    try:
        return [e for e in os.scandir(path) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:  # purged meanwhile
        return []
