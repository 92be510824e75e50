"""transform(): real Pillow on real generated images — sizes, pixels, formats,
animation, orientation, metadata and shrink-on-load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pichub.errors import BadRequest
from pichub.imaging.budget import MB
from pichub.imaging.spec import TransformSpec
from pichub.imaging.transform import Encoded, decode_scaled, transform
from tests import imaging_samples as samples
from tests.support import bombs


def run(source: Path, fmt: str, query: dict[str, str], ext: str | None = None) -> Encoded:
    spec = TransformSpec.parse(query, ext, fmt, 4096)
    return transform(source, fmt, spec, default_quality=85, max_dimension=4096)


def pixel(data: bytes, xy: tuple[int, int]) -> tuple[int, ...]:
    with samples.open_bytes(data) as im:
        value = im.convert("RGBA").getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


@pytest.mark.parametrize(
    ("size", "query", "out"),
    [
        (samples.LANDSCAPE, {"w": "320", "h": "320"}, (320, 320)),
        (samples.LANDSCAPE, {"w": "320", "h": "320", "fit": "contain"}, (320, 320)),
        (samples.LANDSCAPE, {"w": "320", "h": "320", "fit": "fill"}, (320, 320)),
        (samples.LANDSCAPE, {"w": "320", "h": "320", "fit": "inside"}, (320, 240)),
        (samples.LANDSCAPE, {"w": "320", "h": "320", "fit": "outside"}, (427, 320)),
        (samples.PORTRAIT, {"w": "320", "h": "320", "fit": "inside"}, (240, 320)),
        (samples.PORTRAIT, {"w": "200"}, (200, 267)),
        (samples.SQUARE, {"h": "1000"}, (1000, 1000)),
        (samples.SQUARE, {}, (500, 500)),
    ],
)
def test_output_sizes(
    tmp_path: Path, size: tuple[int, int], query: dict[str, str], out: tuple[int, int]
) -> None:
    result = run(samples.jpeg(tmp_path / "src.jpg", size), "jpeg", query)
    assert (result.width, result.height) == out
    with samples.open_bytes(result.data) as im:
        assert im.size == out


def test_cover_keeps_the_centre(tmp_path: Path) -> None:
    source = samples.bands(tmp_path / "bands.png")  # 300x100: red | green | blue
    result = run(source, "png", {"w": "100", "h": "100"})
    assert (result.width, result.height) == (100, 100)
    for x in (5, 50, 94):
        assert close_to(pixel(result.data, (x, 50)), (*samples.GREEN, 255), 30)
    # the same call with fill squeezes every band in, so it sees red on the left
    squeezed = run(source, "png", {"w": "100", "h": "100", "fit": "fill"})
    assert close_to(pixel(squeezed.data, (5, 50)), (*samples.RED, 255), 30)


def test_cover_on_a_tall_box_keeps_the_centre_band(tmp_path: Path) -> None:
    source = samples.bands(tmp_path / "bands.png", (300, 100))
    result = run(source, "png", {"w": "30", "h": "100"})
    assert (result.width, result.height) == (30, 100)
    assert close_to(pixel(result.data, (0, 0)), (*samples.GREEN, 255))
    assert close_to(pixel(result.data, (29, 99)), (*samples.GREEN, 255))


@pytest.mark.parametrize("fm", ["png", "webp", "gif", "avif"])
def test_contain_pads_with_transparency_where_the_format_has_alpha(tmp_path: Path, fm: str) -> None:
    source = samples.jpeg(tmp_path / "src.jpg", samples.LANDSCAPE)
    result = run(source, "jpeg", {"w": "200", "h": "200", "fit": "contain", "fm": fm})
    assert (result.width, result.height) == (200, 200)
    assert pixel(result.data, (0, 0))[3] == 0  # padding (top band): transparent
    assert pixel(result.data, (199, 199))[3] == 0
    assert pixel(result.data, (100, 100))[3] == 255  # the image itself: opaque


def test_contain_pads_with_white_for_jpeg(tmp_path: Path) -> None:
    source = samples.bands(tmp_path / "bands.png", (300, 100))
    result = run(source, "png", {"w": "150", "h": "150", "fit": "contain", "fm": "jpg"})
    assert (result.width, result.height) == (150, 150)
    assert close_to(pixel(result.data, (0, 0)), (255, 255, 255, 255), 3)
    assert close_to(pixel(result.data, (149, 149)), (255, 255, 255, 255), 3)
    assert close_to(pixel(result.data, (75, 75)), (*samples.GREEN, 255), 40)


def test_alpha_is_flattened_on_white_for_jpeg(tmp_path: Path) -> None:
    source = samples.png_with_alpha(tmp_path / "alpha.png")
    result = run(source, "png", {"fm": "jpeg"})
    assert close_to(pixel(result.data, (2, 2)), (255, 255, 255, 255), 3)
    assert close_to(pixel(result.data, (100, 50)), (*samples.RED, 255), 20)


def test_alpha_survives_a_resize_to_png(tmp_path: Path) -> None:
    source = samples.png_with_alpha(tmp_path / "alpha.png", (200, 100))
    result = run(source, "png", {"w": "100"})
    assert (result.width, result.height) == (100, 50)
    assert pixel(result.data, (1, 1))[3] == 0
    assert pixel(result.data, (50, 25)) == (*samples.RED, 255)


MAGIC: dict[str, Callable[[bytes], bool]] = {
    "jpg": lambda d: d[:3] == b"\xff\xd8\xff",
    "jpeg": lambda d: d[:3] == b"\xff\xd8\xff",
    "png": lambda d: d[:8] == b"\x89PNG\r\n\x1a\n",
    "webp": lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
    "gif": lambda d: d[:4] == b"GIF8",
    "avif": lambda d: d[4:12] in (b"ftypavif", b"ftypavis"),
}
MIMES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
}


@pytest.mark.parametrize("fm", sorted(MAGIC))
def test_output_format_by_magic_bytes(tmp_path: Path, fm: str) -> None:
    source = samples.jpeg(tmp_path / "src.jpg", (160, 120))
    result = run(source, "jpeg", {"w": "80", "fm": fm})
    assert MAGIC[fm](result.data)
    assert result.mime == MIMES[fm]
    with samples.open_bytes(result.data) as im:
        assert im.size == (80, 60)


@pytest.mark.parametrize("ext", ["png", "webp"])
def test_extension_picks_the_format(tmp_path: Path, ext: str) -> None:
    result = run(samples.jpeg(tmp_path / "src.jpg", (64, 48)), "jpeg", {}, ext=ext)
    assert MAGIC[ext](result.data)


def frames_of(data: bytes) -> tuple[int, list[int], int | None]:
    with samples.open_bytes(data) as im:
        durations = []
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            im.load()  # WebP reports a frame's duration once it is decoded
            durations.append(int(im.info["duration"]))
        return getattr(im, "n_frames", 1), durations, im.info.get("loop")


@pytest.mark.parametrize("fm", ["webp", "gif"])
def test_animation_survives_with_frames_durations_and_loop(tmp_path: Path, fm: str) -> None:
    source = samples.animated_gif(tmp_path / "anim.gif", (120, 80), (100, 200, 300, 400), loop=3)
    result = run(source, "gif", {"w": "60", "fm": fm})
    assert (result.width, result.height) == (60, 40)
    count, durations, loop = frames_of(result.data)
    assert count == 4
    assert durations == [100, 200, 300, 400]
    assert loop == 3


def test_animation_keeps_each_frame_distinct(tmp_path: Path) -> None:
    source = samples.animated_gif(tmp_path / "anim.gif", (120, 80), (100, 100, 100))
    result = run(source, "gif", {"w": "60", "h": "60", "fm": "webp"})
    with samples.open_bytes(result.data) as im:
        firsts = []
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            firsts.append(im.convert("RGB").getpixel((30, 55)))
    assert len(set(firsts)) == 3


@pytest.mark.parametrize("fm", ["png", "jpeg", "avif"])
def test_animation_to_a_still_format_takes_frame_one(tmp_path: Path, fm: str) -> None:
    source = samples.animated_gif(tmp_path / "anim.gif")
    result = run(source, "gif", {"w": "60", "fm": fm})
    with samples.open_bytes(result.data) as im:
        assert getattr(im, "n_frames", 1) == 1
        assert im.size == (60, 40)


def test_huge_animation_is_refused(tmp_path: Path) -> None:
    source = samples.animated_gif(tmp_path / "anim.gif", (40, 40), [50] * 10)
    with pytest.raises(BadRequest):
        run(source, "gif", {"w": "4000", "h": "4000"})


def test_even_two_huge_frames_are_refused(tmp_path: Path) -> None:
    """libwebp holds about eight output canvases whatever the frame count."""
    source = samples.animated_gif(tmp_path / "anim.gif", (40, 40), [50, 50])
    with pytest.raises(BadRequest):
        run(source, "gif", {"w": "3000", "h": "3000", "fm": "webp"})
    assert run(source, "gif", {"w": "2000", "h": "2000", "fm": "webp"}).width == 2000


def test_a_source_over_the_decode_budget_is_refused_for_animated_outputs(tmp_path: Path) -> None:
    source = tmp_path / "bomb.gif"
    source.write_bytes(bombs.gif((2000, 2000), 40))
    spec = TransformSpec.parse({"w": "16"}, None, "gif", 4096)
    with pytest.raises(BadRequest) as refused:
        transform(source, "gif", spec, max_decode_bytes=400 * MB)
    assert refused.value.message == (
        "Image is too large to transform: decoding needs 611 MB (2000×2000 pixels × 40 frames"
        " × 4 bytes), more than the limit of 400 MB")
    still = TransformSpec.parse({"w": "16", "fm": "png"}, None, "gif", 4096)
    result = transform(source, "gif", still, max_decode_bytes=400 * MB)  # frame 1 alone
    assert (result.width, result.height) == (16, 16)


def test_palette_images_shrink_a_lot(tmp_path: Path) -> None:
    source = samples.bands(tmp_path / "bands.gif", (900, 300), "GIF")
    result = run(source, "gif", {"w": "30", "fm": "png"})
    assert (result.width, result.height) == (30, 10)
    assert close_to(pixel(result.data, (15, 5)), (*samples.GREEN, 255), 30)


def test_exif_orientation_6_comes_out_upright(tmp_path: Path) -> None:
    source = samples.oriented_jpeg(tmp_path / "o.jpg", stored=(200, 100), orientation=6)
    result = run(source, "jpeg", {"fm": "png"})
    assert (result.width, result.height) == (100, 200)
    assert close_to(pixel(result.data, (95, 5)), (*samples.RED, 255), 30)  # top-right
    assert close_to(pixel(result.data, (5, 5)), (128, 128, 128, 255), 30)  # top-left is grey


def test_exif_orientation_counts_for_the_geometry(tmp_path: Path) -> None:
    source = samples.oriented_jpeg(tmp_path / "o.jpg", stored=(200, 100), orientation=6)
    result = run(source, "jpeg", {"w": "50", "fm": "png"})
    assert (result.width, result.height) == (50, 100)
    assert close_to(pixel(result.data, (47, 2)), (*samples.RED, 255), 40)


@pytest.mark.parametrize("fm", ["jpeg", "webp", "png", "avif"])
def test_metadata_stripped_but_icc_kept(tmp_path: Path, fm: str) -> None:
    source = samples.jpeg_with_metadata(tmp_path / "meta.jpg")
    result = run(source, "jpeg", {"w": "80", "fm": fm})
    with samples.open_bytes(result.data) as im:
        assert len(im.getexif()) == 0
        assert "exif" not in im.info
        assert im.info.get("icc_profile") == samples.srgb_icc()
    assert b"PicHubCam" not in result.data
    assert b"secret" not in result.data


def test_stored_quality_changes_the_output(tmp_path: Path) -> None:
    source = samples.jpeg(tmp_path / "src.jpg", (320, 240))
    low = run(source, "jpeg", {"w": "200", "q": "20"})
    high = run(source, "jpeg", {"w": "200", "q": "95"})
    assert len(low.data) < len(high.data)


def test_jpeg_shrinks_on_load(tmp_path: Path) -> None:
    source = samples.jpeg(tmp_path / "big.jpg", (2400, 1600), quality=80)
    with Image.open(source) as im:
        loaded = decode_scaled(im, "jpeg", 1, (200, 133))
        # DCT scaling decoded 1/8 of each side: never the full 2400x1600
        assert loaded.size == (300, 200)


def test_other_formats_reduce_before_the_resample(tmp_path: Path) -> None:
    source = tmp_path / "big.png"
    samples.textured((1600, 1200)).save(source, "PNG", compress_level=1)
    with Image.open(source) as im:
        loaded = decode_scaled(im, "png", 1, (100, 75))
        assert loaded.size == (200, 150)  # reduce(8): 16x left, reduce while 2x remains


def test_odd_modes_are_handled(tmp_path: Path) -> None:
    grey = tmp_path / "grey.jpg"
    Image.new("L", (64, 48), 100).save(grey, "JPEG")
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(cmyk, "JPEG")
    palette = tmp_path / "pal.gif"
    Image.new("P", (64, 48), 3).save(palette, "GIF", transparency=3)
    for source, fmt in ((grey, "jpeg"), (cmyk, "jpeg"), (palette, "gif")):
        for fm in ("webp", "jpeg", "png"):
            result = run(source, fmt, {"w": "32", "fm": fm})
            assert (result.width, result.height) == (32, 24)


def test_corrupt_source_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        run(samples.garbage(tmp_path / "bad.jpg"), "jpeg", {"w": "10"})
