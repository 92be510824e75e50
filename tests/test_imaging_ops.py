"""process_upload: limits before decoding, plain error messages, keep/rewrite/re-encode."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pichub.errors import ValidationError
from pichub.imaging.budget import MB
from pichub.imaging.ops import UploadResult, process_upload
from tests import imaging_samples, samples
from tests.support import bombs


def upload(path: Path, target: str | None = "webp", **options: object) -> UploadResult:
    settings: dict[str, object] = {
        "quality": 85, "remove_exif": False, "keep_location": False, "max_pixels": 100_000_000,
        "max_frames": 500, "max_decode_bytes": 400 * MB, **options,
    }
    return process_upload(path, target=target, **settings)  # type: ignore[arg-type]


def refusal(path: Path, **options: object) -> str:
    with pytest.raises(ValidationError) as caught:
        upload(path, **options)
    return caught.value.message


@pytest.mark.parametrize("bomb", [bombs.gif, bombs.webp, bombs.apng])
def test_animated_bombs_are_refused_before_decoding(
    tmp_path: Path, bomb: Callable[[], bytes]
) -> None:
    path = tmp_path / "bomb"
    path.write_bytes(bomb())
    assert refusal(path) == (
        "file: decoding needs 611 MB (2000×2000 pixels × 40 frames × 4 bytes), "
        "more than the limit of 400 MB"
    )


def test_a_bomb_within_a_bigger_budget_is_stored_animated(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gif"
    path.write_bytes(bombs.gif((500, 400), 40))
    result = upload(path)
    assert (result.format, result.width, result.height, result.frames) == ("webp", 500, 400, 40)
    assert result.data is not None
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.n_frames == 40


@pytest.mark.parametrize(("name", "data"), [
    ("garbage.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4),
    ("truncated.jpg", samples.truncated_jpeg()),
    ("fake.png", samples.garbage_with_png_magic()),
])
def test_decode_errors_never_show_paths(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / f"upload-{name}"
    path.write_bytes(data)
    for target in ("webp", None):
        message = refusal(path, target=target)
        assert "/" not in message and "upload-" not in message and str(tmp_path) not in message
        assert message in ("file: cannot decode image: not a valid JPEG file",
                           "file: cannot decode image: not a valid PNG file",
                           "file: image data is truncated or corrupt")


@pytest.mark.parametrize("target", ["webp", None])
def test_a_frame_outside_the_canvas_is_refused_before_it_grows_it(
    tmp_path: Path, target: str | None
) -> None:
    """Pillow would grow the 100×100 image to 6001×6001 for the last frame."""
    path = tmp_path / "growing.gif"
    path.write_bytes(bombs.gif((100, 100), 40, last_at=(6000, 6000)))
    assert refusal(path, target=target) == "file: image data is truncated or corrupt"


def test_a_truncated_animation_is_refused_while_streaming(tmp_path: Path) -> None:
    whole = imaging_samples.animated_gif(tmp_path / "a.gif", (120, 80), [100] * 6).read_bytes()
    start = whole.index(b"\x2c", whole.index(b"\x21\xf9", len(whole) // 2))  # a late frame
    path = tmp_path / "cut.gif"
    path.write_bytes(whole[: start + 40])
    assert refusal(path) == "file: image data is truncated or corrupt"


def test_same_format_without_location_keeps_the_original(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(samples.photo_with_location("JPEG", gps=False))
    result = upload(path, target=None)
    assert result.data is None and (result.width, result.height) == (64, 48)


def test_orientation_is_applied_once_and_reset(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    path.write_bytes(samples.photo_with_location("JPEG", (60, 40), orientation=6))
    result = upload(path, target=None, keep_location=True)
    assert result.data is not None and (result.width, result.height) == (40, 60)
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.size == (40, 60)
        assert im.getexif()[samples.ORIENTATION] == 1
        assert im.getexif().get_ifd(samples.GPS_IFD)[1] == "N"


def test_avif_is_reencoded_only_when_its_metadata_must_change(tmp_path: Path) -> None:
    path = tmp_path / "a.avif"
    path.write_bytes(samples.photo_with_location("AVIF"))
    result = upload(path, target=None)
    assert result.data is not None and result.format == "avif"
    with Image.open(io.BytesIO(result.data)) as im:
        assert samples.GPS_IFD not in im.getexif() and im.getexif()[samples.MAKE] == "PicHubCam"
    plain = tmp_path / "b.avif"
    plain.write_bytes(samples.photo_with_location("AVIF", gps=False))
    assert upload(plain, target=None).data is None
