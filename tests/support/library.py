"""A PicHub library on disk, built through PicHub's own code rather than HTTP, quickly.

Image rows (`db.images.insert`), their blobs where `BlobStore.path` puts them, one cached
variant each where `DiskCache.path_for` puts it (the one `/img/{id}.jpg?w=VARIANT_W`
serves), and what crashes leave behind: orphan blobs and temp files. Files are written
without fsync unless `durable` (then through `BlobStore.put` and `DiskCache.put`): the
layout is what matters to start-up, and a million fsyncs take most of an hour.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pichub.app import data_paths
from pichub.blobs import TMP_PREFIX, BlobStore
from pichub.config import Settings
from pichub.db import images as images_db
from pichub.db.database import Database
from pichub.imaging.cache import DiskCache
from pichub.imaging.formats import ext_of
from pichub.imaging.spec import TransformSpec
from pichub.services import accounts

VARIANT_W = 50
ROWS_PER_TRANSACTION = 2000


def tiny_jpeg(size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, "JPEG", quality=80)
    return out.getvalue()


def variant_spec(quality: int = 85) -> TransformSpec:
    """The spec of `/img/{id}.jpg?w=VARIANT_W` with the default quality resolved."""
    spec = TransformSpec.parse({"w": str(VARIANT_W)}, "jpg", "jpeg", 4096)
    return spec.with_default_quality(quality)


@dataclass
class Library:
    token: str
    ids: list[str] = field(default_factory=list)
    blobs: list[Path] = field(default_factory=list)
    variants: list[Path] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    temps: list[Path] = field(default_factory=list)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def build(data_dir: Path, images: int, *, variants: bool = True, orphans: int = 0,
                temps: int = 0, durable: bool = False, progress: bool = False,
                remember: bool = True) -> Library:
    """`images` images of user `alice` (the returned token is hers), each with its blob and,
    with `variants`, one cached variant; `orphans` blobs without a row, `temps` temp files
    in the blob store. Without `remember`, the Library lists no paths (a million of them
    take a gigabyte)."""
    paths = data_paths(Settings(storage={"data_dir": data_dir}))
    db = await Database.open(paths["db"])
    try:
        user_id = await accounts.create_user(db, "alice", "password-alice", is_admin=True)
        library = Library(await accounts.create_token(db, "alice"))
        store, cache = BlobStore(paths["blobs"]), DiskCache(paths["cache"], 2**62)
        data = tiny_jpeg()
        digest, spec, ext = hashlib.sha256(data).hexdigest(), variant_spec(), ext_of("jpeg")
        for start in range(0, images, ROWS_PER_TRANSACTION):
            batch = [secrets.token_urlsafe(9) for _ in range(min(ROWS_PER_TRANSACTION,
                                                                 images - start))]
            for image_id in batch:
                if durable:
                    library.blobs.append(store.put(image_id, "jpg", data))
                else:
                    library.blobs.append(store.path(image_id, "jpg"))
                    _write(library.blobs[-1], data)
                if variants:
                    key = spec.cache_key(image_id)
                    if durable:
                        library.variants.append(cache.put(key, ext, data))
                    else:
                        library.variants.append(cache.path_for(key, ext))
                        _write(library.variants[-1], data)
            async with db.transaction() as conn:
                for image_id in batch:
                    await images_db.insert(conn, images_db.NewImage(
                        id=image_id, user_id=user_id, album_id=None, filename=f"{image_id}.jpg",
                        original_name="tiny.jpg", description="", format="jpeg", width=8,
                        height=6, frames=1, size=len(data), sha256=digest))
            if not remember:
                library.blobs.clear()
                library.variants.clear()
            else:
                library.ids.extend(batch)
            if progress and (start // ROWS_PER_TRANSACTION) % 50 == 0:
                print(f"  {start + len(batch)} images", flush=True)
        for _ in range(orphans):
            library.orphans.append(store.path(secrets.token_urlsafe(9), "jpg"))
            _write(library.orphans[-1], b"orphan")
        for n in range(temps):
            owner = library.blobs[n % len(library.blobs)] if library.blobs else store.root / "x"
            library.temps.append(owner.parent / f"{TMP_PREFIX}{n}-crash")
            _write(library.temps[-1], b"half written")
    finally:
        await db.close()
    return library


def age(paths: list[Path], seconds: float) -> None:
    """Set the mtime of `paths` `seconds` back (their ctime stays: the sweep also waits for
    that to be older than its start, see pichub.services.sweep.SETTLE_S)."""
    for path in paths:
        st = path.stat()
        os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))
