"""Real images made with Pillow for the API tests (nothing binary is committed)."""

from __future__ import annotations

import io

from PIL import Image, ImageCms

ORIENTATION = 0x0112
GPS_IFD = 0x8825


def _textured(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A gradient with noise: compresses like a photo, not like a flat colour."""
    w, h = size
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 40)
    channels = [gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    if mode == "RGBA":
        channels.append(Image.new("L", size, 128))
    return Image.merge(mode, channels)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg(size: tuple[int, int] = (64, 48), quality: int = 90) -> bytes:
    out = io.BytesIO()
    _textured(size).save(out, "JPEG", quality=quality)
    return out.getvalue()


def jpeg_exif(size: tuple[int, int] = (60, 40), orientation: int = 6) -> bytes:
    """JPEG with EXIF orientation, a GPS block, XMP and an ICC profile."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PicHubCam"  # Make
    exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    image = _textured(size)
    # A marker in the top-left corner to check the rotation.
    image.paste((255, 0, 0), (0, 0, 10, 10))
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    image.save(out, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=srgb_icc(), xmp=xmp)
    return out.getvalue()


def png_alpha(size: tuple[int, int] = (40, 30)) -> bytes:
    image = _textured(size, "RGBA")
    image.putpixel((0, 0), (10, 20, 30, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def animated_gif(frames: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    images = [Image.new("RGB", size, colours[i % len(colours)]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:],
                   duration=[100 + 50 * i for i in range(frames)], loop=0)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    data = jpeg((200, 150))
    return data[: len(data) // 2]


def garbage_with_png_magic() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50


SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b"<script>alert(1)</script></svg>")
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
