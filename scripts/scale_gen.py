"""Synthetic PicHub libraries for `scripts/bench-scale`: N images in PicHub's storage layout.

Built without HTTP but through PicHub's own code, so a library stays what the server
expects when the layout or the schema changes: `Database.open` (migrations), the user and
its API token as `pichub user create` / `pichub token create` make them
(`services.accounts`), albums with `db.albums.create`, rows with `db.images.insert` in
transactions of ROWS_PER_TRANSACTION, originals with `BlobStore.put` and one real cached
variant per image with `DiskCache.put` under `TransformSpec.cache_key` of the spec the
benchmark requests (VARIANT_QUERY), so the server answers it as a cache hit.

Every image is the same small JPEG (ORIGINAL_SIZE) with its id in a JPEG comment, so each
blob's bytes, and its sha256 in the row, are its own. The variant is what
`imaging.transform` makes of that JPEG for the spec, the same bytes for every image.

Speed: the files are written by worker processes (one per core) while the main process
inserts the rows of the previous batch. Those workers skip `fsync` (2 ms a file on the
development VM, which would make a million images take hours); one `os.sync()` flushes
everything before the marker file says the library is complete.

A library is cached as `ROOT/<N>-s<schema>/` (`data/` is the PicHub data directory,
LIBRARY_FILE the marker, written last), where `<schema>` fingerprints the migrations: code
with other migrations builds its own library instead of migrating (and then sharing) one
that older code also writes to.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import json
import multiprocessing
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from pichub.app import data_paths
from pichub.blobs import BlobStore
from pichub.config import ImageSettings, Settings, StorageSettings
from pichub.db import albums as albums_db
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.imaging.cache import DiskCache
from pichub.imaging.formats import ext_of
from pichub.imaging.spec import TransformSpec
from pichub.imaging.transform import transform
from pichub.services import accounts

GENERATOR_VERSION = 1
LIBRARY_FILE = "library.json"
USERNAME = "bench"
ROWS_PER_TRANSACTION = 5_000
FILES_PER_TASK = 500
ORIGINAL_SIZE = (320, 180)  # one 4 KB block: a million originals fit in ~8 GB with their dirs
ORIGINAL_FORMAT = "jpeg"
#: The variant every image has in the cache, as `/img/{id}.webp?w=160` asks for it.
VARIANT_QUERY = {"w": "160"}
VARIANT_EXT = "webp"
SAMPLE_IDS = 64


@dataclass(frozen=True)
class Library:
    """A generated library: where it is and what the benchmark needs to use it."""

    n: int
    data_dir: str
    username: str
    user_id: int
    token: str
    album_ids: list[int]
    sample_ids: list[str]  # spread over the library: variant requests, layout checks
    schema: str
    build_s: float
    images_per_s: float
    generator_version: int = GENERATOR_VERSION

    @property
    def db_path(self) -> Path:
        return self.paths["db"]

    @property
    def paths(self) -> dict[str, Path]:
        return data_paths(Settings(storage=StorageSettings(data_dir=Path(self.data_dir))))


@dataclass(frozen=True)
class _FilePlan:
    """What each worker process writes for every image id it is given."""

    blobs: Path
    cache: Path
    original: bytes
    variant: bytes
    spec: TransformSpec


# --- the images ---------------------------------------------------------------------------

def original_jpeg(size: tuple[int, int] = ORIGINAL_SIZE, seed: int = 7) -> bytes:
    """A small photo-like JPEG: a gradient with a few soft shapes (3.5 KB at 320x180)."""
    rng = random.Random(seed)
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    im = Image.composite(Image.new("RGB", size, (30, 60, 120)),
                         Image.new("RGB", size, (200, 180, 150)), gradient)
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(width // 10, width // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in "rgb"))
    out = BytesIO()
    im.filter(ImageFilter.GaussianBlur(width / 100)).save(out, "JPEG", quality=75)
    return out.getvalue()


def stamped(jpeg: bytes, image_id: str) -> bytes:
    """`jpeg` with a comment segment (COM) holding `image_id` right after SOI: a valid JPEG
    whose bytes differ per image."""
    payload = f"pichub bench-scale {image_id}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def variant_spec() -> TransformSpec:
    """The spec of VARIANT_QUERY as the server resolves it (default quality filled in)."""
    images = ImageSettings()
    spec = TransformSpec.parse(VARIANT_QUERY, VARIANT_EXT, ORIGINAL_FORMAT, images.max_dimension)
    return spec.with_default_quality(images.default_quality)


def variant_bytes(original: bytes, spec: TransformSpec) -> bytes:
    """What PicHub's own transform makes of `original` for `spec`."""
    with tempfile.NamedTemporaryFile(suffix=".jpg") as fh:
        fh.write(original)
        fh.flush()
        return transform(Path(fh.name), ORIGINAL_FORMAT, spec,
                         default_quality=ImageSettings().default_quality).data


def image_ids(seed: int) -> Iterator[str]:
    """Ids shaped like the server's (`secrets.token_urlsafe(9)`), from a seeded generator."""
    rng = random.Random(seed)
    while True:
        yield base64.urlsafe_b64encode(rng.randbytes(9)).decode()


# --- worker processes ---------------------------------------------------------------------

_PLAN: _FilePlan | None = None  # set once per worker process by _start_worker


def _no_fsync(_fd: object) -> None:
    """Stands in for os.fsync in the workers (see the module docstring: one sync at the end)."""


def _start_worker(plan: _FilePlan) -> None:
    global _PLAN
    os.fsync = _no_fsync  # type: ignore[assignment]  # the workers only; see the docstring
    _PLAN = plan


def _write_files(ids: list[str]) -> list[tuple[int, str]]:
    """In a worker: each image's original and cached variant; (size, sha256) of each original."""
    assert _PLAN is not None
    plan = _PLAN
    blobs = BlobStore(plan.blobs)
    cache = DiskCache(plan.cache, max_bytes=2**62)  # fresh per task: its index is not needed
    ext = ext_of(ORIGINAL_FORMAT)
    written = []
    for image_id in ids:
        data = stamped(plan.original, image_id)
        blobs.put(image_id, ext, data)
        cache.put(plan.spec.cache_key(image_id), VARIANT_EXT, plan.variant)
        written.append((len(data), hashlib.sha256(data).hexdigest()))
    return written


# --- building -----------------------------------------------------------------------------

class _Builder:
    """Fills a fresh data directory: files in the worker pool, rows here, batch by batch."""

    def __init__(self, db: Database, pool: ProcessPoolExecutor, n: int, user_id: int,
                 album_ids: list[int], width_height: tuple[int, int]) -> None:
        self.db, self.pool, self.n = db, pool, n
        self.user_id, self.album_ids = user_id, album_ids
        self.width, self.height = width_height
        self.done = 0
        self.started = self.last_report = time.monotonic()
        self.samples: list[str] = []

    async def run(self, ids: Iterator[str]) -> None:
        """Keep two batches of files in flight while the rows of the oldest are inserted."""
        in_flight: deque[tuple[list[str], asyncio.Future[list[list[tuple[int, str]]]]]] = deque()
        for start in range(0, self.n, ROWS_PER_TRANSACTION):
            batch = [next(ids) for _ in range(min(ROWS_PER_TRANSACTION, self.n - start))]
            in_flight.append((batch, self._submit(batch)))
            if len(in_flight) > 2:
                await self._insert(*in_flight.popleft())
        while in_flight:
            await self._insert(*in_flight.popleft())

    def _submit(self, batch: list[str]) -> asyncio.Future[list[list[tuple[int, str]]]]:
        loop = asyncio.get_running_loop()
        return asyncio.gather(*(loop.run_in_executor(self.pool, _write_files,
                                                     batch[i:i + FILES_PER_TASK])
                                for i in range(0, len(batch), FILES_PER_TASK)))

    async def _insert(self, batch: list[str],
                      files: asyncio.Future[list[list[tuple[int, str]]]]) -> None:
        written = [item for part in await files for item in part]
        step = max(1, self.n // SAMPLE_IDS)
        async with self.db.transaction() as conn:
            for image_id, (size, sha256) in zip(batch, written, strict=True):
                if self.done % step == 0 and len(self.samples) < SAMPLE_IDS:
                    self.samples.append(image_id)
                await images_db.insert(conn, self._row(image_id, size, sha256))
                self.done += 1
        self._report()

    def _row(self, image_id: str, size: int, sha256: str) -> images_db.NewImage:
        album = self.album_ids[self.done % len(self.album_ids)] if self.album_ids else None
        name = f"screenshot_{self.done + 1}.jpg"
        return images_db.NewImage(
            id=image_id, user_id=self.user_id, album_id=album, filename=name,
            original_name=name, description="", format=ORIGINAL_FORMAT, width=self.width,
            height=self.height, frames=1, size=size, sha256=sha256, visibility="public")

    def _report(self, every_s: float = 5.0) -> None:
        now = time.monotonic()
        if now - self.last_report < every_s and self.done < self.n:
            return
        self.last_report = now
        rate = self.done / max(now - self.started, 1e-9)
        eta = (self.n - self.done) / rate if rate else 0.0
        print(f"  generated {self.done:,}/{self.n:,} images, {rate:,.0f} images/s, "
              f"ETA {eta:.0f} s", file=sys.stderr, flush=True)


async def _create_owner(db: Database, albums: int) -> tuple[int, str, list[int]]:
    """The user (as `pichub user create`), its token (as `pichub token create`), its albums."""
    user_id = await accounts.create_user(db, USERNAME, secrets.token_urlsafe(12), is_admin=True)
    token = await accounts.create_token(db, USERNAME, name="bench-scale", scope="write")
    async with db.transaction() as conn:
        album_ids = [await albums_db.create(conn, user_id, f"Album {k + 1}", "", "public")
                     for k in range(albums)]
    return user_id, token, album_ids


async def _build(data_dir: Path, n: int, albums: int, workers: int, seed: int) -> Library:
    started = time.monotonic()
    paths = data_paths(Settings(storage=StorageSettings(data_dir=data_dir)))
    original = original_jpeg()
    spec = variant_spec()
    plan = _FilePlan(paths["blobs"], paths["cache"], original, variant_bytes(original, spec),
                     spec)
    size = Image.open(BytesIO(original)).size
    db = await Database.open(paths["db"])
    try:
        user_id, token, album_ids = await _create_owner(db, albums)
        # spawn, not fork: this process already runs aiosqlite's threads.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(plan,)) as pool:
            builder = _Builder(db, pool, n, user_id, album_ids, size)
            await builder.run(image_ids(seed))
    finally:
        await db.close()
    await asyncio.to_thread(os.sync)
    elapsed = time.monotonic() - started
    return Library(n, str(data_dir), USERNAME, user_id, token, album_ids, builder.samples,
                   schema_fingerprint(), round(elapsed, 2), round(n / elapsed, 1))


# --- caching ------------------------------------------------------------------------------

def schema_fingerprint() -> str:
    """Latest migration number and a hash of every migration's text: `3-1a2b3c4d`."""
    folder = resources.files("pichub.db") / "migrations"
    files = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir()
                   if entry.name.endswith(".sql"))
    digest = hashlib.sha256("".join(name + text for name, text in files).encode()).hexdigest()
    latest = max((int(name.split("_", 1)[0]) for name, _ in files), default=0)
    return f"{latest}-{digest[:8]}"


def library_dir(root: Path, n: int) -> Path:
    return root / f"{n}-s{schema_fingerprint()}"


def _load(marker: Path, n: int) -> Library | None:
    try:
        data: dict[str, Any] = json.loads(marker.read_text())
        library = Library(**data)
    except (OSError, ValueError, TypeError):
        return None
    if library.n != n or library.generator_version != GENERATOR_VERSION:
        return None
    return library


def layout_matches(library: Library) -> bool:
    """True when today's code finds the sample images' originals and variants on disk."""
    paths = library.paths
    blobs = BlobStore(paths["blobs"])
    cache = DiskCache(paths["cache"], 0)
    spec = variant_spec()
    return all(blobs.path(image_id, ext_of(ORIGINAL_FORMAT)).is_file()
               and cache.path_for(spec.cache_key(image_id), VARIANT_EXT).is_file()
               for image_id in library.sample_ids[:16])


async def _migrate(db_path: Path) -> None:
    db = await Database.open(db_path)
    await db.close()


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold `folder/.lock` so two benchmark runs never share a library at once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another bench-scale run using {folder}", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure_library(folder: Path, n: int, *, albums: int, workers: int, rebuild: bool,
                   seed: int) -> tuple[Library, bool]:
    """The library in `folder`, built unless a complete one with today's layout is there.
    Returns it and whether it was built now. Call with `locked(folder)` held."""
    marker = folder / LIBRARY_FILE
    library = None if rebuild else _load(marker, n)
    if library is not None and layout_matches(library):
        asyncio.run(_migrate(library.db_path))  # cheap when current; never timed as start-up
        return library, False
    marker.unlink(missing_ok=True)
    data_dir = folder / "data"
    if data_dir.exists():
        print(f"  removing the old library in {data_dir}", file=sys.stderr)
        shutil.rmtree(data_dir)
    print(f"  building a library of {n:,} images in {data_dir} ({workers} worker processes)",
          file=sys.stderr, flush=True)
    library = asyncio.run(_build(data_dir, n, albums, workers, seed))
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(library), indent=2) + "\n")
    os.replace(tmp, marker)
    return library, True
