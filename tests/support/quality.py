"""Image similarity for the tests: SSIM (structural similarity) between two images.

Mean SSIM over the R, G, B (and A) channels with a 7×7 uniform window and the usual
constants (K1 = 0.01, K2 = 0.03, L = 255): 1.0 for identical images, ≥ 0.99 for
differences the eye does not see.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

WINDOW = 7
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def _box(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The mean over each WINDOW×WINDOW block ("valid" positions only), by integral image."""
    total = np.pad(values, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    w = WINDOW
    sums = total[w:, w:] - total[:-w, w:] - total[w:, :-w] + total[:-w, :-w]
    return sums / (w * w)


def _channel_ssim(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    mx, my = _box(x), _box(y)
    vx = _box(x * x) - mx * mx
    vy = _box(y * y) - my * my
    cov = _box(x * y) - mx * my
    ssim = ((2 * mx * my + C1) * (2 * cov + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
    return float(ssim.mean())


def ssim(a: Image.Image, b: Image.Image) -> float:
    """SSIM of two images of the same size (alpha compared too when either has it)."""
    assert a.size == b.size, (a.size, b.size)
    mode = "RGBA" if "A" in a.getbands() or "A" in b.getbands() else "RGB"
    x = np.asarray(a.convert(mode), dtype=np.float64)
    y = np.asarray(b.convert(mode), dtype=np.float64)
    return float(np.mean([_channel_ssim(x[..., c], y[..., c]) for c in range(x.shape[2])]))
