"""The decode budget and the decode cost of a transform, from header numbers alone."""

from __future__ import annotations

import pytest

from pichub.imaging.budget import MB, DecodeCost, bytes_per_pixel, decode_units
from pichub.imaging.spec import TransformSpec

BUDGET = 400 * MB


@pytest.mark.parametrize(("mode", "size"), [
    ("1", 1), ("L", 1), ("P", 1), ("I;16", 2), ("I;16B", 2), ("LA", 4), ("RGB", 4),
    ("RGBA", 4), ("CMYK", 4), ("I", 4), ("F", 4),
])
def test_bytes_per_pixel_is_pillows_in_memory_size(mode: str, size: int) -> None:
    assert bytes_per_pixel(mode) == size


def test_the_gif_bomb_is_over_the_default_budget_and_says_so() -> None:
    cost = DecodeCost.of(2000, 2000, 40, "P")  # frames after the first decode to RGB(A)
    assert cost.bytes == 640_000_000 and cost.exceeds(BUDGET)
    assert cost.explain(BUDGET) == (
        "decoding needs 611 MB (2000×2000 pixels × 40 frames × 4 bytes), "
        "more than the limit of 400 MB"
    )


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "CMYK", "L", "P", "I;16"])
def test_any_still_within_max_pixels_fits_the_default_budget(mode: str) -> None:
    assert not DecodeCost.of(10_000, 10_000, 1, mode).exceeds(BUDGET)


def test_no_limit_means_no_refusal() -> None:
    assert not DecodeCost.of(100_000, 100_000, 500, "RGBA").exceeds(None)


def spec(fm: str, **query: str) -> TransformSpec:
    return TransformSpec.parse({**query, "fm": fm}, None, "gif", 4096)


def test_a_still_or_a_first_frame_output_costs_one_unit() -> None:
    assert decode_units(10_000, 10_000, 1, spec("webp", w="16")) == 1
    assert decode_units(2000, 2000, 40, spec("jpeg", w="16")) == 1
    assert decode_units(2000, 2000, 40, spec("png")) == 1


def test_an_animated_output_costs_frames_times_pixels_whatever_its_size() -> None:
    assert decode_units(2000, 2000, 40, spec("webp", w="16")) == 10
    assert decode_units(2000, 2000, 40, spec("gif", w="2000")) == 10
    assert decode_units(2000, 2000, 80, spec("webp", w="16")) == 20
    assert decode_units(100, 100, 3, spec("gif")) == 1  # small animations stay at one


def test_an_animation_counts_as_at_least_eight_frames() -> None:
    """An animated encode holds about eight canvases, so two huge frames cost as much as eight."""
    cost = DecodeCost.of(7000, 7000, 2, "P")
    assert cost.exceeds(BUDGET)
    assert cost.explain(BUDGET) == (
        "decoding needs 1496 MB (7000×7000 pixels × 2 frames (counted as 8: the least an "
        "animation costs) × 4 bytes), more than the limit of 400 MB"
    )
    assert not DecodeCost.of(2000, 2000, 3, "P").exceeds(BUDGET)
