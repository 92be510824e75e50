"""Pipeline: real transforms in a real thread pool writing a real disk cache.

Saturation and concurrency tests hold the worker with a threading.Event (a
gate around the real transform), never with sleeps."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import UnidentifiedImageError

from pichub.errors import ServiceUnavailable
from pichub.imaging.cache import DiskCache
from pichub.imaging.pipeline import TOUCH_BATCH, Original, Pipeline
from pichub.imaging.pool import Priority
from pichub.imaging.spec import TransformSpec
from pichub.imaging.transform import Encoded, transform
from tests import imaging_samples as samples


class Gate:
    """The real transform, held until `release` is set; `started` tells it was entered."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(
        self,
        source: Path,
        source_format: str,
        spec: TransformSpec,
        **options: Any,
    ) -> Encoded:
        self.calls += 1
        self.started.set()
        if not self.release.wait(10):
            raise TimeoutError("gate never opened")
        return transform(source, source_format, spec, **options)


def spec(**query: str) -> TransformSpec:
    return TransformSpec.parse(query, None, "jpeg", 4096)


@pytest.fixture
def source(tmp_path: Path) -> Original:
    return Original(samples.jpeg(tmp_path / "src.jpg", (320, 240)), "jpeg", (320, 240))


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.release.set()  # never leave a worker blocked, even when a test fails


def make_pipeline(
    tmp_path: Path,
    *,
    workers: int = 2,
    queue_size: int = 8,
    gate: Gate | None = None,
    max_bytes: int = 10_000_000,
) -> Pipeline:
    cache = DiskCache(tmp_path / "cache", max_bytes, min_age_s=0)
    if gate is None:
        return Pipeline(cache, workers, queue_size, 85, max_dimension=4096)
    return Pipeline(cache, workers, queue_size, 85, max_dimension=4096, transform_fn=gate)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = make_pipeline(tmp_path)
    yield p
    p.close()


async def test_miss_then_hit_serves_identical_bytes_without_a_transform(
    pipeline: Pipeline, source: Original
) -> None:
    await pipeline.load_cache()
    first = await pipeline.variant("img1", source, spec(w="100", fm="webp"))
    assert pipeline.transforms_run == 1 and pipeline.cache_misses == 1
    assert first.mime == "image/webp" and first.path.suffix == ".webp"
    data = first.path.read_bytes()
    assert first.size == len(data) and data[8:12] == b"WEBP"
    second = await pipeline.variant("img1", source, spec(w="100", fm="webp"))
    assert pipeline.transforms_run == 1 and pipeline.cache_hits == 1
    assert second == first
    assert second.path.read_bytes() == data
    assert first.etag.startswith('"') and first.etag.endswith('"')


async def test_equivalent_urls_share_one_variant(pipeline: Pipeline, source: Original) -> None:
    a = await pipeline.variant("img1", source, spec(w="80", h="80", fit="crop"))
    b = await pipeline.variant("img1", source, spec(h="80", w="80", fit="cover", q="85"))
    assert a == b and pipeline.transforms_run == 1


async def test_different_specs_and_images_get_different_variants(
    pipeline: Pipeline, source: Original
) -> None:
    a = await pipeline.variant("img1", source, spec(w="80"))
    b = await pipeline.variant("img1", source, spec(w="81"))
    c = await pipeline.variant("img2", source, spec(w="80"))
    assert len({a.path, b.path, c.path}) == 3 and len({a.etag, b.etag, c.etag}) == 3
    assert pipeline.transforms_run == 3


async def test_twenty_concurrent_identical_misses_transform_once(
    tmp_path: Path, source: Original, gate: Gate
) -> None:
    pipeline = make_pipeline(tmp_path, gate=gate)
    try:
        calls = [
            asyncio.create_task(pipeline.variant("img1", source, spec(w="64")))
            for _ in range(20)
        ]
        await asyncio.to_thread(gate.started.wait, 10)  # every caller has joined by now
        gate.release.set()
        variants = await asyncio.gather(*calls)
    finally:
        pipeline.close()
    assert gate.calls == 1 and pipeline.transforms_run == 1
    assert pipeline.cache_misses == 20
    assert len(set(variants)) == 1


@pytest.mark.parametrize("queue_size", [0, 1])
async def test_a_full_pool_answers_503_at_once(
    tmp_path: Path, source: Original, gate: Gate, queue_size: int
) -> None:
    pipeline = make_pipeline(tmp_path, workers=1, queue_size=queue_size, gate=gate)
    try:
        running = asyncio.create_task(pipeline.variant("img1", source, spec(w="10")))
        await asyncio.to_thread(gate.started.wait, 10)
        queued = [
            asyncio.create_task(pipeline.variant("img1", source, spec(w=str(11 + i))))
            for i in range(queue_size)
        ]
        for _ in range(2000):  # let the queued ones take their places (a miss may first
            if pipeline.transforms_run == 1 + queue_size:  # look on disk, in a thread)
                break
            await asyncio.sleep(0.005)
        with pytest.raises(ServiceUnavailable) as info:
            await pipeline.variant("img1", source, spec(w="99"))
        assert info.value.status == 503
        assert info.value.headers == {"Retry-After": "1"}
        assert pipeline.transforms_rejected == 1
        # joining a flight already admitted is free, even when full
        joined = asyncio.create_task(pipeline.variant("img1", source, spec(w="10")))
        gate.release.set()
        results = await asyncio.gather(running, joined, *queued)
        assert results[0] == results[1]
        again = await pipeline.variant("img1", source, spec(w="99"))  # room again
        assert again.path.exists()
    finally:
        pipeline.close()
    assert pipeline.transforms_run == 2 + queue_size


async def test_a_failing_transform_frees_its_slot(tmp_path: Path, source: Original) -> None:
    pipeline = make_pipeline(tmp_path, workers=1, queue_size=0)
    try:
        bad = samples.garbage(tmp_path / "bad.jpg")
        for _ in range(2):
            with pytest.raises(UnidentifiedImageError):
                await pipeline.variant("bad", Original(bad, "jpeg", (320, 240)), spec(w="10"))
        ok = await pipeline.variant("img1", source, spec(w="10"))
        assert ok.path.exists()
    finally:
        pipeline.close()
    assert pipeline.cache.get("bad/" + spec(w="10").digest(), "jpg") is None


async def test_purge_removes_the_variants_from_disk(pipeline: Pipeline, source: Original) -> None:
    a = await pipeline.variant("img1", source, spec(w="40"))
    b = await pipeline.variant("img1", source, spec(w="50", fm="png"))
    other = await pipeline.variant("img2", source, spec(w="40"))
    assert await pipeline.purge("img1") == 2
    assert not a.path.exists() and not b.path.exists() and other.path.exists()
    await pipeline.variant("img1", source, spec(w="40"))
    assert pipeline.transforms_run == 4  # made again, not served from a stale index


async def test_puts_over_budget_trigger_background_eviction(tmp_path: Path,
                                                            source: Original) -> None:
    pipeline = make_pipeline(tmp_path)
    try:
        first = await pipeline.variant("img1", source, spec(w="100"))
        pipeline.cache.max_bytes = first.size  # room for exactly one variant
        await pipeline.drain()
        assert first.path.exists()
        second = await pipeline.variant("img2", source, spec(w="100"))  # same size
        await pipeline.drain()
        assert not first.path.exists() and second.path.exists()
        assert pipeline.cache.total_bytes == second.size
    finally:
        await pipeline.aclose()


async def test_load_cache_indexes_what_is_already_on_disk(tmp_path: Path,
                                                          source: Original) -> None:
    before = make_pipeline(tmp_path)
    try:
        made = await before.variant("img1", source, spec(w="30"))
    finally:
        before.close()
    after = make_pipeline(tmp_path)
    try:
        await after.load_cache()
        assert not after.cache.loading and len(after.cache) == 1
        assert after.cached("img1", spec(w="30")) == made  # in memory: no disk access
        again = await after.variant("img1", source, spec(w="30"))
    finally:
        after.close()
    assert again == made and after.transforms_run == 0 and after.cache_hits == 2


async def test_a_miss_while_loading_is_found_on_disk_not_made_again(
        tmp_path: Path, source: Original) -> None:
    before = make_pipeline(tmp_path)
    try:
        made = await before.variant("img1", source, spec(w="30"))
    finally:
        before.close()
    inode = made.path.stat().st_ino
    after = make_pipeline(tmp_path)  # its index is not loaded
    try:
        assert after.cache.loading and after.cached("img1", spec(w="30")) is None
        again = await after.variant("img1", source, spec(w="30"))
        assert after.cached("img1", spec(w="30")) == made  # indexed now
        other = await after.variant("img1", source, spec(w="31"))  # not on disk: made
    finally:
        after.close()
    assert again == made and made.path.stat().st_ino == inode
    assert after.transforms_run == 1 and after.cache_misses == 1 and other.path.exists()


async def test_run_runs_blocking_work(pipeline: Pipeline) -> None:
    assert await pipeline.run(Priority.UPLOAD, sum, [1, 2, 3]) == 6
    name = await pipeline.run(Priority.UPLOAD, lambda: threading.current_thread().name)
    assert name.startswith("pichub-img")


async def test_many_hits_write_their_recency_back_to_disk(pipeline: Pipeline,
                                                          source: Original) -> None:
    made = await pipeline.variant("img1", source, spec(w="20"))
    os.utime(made.path, (1_000_000, 1_000_000))
    for _ in range(TOUCH_BATCH):
        await pipeline.variant("img1", source, spec(w="20"))
    await pipeline.drain()
    assert made.path.stat().st_mtime > 1_000_000
    assert pipeline.cache.pending_touches == 0 and made.path.exists()


async def test_cached_tells_a_hit_without_doing_work(pipeline: Pipeline, source: Original) -> None:
    assert pipeline.cached("img1", spec(w="25")) is None
    made = await pipeline.variant("img1", source, spec(w="25"))
    assert pipeline.cached("img1", spec(w="25", q="85")) == made
    assert pipeline.cache_hits == 1 and pipeline.cache_misses == 1
    assert pipeline.transforms_run == 1
