"""codecs: the modes, metadata and animation encoding that uploads and variants share."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pichub.imaging import codecs
from tests import imaging_samples, samples


def reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_flatten_composites_alpha_on_white_where_the_format_has_none() -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert codecs.flatten(rgba, "jpeg").getpixel((0, 0)) == (255, 255, 255)
    assert codecs.flatten(rgba, "png") is rgba
    palette = Image.new("P", (4, 4), 3)
    palette.info["transparency"] = 3
    assert codecs.flatten(palette, "webp").mode == "RGBA"
    assert codecs.flatten(palette, "gif") is palette


@pytest.mark.parametrize(("mode", "fmt", "out"), [
    ("L", "jpeg", "L"), ("L", "png", "L"), ("L", "webp", "RGB"), ("CMYK", "jpeg", "RGB"),
    ("RGB", "avif", "RGB"), ("I;16", "png", "RGB"),
])
def test_flatten_gives_a_mode_the_encoder_takes(mode: str, fmt: str, out: str) -> None:
    assert codecs.flatten(Image.new(mode, (4, 4)), fmt).mode == out


def test_an_icc_profile_is_kept_only_for_pixels_it_describes() -> None:
    rgb = samples.srgb_icc()
    cmyk = rgb[:16] + b"CMYK" + rgb[20:]
    assert codecs.matching_icc(rgb, "RGB") == rgb and codecs.matching_icc(rgb, "RGBA") == rgb
    assert codecs.matching_icc(rgb, "L") is None and codecs.matching_icc(cmyk, "RGB") is None


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png", "avif"])
def test_a_still_carries_only_the_metadata_it_is_given(fmt: str) -> None:
    im = reopen(samples.photo_with_location("JPEG"))  # comment, EXIF, XMP, ICC in `info`
    data = codecs.encode_still(codecs.flatten(im, fmt), fmt, 80, codecs.Metadata())
    for needle in (b"secret", b"PicHubCam", b"xmpmeta"):
        assert needle not in data, needle
    assert "icc_profile" not in reopen(data).info


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png", "avif"])
def test_a_still_carries_the_metadata_it_is_given(fmt: str) -> None:
    meta = codecs.Metadata(icc=samples.srgb_icc(), exif=samples.location_exif().tobytes()[6:],
                           xmp=samples.LOCATION_XMP, comment=b"a comment")
    out = reopen(codecs.encode_still(Image.new("RGB", (8, 8)), fmt, 80, meta))
    assert out.getexif()[samples.MAKE] == "PicHubCam"
    assert out.info["icc_profile"] == samples.srgb_icc()
    xmp = out.info.get("xmp") or out.info.get("XML:com.adobe.xmp")
    assert xmp and "PicHubCam Studio" in (xmp if isinstance(xmp, str) else xmp.decode())
    assert out.info.get("comment") == (b"a comment" if fmt == "jpeg" else None)


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_an_animation_keeps_frames_durations_and_loop(tmp_path: Path, fmt: str) -> None:
    path = imaging_samples.animated_gif(tmp_path / "a.gif", (60, 40), (70, 80, 90), loop=2)
    with Image.open(path) as source:
        frames = codecs.FrameSequence(source, 3, lambda frame: frame.convert("RGBA"))
        data = codecs.encode_animation(frames, fmt, 80, codecs.Metadata(), source.info["loop"])
    out = reopen(data)
    durations = []
    for index in range(getattr(out, "n_frames", 1)):
        out.seek(index)
        out.load()
        durations.append(out.info["duration"])
    assert durations == [70, 80, 90] and out.info["loop"] == 2


def test_a_frame_that_does_not_decode_is_an_error_not_the_end(tmp_path: Path) -> None:
    whole = imaging_samples.animated_gif(tmp_path / "a.gif", (60, 40), [50] * 4).read_bytes()
    last = whole.index(b"\x2c", whole.rindex(b"\x21\xf9\x04"))  # the last frame's descriptor
    cut = whole[: last + 20]  # loses its data
    with Image.open(io.BytesIO(cut)) as source:
        frames = codecs.FrameSequence(source, 4, lambda frame: frame.convert("RGBA"))
        with pytest.raises(codecs.DecodeError):
            codecs.encode_animation(frames, "gif", 80, codecs.Metadata(), None)
