"""Image work: upload processing (ops), transforms, the variant cache and pipeline.

PicHub enforces its own pixel limit (`storage.max_pixels`) before decoding, so
Pillow's global decompression-bomb guard (a warning at 89 MP, an error at 178 MP)
is switched off here, once, for every module of this package.
"""

from PIL import Image

Image.MAX_IMAGE_PIXELS = None
