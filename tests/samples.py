"""Real images made with Pillow for the API tests (nothing binary is committed)."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageCms, PngImagePlugin

ORIENTATION = 0x0112
GPS_IFD = 0x8825
EXIF_IFD = 0x8769
MAKE, MODEL, DATE_TIME_ORIGINAL = 0x010F, 0x0110, 0x9003
#: XMP with every kind of location property PicHub strips, next to properties it keeps.
#: The EXIF namespace has the prefix `ex`, and `exif` is bound to another namespace whose
#: `GPSNote` is not a location: prefixes must be resolved from their URIs.
LOCATION_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:ex="http://ns.adobe.com/exif/1.0/"
    xmlns:exif="https://example.com/not-exif/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmp:CreatorTool="PicHubCam Studio"
    ex:GPSLatitude="48,51.5N"
    exif:GPSNote="not a location"
    photoshop:City="Paris">
   <ex:GPSLongitude>2,17.6E</ex:GPSLongitude>
   <ex:DateTimeOriginal>2024-05-01T10:00:00</ex:DateTimeOriginal>
   <photoshop:State>Ile-de-France</photoshop:State>
   <photoshop:Country>France</photoshop:Country>
   <Iptc4xmpCore:Location>Champ de Mars</Iptc4xmpCore:Location>
   <Iptc4xmpExt:LocationCreated>
    <rdf:Bag><rdf:li rdf:parseType="Resource">
     <Iptc4xmpExt:Sublocation>Tour Eiffel</Iptc4xmpExt:Sublocation>
    </rdf:li></rdf:Bag>
   </Iptc4xmpExt:LocationCreated>
   <Iptc4xmpExt:LocationShown>
    <rdf:Bag><rdf:li rdf:parseType="Resource">
     <Iptc4xmpExt:WorldRegion>Europe</Iptc4xmpExt:WorldRegion>
    </rdf:li></rdf:Bag>
   </Iptc4xmpExt:LocationShown>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()
#: Words of LOCATION_XMP's location values: none may survive when location is stripped.
LOCATION_WORDS = (b"48,51.5N", b"2,17.6E", b"Paris", b"Ile-de-France", b"France",
                  b"Champ de Mars", b"Tour Eiffel", b"Europe")


def _textured(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A gradient with noise: compresses like a photo, not like a flat colour."""
    w, h = size
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 40)
    channels = [gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    if mode == "RGBA":
        channels.append(Image.new("L", size, 128))
    return Image.merge(mode, channels)


@functools.cache
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


def location_exif(orientation: int = 1) -> Image.Exif:
    """EXIF with a camera (Make, Model, DateTimeOriginal) and a GPS position."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "PicHubCam"
    exif[MODEL] = "Model X"
    exif[EXIF_IFD] = {DATE_TIME_ORIGINAL: "2024:05:01 10:00:00"}
    exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    return exif


def photo_with_location(fmt: str = "JPEG", size: tuple[int, int] = (64, 48),
                        orientation: int = 1, gps: bool = True) -> bytes:
    """A photo with EXIF (camera, date and, if `gps`, a GPS IFD), XMP (LOCATION_XMP if
    `gps`), an ICC profile and, for JPEG, a COM comment."""
    exif = location_exif(orientation)
    if not gps:
        del exif[GPS_IFD]
    xmp = LOCATION_XMP if gps else b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    options: dict[str, object] = {"exif": exif.tobytes(), "icc_profile": srgb_icc()}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp)
        info.add_text("Comment", "a secret comment")
        options["pnginfo"] = info
    else:
        options["xmp"] = xmp
    if fmt == "JPEG":
        options["comment"] = b"a secret comment"
    out = io.BytesIO()
    _textured(size).save(out, fmt, quality=95, **options)
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
