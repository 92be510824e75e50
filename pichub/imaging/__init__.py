"""Image work: upload processing (ops), transforms, the variant cache and pipeline.

Pillow is imported only in this package: `ops.py` (uploads) and `transform.py`
(variants) hold the pure synchronous image code, on top of `codecs.py` (the
encoders and pixel preparation they share), `metadata.py` (which EXIF/XMP an
upload keeps, with `iptc.py`) and `containers.py` (metadata rewritten without
re-encoding); `budget.py` prices a decode from the header alone, `jxl.py` reads
a JPEG XL header (its Pillow plugin decodes on open). The rest never touches
pixels.

PicHub enforces its own limits (`storage.max_pixels`, `storage.max_frames` and
the decode budget `storage.max_decode_mb`) before decoding, so Pillow's global
decompression-bomb guard (a warning at 89 MP, an error at 178 MP) is switched
off here, once, for every module of this package.

Two Pillow plugins are registered here, once, too: `pi_heif` (libheif with the
libde265 HEVC decoder, decode only) reads HEIC/HEIF uploads, without their
thumbnails, depth maps and other auxiliary images, which PicHub never uses;
`pillow_jxl` (libjxl) reads and writes JPEG XL.
"""

import pi_heif
import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow on import
from PIL import Image

Image.MAX_IMAGE_PIXELS = None
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
