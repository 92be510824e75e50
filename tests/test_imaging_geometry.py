"""sharp's resize geometry: exact sizes, crop boxes and pad offsets for every fit."""

from __future__ import annotations

import pytest

from pichub.imaging.geometry import Plan, plan, source_box

LANDSCAPE = (4000, 3000)
PORTRAIT = (3000, 4000)
SQUARE = (1000, 1000)

# Box 800×400 on each source; expected (resize, crop, canvas, offset), worked out by hand
# from sharp's rules (shrink = W/w and H/h, min for cover/outside, max for contain/inside).
CASES = [
    (LANDSCAPE, "cover", ((800, 600), (0, 100, 800, 500), (800, 400), (0, 0))),
    (LANDSCAPE, "contain", ((533, 400), (0, 0, 533, 400), (800, 400), (133, 0))),
    (LANDSCAPE, "fill", ((800, 400), (0, 0, 800, 400), (800, 400), (0, 0))),
    (LANDSCAPE, "inside", ((533, 400), (0, 0, 533, 400), (533, 400), (0, 0))),
    (LANDSCAPE, "outside", ((800, 600), (0, 0, 800, 600), (800, 600), (0, 0))),
    (PORTRAIT, "cover", ((800, 1067), (0, 334, 800, 734), (800, 400), (0, 0))),
    (PORTRAIT, "contain", ((300, 400), (0, 0, 300, 400), (800, 400), (250, 0))),
    (PORTRAIT, "fill", ((800, 400), (0, 0, 800, 400), (800, 400), (0, 0))),
    (PORTRAIT, "inside", ((300, 400), (0, 0, 300, 400), (300, 400), (0, 0))),
    (PORTRAIT, "outside", ((800, 1067), (0, 0, 800, 1067), (800, 1067), (0, 0))),
    (SQUARE, "cover", ((800, 800), (0, 200, 800, 600), (800, 400), (0, 0))),
    (SQUARE, "contain", ((400, 400), (0, 0, 400, 400), (800, 400), (200, 0))),
    (SQUARE, "fill", ((800, 400), (0, 0, 800, 400), (800, 400), (0, 0))),
    (SQUARE, "inside", ((400, 400), (0, 0, 400, 400), (400, 400), (0, 0))),
    (SQUARE, "outside", ((800, 800), (0, 0, 800, 800), (800, 800), (0, 0))),
]


@pytest.mark.parametrize(("src", "fit", "expected"), CASES)
def test_every_fit_on_every_shape(
    src: tuple[int, int], fit: str, expected: tuple[object, ...]
) -> None:
    assert plan(src, 800, 400, fit) == Plan(*expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("src", "w", "h", "size"),
    [
        (LANDSCAPE, 1000, None, (1000, 750)),
        (LANDSCAPE, None, 300, (400, 300)),
        (PORTRAIT, 300, None, (300, 400)),
        (PORTRAIT, None, 1000, (750, 1000)),
        (SQUARE, None, 250, (250, 250)),
        (SQUARE, 2000, None, (2000, 2000)),  # enlargement allowed, as in sharp
    ],
)
@pytest.mark.parametrize("fit", ["cover", "contain", "fill", "inside", "outside"])
def test_one_side_keeps_the_aspect_ratio_whatever_the_fit(
    src: tuple[int, int], w: int | None, h: int | None, size: tuple[int, int], fit: str
) -> None:
    assert plan(src, w, h, fit) == Plan(size, (0, 0, *size), size, (0, 0))


def test_no_size_keeps_the_source() -> None:
    assert plan((123, 45), None, None, "inside").canvas == (123, 45)


def test_enlargement_with_cover() -> None:
    assert plan((100, 100), 400, 200, "cover") == Plan(
        (400, 400), (0, 100, 400, 300), (400, 200), (0, 0)
    )


def test_other_side_rounds_half_up_like_math_round() -> None:
    assert plan((1000, 333), 500, None, "inside").canvas == (500, 167)  # 166.5 -> 167
    assert plan((1000, 331), 500, None, "inside").canvas == (500, 166)  # 165.5 -> 166
    assert plan((1000, 334), 300, None, "inside").canvas == (300, 100)  # 100.2 -> 100


def test_centre_crop_offset_rounds_like_sharp() -> None:
    # resized 800x601, crop 400 high: sharp's (601 - 400 + 1) / 2 = 101
    assert plan((800, 601), 800, 400, "cover").crop == (0, 101, 800, 501)


def test_contain_offset_rounds_down_like_sharp() -> None:
    # resized 533 wide on an 800 canvas: (800 - 533) / 2 = 133 (integer division)
    assert plan(LANDSCAPE, 800, 400, "contain").offset == (133, 0)


def test_an_axis_never_shrinks_to_zero() -> None:
    assert plan((10000, 10), 100, None, "inside").canvas == (100, 1)
    assert plan((10000, 10), 100, 100, "fill").canvas == (100, 100)


def test_output_is_bounded_by_max_dimension() -> None:
    # a 1:10 strip asked 1000 wide would be 10000 high: scaled into 4096×4096 instead
    assert plan((100, 1000), 1000, None, "inside", 4096).canvas == (410, 4096)
    assert plan((1000, 100), 1000, 1000, "outside", 4096).canvas == (4096, 410)
    assert plan((1000, 100), 1000, 1000, "outside").canvas == (10000, 1000)  # no bound given
    assert plan((1000, 100), 1000, 1000, "cover", 4096).canvas == (1000, 1000)


def test_source_box_maps_the_crop_back() -> None:
    p = plan(LANDSCAPE, 800, 400, "cover")
    assert source_box(p, (1000, 750)) == (0.0, 125.0, 1000.0, 625.0)
    assert source_box(p, LANDSCAPE) == (0.0, 500.0, 4000.0, 2500.0)


def test_plan_flags() -> None:
    assert plan(LANDSCAPE, 800, 400, "cover").cropped
    assert not plan(LANDSCAPE, 800, 400, "cover").padded
    assert plan(LANDSCAPE, 800, 400, "contain").padded
    assert not plan(LANDSCAPE, 800, 400, "fill").cropped
