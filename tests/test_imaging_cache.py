"""DiskCache on a real directory: layout, atomic puts, purge, LRU eviction, rebuild."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pichub.imaging.cache import STALE_TEMP_S, DiskCache

A, B, C, D = (
    f"{image}/{digest * 32}"
    for image, digest in (("imgA1", "a"), ("imgB2", "b"), ("imgC3", "c"), ("imgD4", "d"))
)


def make(tmp_path: Path, max_bytes: int = 10_000, min_age_s: float = 0.0) -> DiskCache:
    return DiskCache(tmp_path / "cache", max_bytes, min_age_s=min_age_s)


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def set_mtime(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def test_put_then_get(tmp_path: Path) -> None:
    cache = make(tmp_path)
    assert cache.get(A, "webp") is None
    path = cache.put(A, "webp", b"x" * 100)
    assert path == tmp_path / "cache" / "im" / "imgA1" / f"{'a' * 32}.webp"
    assert path.read_bytes() == b"x" * 100
    assert cache.get(A, "webp") == path
    assert cache.path_for(A, "webp") == path
    assert cache.get(A, "png") is None  # the extension is part of the entry
    hit = cache.lookup(A, "webp")
    assert hit is not None and hit.size == 100
    assert cache.total_bytes == 100 and len(cache) == 1


def test_put_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    cache = make(tmp_path)
    cache.put(A, "jpg", b"first")
    cache.put(A, "jpg", b"second version")
    assert files(tmp_path / "cache") == {f"im/imgA1/{'a' * 32}.jpg"}
    assert cache.total_bytes == len(b"second version")


@pytest.mark.parametrize(
    ("key", "ext"),
    [
        ("../etc/" + "a" * 32, "jpg"),
        ("img/" + "g" * 32, "jpg"),
        ("img/abc", "jpg"),
        (A, "../x"),
        (A, ""),
        ("a" * 32, "jpg"),
    ],
)
def test_keys_and_extensions_cannot_escape_the_root(tmp_path: Path, key: str, ext: str) -> None:
    with pytest.raises(ValueError):
        make(tmp_path).path_for(key, ext)


def test_purge_removes_every_variant_of_one_image(tmp_path: Path) -> None:
    cache = make(tmp_path)
    other = "imgA1/" + "e" * 32
    a1, a2 = cache.put(A, "webp", b"1" * 10), cache.put(other, "png", b"2" * 20)
    b1 = cache.put(B, "webp", b"3" * 30)
    assert cache.purge_image("imgA1") == 2
    assert not a1.exists() and not a2.exists() and not a1.parent.exists()
    assert b1.exists()
    assert cache.get(A, "webp") is None and cache.get(other, "png") is None
    assert cache.total_bytes == 30
    assert cache.purge_image("imgA1") == 0
    with pytest.raises(ValueError):
        cache.purge_image("../imgA1")


def test_eviction_removes_the_least_recently_used_first(tmp_path: Path) -> None:
    cache = make(tmp_path, max_bytes=250)
    pa, pb, pc = (cache.put(k, "jpg", b"x" * 100) for k in (A, B, C))
    assert cache.get(A, "jpg") == pa  # A is now more recent than B and C
    assert cache.evict() == [pb]
    assert not pb.exists() and pa.exists() and pc.exists()
    assert cache.total_bytes == 200
    cache.put(D, "jpg", b"x" * 100)  # order now: C, A, D
    assert cache.evict() == [pc]
    assert cache.get(B, "jpg") is None and cache.get(C, "jpg") is None


def test_eviction_spares_entries_just_used(tmp_path: Path) -> None:
    cache = make(tmp_path, max_bytes=50, min_age_s=3600)
    path = cache.put(A, "jpg", b"x" * 100)
    assert cache.evict() == []
    assert path.exists() and cache.total_bytes == 100


def test_eviction_under_budget_does_nothing(tmp_path: Path) -> None:
    cache = make(tmp_path, max_bytes=1000)
    cache.put(A, "jpg", b"x" * 100)
    assert cache.evict() == []


def test_scan_rebuilds_the_index_in_mtime_order(tmp_path: Path) -> None:
    first = make(tmp_path)
    pa, pb, pc = (first.put(k, "jpg", b"x" * 100) for k in (A, B, C))
    set_mtime(pb, 1_000_000)  # oldest
    set_mtime(pa, 2_000_000)
    set_mtime(pc, 3_000_000)
    second = make(tmp_path, max_bytes=200)
    assert second.scan() == 3
    assert second.total_bytes == 300 and len(second) == 3
    assert second.evict() == [pb]
    assert second.get(A, "jpg") == pa


def test_hits_are_written_back_as_mtimes_for_the_next_start(tmp_path: Path) -> None:
    first = make(tmp_path)
    pa, pb = first.put(A, "jpg", b"x" * 100), first.put(B, "jpg", b"x" * 100)
    set_mtime(pa, 1_000_000)
    set_mtime(pb, 2_000_000)
    first.get(A, "jpg")
    first.evict()  # under budget: only flushes recency to disk
    assert pa.stat().st_mtime > pb.stat().st_mtime
    second = make(tmp_path, max_bytes=100)
    second.scan()
    assert second.evict() == [pb]


def test_scan_keeps_entries_added_meanwhile_as_most_recent(tmp_path: Path) -> None:
    make(tmp_path).put(A, "jpg", b"x" * 100)
    cache = make(tmp_path, max_bytes=100)
    pb = cache.put(B, "jpg", b"y" * 100)
    cache.scan()
    assert cache.total_bytes == 200
    assert [p.name for p in cache.evict()] == [f"{'a' * 32}.jpg"]
    assert pb.exists()


def test_scan_removes_stale_temp_files_only(tmp_path: Path) -> None:
    cache = make(tmp_path)
    path = cache.put(A, "jpg", b"x")
    stale, fresh = path.parent / ".tmp-old", path.parent / ".tmp-new"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"being written")
    set_mtime(stale, path.stat().st_mtime - STALE_TEMP_S - 60)
    assert make(tmp_path).scan() == 1
    assert not stale.exists() and fresh.exists()


def test_scan_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    cache = make(tmp_path)
    assert cache.scan() == 0 and cache.total_bytes == 0
