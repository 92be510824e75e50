"""Image work: upload processing (ops), transforms, the variant cache and pipeline.

Pillow is imported only in this package: `ops.py` (uploads) and `transform.py`
(variants) hold the pure synchronous image code; the rest never touches pixels.

PicHub enforces its own pixel limit (`storage.max_pixels`) before decoding, so
Pillow's global decompression-bomb guard (a warning at 89 MP, an error at 178 MP)
is switched off here, once, for every module of this package.
"""

from PIL import Image

Image.MAX_IMAGE_PIXELS = None
