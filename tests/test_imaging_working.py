"""Working copies: variants made through them have the original's exact geometry and look the
same as the variant made from the original, for photos, text screenshots and graphics with
alpha; a variant they are too small for is made from the original.

The metric: SSIM (tests/support/quality.py) ≥ MIN_SSIM between the two variants, encoded
losslessly so that only PicHub's pipeline is compared, not the output encoder's noise. 0.98,
not 0.99: resampling twice (to the copy, then to the variant) lands that far from resampling
once even with lossless copies (0.983 on hard-edged graphics); the variant made directly
is itself up to 0.01 away from an exact one-step Lanczos resample of the original.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pichub.imaging import working
from pichub.imaging.geometry import plan
from pichub.imaging.spec import TransformSpec
from pichub.imaging.transform import transform
from tests.samples import srgb_icc
from tests.support.quality import ssim

MIN_SSIM = 0.98


def photo(size: tuple[int, int]) -> Image.Image:
    """Blurred shapes over a gradient with fine grain: decodes and resamples like a photo."""
    rng = random.Random(7)
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(60):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randrange(20, size[0] // 6)
        draw.ellipse((x - r, y - r, x + r, y + r),
                     fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    im = im.filter(ImageFilter.GaussianBlur(6))
    grain = Image.effect_noise(size, 18).convert("RGB")
    return Image.blend(im, grain, 0.08)


def screenshot(size: tuple[int, int]) -> Image.Image:
    """Black and coloured text on white, in several sizes: the hardest case for JPEG."""
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    y = 10
    for px, colour in ((14, "black"), (18, (30, 90, 200)), (24, (200, 30, 30)), (32, "black")):
        font = ImageFont.load_default(size=px)
        while y < size[1] - px * 2:
            draw.text((12, y), "The quick brown fox jumps over the lazy dog 0123456789 "
                      "PicHub working copies", fill=colour, font=font)
            y += int(px * 1.6)
            if y > size[1] * (1 + [14, 18, 24, 32].index(px)) // 4:
                break
    return im


def graphics(size: tuple[int, int]) -> Image.Image:
    """Flat shapes with soft and hard transparency."""
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    draw.rectangle((40, 40, size[0] // 2, size[1] // 2), fill=(20, 120, 220, 255))
    draw.ellipse((size[0] // 3, size[1] // 3, size[0] - 60, size[1] - 60),
                 fill=(240, 90, 20, 140))
    draw.line((0, size[1] - 1, size[0] - 1, 0), fill=(0, 0, 0, 255), width=9)
    return im


def stored(im: Image.Image, tmp_path: Path) -> tuple[Path, str]:
    """As PicHub stores it by default: WebP q85 (lossy; alpha kept)."""
    path = tmp_path / "original.webp"
    im.save(path, "WEBP", quality=85, method=4)
    return path, "webp"


SPECS = [{"w": "800", "h": "600", "fit": "cover"},
         {"w": "300"},
         {"w": "500", "h": "500", "fit": "contain"},
         {"w": "640", "h": "400", "fit": "fill"},
         {"w": "400", "h": "400", "fit": "outside"},
         {"h": "200"},
         {"w": "120", "h": "120", "fit": "cover"},
         {"w": "900", "h": "900", "fit": "inside"}]
IMAGES = {"photo": photo, "screenshot": screenshot, "graphics": graphics}


def _variants(original: Path, fmt: str, size: tuple[int, int], query: dict[str, str],
              copies: list[working.WorkingCopy],
              tmp_path: Path) -> tuple[Image.Image, Image.Image, int | None]:
    spec = TransformSpec.parse({**query, "fm": "png"}, None, fmt, 4096)
    level = working.pick(size, plan(size, spec.w, spec.h, spec.fit, 4096).resize,
                         tuple(c.level for c in copies))
    direct = transform(original, fmt, spec)
    if level is None:
        return _open(direct.data), _open(direct.data), None
    copy = next(c for c in copies if c.level == level)
    path = tmp_path / f"copy.{copy.ext}"
    path.write_bytes(copy.data)
    through = transform(path, copy.format, spec, plan_size=size)
    assert (through.width, through.height) == (direct.width, direct.height)
    return _open(direct.data), _open(through.data), level


def _open(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.copy()


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_variants_through_a_copy_look_like_variants_from_the_original(
        kind: str, tmp_path: Path) -> None:
    size = (2400, 1600)
    original, fmt = stored(IMAGES[kind](size), tmp_path)
    with Image.open(original) as im:
        im.load()
        copies = working.make(im, im.size, None)
    assert [c.level for c in copies] == [1600, 512]
    assert {c.format for c in copies} == {"png" if kind == "graphics" else "jpeg"}
    used = set()
    for query in SPECS:
        direct, through, level = _variants(original, fmt, size, query, copies, tmp_path)
        used.add(level)
        assert direct.size == through.size
        assert ssim(direct, through) >= MIN_SSIM, (kind, query, ssim(direct, through))
    assert {1600, 512} <= used  # both levels were exercised


def test_a_variant_bigger_than_the_copies_is_made_from_the_original() -> None:
    size = (2400, 1600)
    needed = plan(size, 1500, None, "inside", 4096).resize
    assert working.pick(size, needed, (1600, 512)) is None  # 1600 < 1500 × margin
    assert working.pick(size, plan(size, 1200, None, "inside", 4096).resize,
                        (1600, 512)) == 1600
    assert working.pick(size, plan(size, 300, None, "inside", 4096).resize,
                        (1600, 512)) == 512
    assert working.pick(size, plan(size, 300, None, "inside", 4096).resize, ()) is None


def test_small_images_get_no_copies() -> None:
    assert working.levels_for((700, 500)) == ()
    assert working.levels_for((800, 600)) == (512,)
    assert working.levels_for((2400, 1600)) == (1600, 512)


def test_copies_keep_the_aspect_ratio_and_the_icc_profile() -> None:
    im = photo((3000, 1000))
    copies = working.make(im, im.size, srgb_icc())
    assert [(c.width, c.height) for c in copies] == [(1600, 533), (512, 171)]
    for copy in copies:
        with Image.open(io.BytesIO(copy.data)) as out:
            assert out.size == (copy.width, copy.height)
            assert out.info.get("icc_profile") == srgb_icc()
