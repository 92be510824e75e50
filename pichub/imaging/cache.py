"""The variant cache: encoded variants on disk, bounded, least-recently-used evicted.

Layout: `root/<id[:2]>/<image_id>/<digest>.<ext>`, where a cache key is
`<image_id>/<digest>` (TransformSpec.cache_key). One directory per image keeps
purging an image to a single `rmtree`, with no separate image → keys index to
keep consistent; the two-character shard keeps directories small.

Recency lives in an in-memory index (an OrderedDict of path → size, in
least- to most-recently-used order) so a hit costs no system call and can be
answered on the event loop. The index is rebuilt from disk by `scan()` at
start-up, ordered by file mtime; hits record their key and the next `evict()`
(in a worker thread) bumps those files' mtimes so the order survives a restart.
Every blocking method (`scan`, `put`, `evict`, `purge_image`) is meant to run
in a thread; the index is guarded by a lock.

Files are written the safe way: a temp file in the same directory, fsync,
`os.replace`. Eviction spares entries used in the last `min_age_s` seconds,
so a variant just handed to a response is not deleted before it is sent (the
cache may overshoot `max_bytes` by that much for that long).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pichub.blobs import TMP_PREFIX, atomic_write

_ID: Final = r"[A-Za-z0-9_-]{1,128}"
_KEY: Final = re.compile(rf"({_ID})/([0-9a-f]{{8,128}})")
_EXT: Final = re.compile(r"[a-z0-9]{1,8}")
#: A temp file older than this is a leftover of a crash; `scan` removes it.
STALE_TEMP_S: Final = 3600.0
#: A hit within this many seconds of the previous use of a variant is `recent`.
RECENT_S: Final = 60.0


@dataclass
class _Entry:
    size: int
    last_used: float  # time.monotonic(); 0.0 for entries found by scan()
    path: Path | None = None  # made at the first hit: joining a Path costs more than the rest


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
    """Encoded variants on disk under `root`, at most `max_bytes` after `evict()`."""

    def __init__(self, root: Path, max_bytes: int, *, min_age_s: float = 10.0) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.min_age_s = min_age_s
        self._lock = threading.Lock()
        self._index: OrderedDict[str, _Entry] = OrderedDict()
        self._touched: set[str] = set()
        self._hits_since_flush = 0
        self._total = 0

    @property
    def total_bytes(self) -> int:
        """Bytes of every variant the index knows of."""
        return self._total

    @property
    def pending_touches(self) -> int:
        """Hits since recency was last written to disk (see `evict`)."""
        return self._hits_since_flush

    def __len__(self) -> int:
        return len(self._index)

    def path_for(self, key: str, ext: str) -> Path:
        """Where the variant `key` with extension `ext` lives (whether or not it exists)."""
        return self.root / _relpath(key, ext)

    def lookup(self, key: str, ext: str) -> CacheHit | None:
        """The variant if cached, marked most recently used. In memory only: loop-safe."""
        rel = _relpath(key, ext)
        with self._lock:
            entry = self._index.get(rel)
            if entry is None:
                return None
            self._index.move_to_end(rel)
            now = time.monotonic()
            recent = entry.last_used > 0.0 and now - entry.last_used < RECENT_S
            entry.last_used = now
            self._touched.add(rel)
            self._hits_since_flush += 1
            path = entry.path
            if path is None:
                path = entry.path = self.root / rel
        return CacheHit(path, entry.size, recent)

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
            self._index[rel] = _Entry(len(data), time.monotonic())
            self._total += len(data)
        return path

    def purge_image(self, image_id: str) -> int:
        """Remove every variant of `image_id`; returns how many files went. Blocking."""
        prefix = _image_dir(image_id)
        directory = self.root / prefix
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except FileNotFoundError:
            return 0
        with self._lock:
            for name in names:
                self._forget(f"{prefix}/{name}")
        shutil.rmtree(directory, ignore_errors=True)
        return sum(not name.startswith(TMP_PREFIX) for name in names)

    def evict(self) -> list[Path]:
        """Delete least-recently-used variants until under `max_bytes`. Blocking.

        Also writes pending recency to disk (file mtimes) for the next `scan`,
        so it is worth calling when under budget too. Returns the deleted paths.
        """
        self._flush_touches()
        victims: list[str] = []
        deadline = time.monotonic() - self.min_age_s
        with self._lock:
            while self._total > self.max_bytes and self._index:
                rel, entry = next(iter(self._index.items()))
                if entry.last_used > deadline:
                    break  # everything after it is younger still
                self._forget(rel)
                victims.append(rel)
        for rel in victims:
            (self.root / rel).unlink(missing_ok=True)
        return [self.root / rel for rel in victims]

    def scan(self) -> int:
        """Rebuild the index from disk, oldest mtime first; entries indexed meanwhile stay
        most recent. Removes stale temp files. Returns the number of variants found. Blocking."""
        found = sorted(self._walk(), key=lambda item: item[2])
        with self._lock:
            fresh = self._index
            self._index = OrderedDict(
                (rel, _Entry(size, 0.0)) for rel, size, _ in found if rel not in fresh
            )
            self._index.update(fresh)
            self._total = sum(entry.size for entry in self._index.values())
        return len(found)

    def _walk(self) -> list[tuple[str, int, float]]:
        found: list[tuple[str, int, float]] = []
        stale = time.time() - STALE_TEMP_S
        for shard in _subdirs(self.root):
            for image in _subdirs(shard):
                for entry in os.scandir(image):
                    st = entry.stat(follow_symlinks=False)
                    if entry.name.startswith(TMP_PREFIX):
                        if st.st_mtime < stale:
                            Path(entry.path).unlink(missing_ok=True)
                        continue
                    if entry.is_file(follow_symlinks=False):
                        rel = f"{shard.name}/{image.name}/{entry.name}"
                        found.append((rel, st.st_size, st.st_mtime))
        return found

    def _forget(self, rel: str) -> None:
        """Drop `rel` from the index; caller holds the lock."""
        entry = self._index.pop(rel, None)
        if entry is not None:
            self._total -= entry.size
        self._touched.discard(rel)

    def _flush_touches(self) -> None:
        with self._lock:
            touched, self._touched = self._touched, set()
            self._hits_since_flush = 0
        for rel in touched:
            try:
                os.utime(self.root / rel)
            except FileNotFoundError:
                pass


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
