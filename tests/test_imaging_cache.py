"""DiskCache on a real directory: layout, atomic puts, purge, LRU eviction in bytes and in
files, rebuild from disk (at once with `scan`, in steps with `IndexLoader`), adopt."""

from __future__ import annotations

import gc
import os
import tracemalloc
from pathlib import Path

import pytest

from pichub.imaging import cache as cache_module
from pichub.imaging.cache import STALE_TEMP_S, DiskCache, IndexLoader

A, B, C, D = (
    f"{image}/{digest * 32}"
    for image, digest in (("imgA1", "a"), ("imgB2", "b"), ("imgC3", "c"), ("imgD4", "d"))
)


def make(tmp_path: Path, max_bytes: int = 10_000, min_age_s: float = 0.0,
         max_files: int = 1000) -> DiskCache:
    return DiskCache(tmp_path / "cache", max_bytes, min_age_s=min_age_s, max_files=max_files)


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
    second = make(tmp_path)
    assert second.scan() == 3
    assert second.total_bytes == 300 and len(second) == 3 and not second.loading
    second.max_bytes = 200
    assert second.evict() == [pb]
    assert second.get(A, "jpg") == pa


def test_scan_keeps_only_the_newest_within_the_bounds(tmp_path: Path) -> None:
    first = make(tmp_path)
    pa, pb, pc = (first.put(k, "jpg", b"x" * 100) for k in (A, B, C))
    set_mtime(pb, 1_000_000)  # oldest
    set_mtime(pa, 2_000_000)
    set_mtime(pc, 3_000_000)
    by_bytes = make(tmp_path, max_bytes=200)
    assert by_bytes.scan() == 3  # found; the oldest is deleted as it would be evicted
    assert not pb.exists() and pa.exists() and pc.exists()
    assert by_bytes.total_bytes == 200 and len(by_bytes) == 2
    by_files = make(tmp_path, max_files=1)
    assert by_files.scan() == 2
    assert files(tmp_path / "cache") == {str(pc.relative_to(tmp_path / "cache"))}
    assert by_files.get(C, "jpg") == pc and len(by_files) == 1


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
    assert not pb.exists() and second.get(A, "jpg") == pa


def test_scan_keeps_entries_added_meanwhile_as_most_recent(tmp_path: Path) -> None:
    pa = make(tmp_path).put(A, "jpg", b"x" * 100)
    cache = make(tmp_path)
    pb = cache.put(B, "jpg", b"y" * 100)
    set_mtime(pb, 1_000_000)  # older on disk than A, but used since the start
    cache.scan()
    assert cache.total_bytes == 200 and len(cache) == 2
    cache.max_bytes = 100
    assert cache.evict() == [pa]
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


def test_eviction_bounds_the_number_of_files_too(tmp_path: Path) -> None:
    cache = make(tmp_path, max_files=2)
    pa, pb, pc = (cache.put(k, "jpg", b"x") for k in (A, B, C))
    assert cache.over_budget
    cache.get(A, "jpg")
    assert cache.evict() == [pb]
    assert len(cache) == 2 and not cache.over_budget and pa.exists() and pc.exists()


def many(tmp_path: Path, count: int, size: int = 1) -> list[Path]:
    """`count` variants of as many images, the i-th modified at 1_000_000 + i (written
    where the cache puts them, without its fsync: the tests would wait for the disk)."""
    layout = make(tmp_path)
    paths = []
    for i in range(count):
        path = layout.path_for(f"img{i:04d}/{'ab' * 16}", "webp")
        path.parent.mkdir(parents=True)
        path.write_bytes(b"v" * size)
        set_mtime(path, 1_000_000 + i)
        paths.append(path)
    return paths


def test_the_loader_holds_no_more_than_max_files_and_deletes_the_oldest(tmp_path: Path) -> None:
    paths = many(tmp_path, 40)
    cache = make(tmp_path, max_files=10)
    loader = IndexLoader(cache, 7)
    steps = 0
    most = 0
    while loader.step():
        steps += 1
        most = max(most, loader.held)
        assert len(cache) == 0 and cache.loading  # nothing visible before `finish`
    assert most == 17  # max_files and one step: it trims once it holds more
    assert steps == 6 and loader.seen == loader.found == 40
    assert loader.finish() == 10 and loader.evicted == 30
    assert not cache.loading and len(cache) == 10 and cache.total_bytes == 10
    assert [p.exists() for p in paths] == [False] * 30 + [True] * 10
    cache.max_files = 9
    assert cache.evict() == [paths[30]]  # the oldest of the newest ten goes first


def test_what_requests_index_while_loading_stays_most_recent(tmp_path: Path) -> None:
    paths = many(tmp_path, 5)
    cache = make(tmp_path)
    loader = IndexLoader(cache, 2)
    loader.step()
    adopted = cache.adopt("img0000/" + "ab" * 16, "webp")  # the oldest file on disk
    assert adopted is not None and adopted.path == paths[0] and adopted.size == 1
    assert cache.adopt("img0000/" + "cd" * 16, "webp") is None  # not on disk
    put = cache.put(D, "jpg", b"new")
    while loader.step():
        pass
    loader.finish()
    assert len(cache) == 6 and cache.total_bytes == 8
    cache.max_files = 2
    assert set(cache.evict()) == set(paths[1:5])
    assert paths[0].exists() and put.exists()


def test_an_image_purged_while_loading_is_not_indexed(tmp_path: Path) -> None:
    paths = many(tmp_path, 3)
    cache = make(tmp_path)
    loader = IndexLoader(cache, 10)
    loader.step()  # found all three
    assert cache.purge_image("img0001") == 1
    loader.step()
    loader.finish()
    assert len(cache) == 2 and cache.get("img0001/" + "ab" * 16, "webp") is None
    assert not paths[1].exists() and paths[0].exists() and paths[2].exists()


def test_an_index_entry_costs_under_200_bytes(tmp_path: Path) -> None:
    """The bound on files is a bound on memory (README: images.cache_max_files): what the
    index keeps after a load (keys, entries, the dict), by where it was allocated."""
    count = 5000
    many(tmp_path, count, size=300)  # sizes above 256 are int objects of their own
    cache = make(tmp_path, max_files=count, max_bytes=10**9)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        assert cache.scan() == count
        cache.get("img0001/" + "ab" * 16, "webp")  # a used entry packs its time too
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert len(cache) == count
    mine = [tracemalloc.Filter(True, cache_module.__file__)]
    kept = sum(stat.size_diff for stat in
               after.filter_traces(mine).compare_to(before.filter_traces(mine), "filename"))
    assert 100 < kept / count < 200
