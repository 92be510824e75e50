"""What placeholders and the EXIF summary add to an upload: `python scripts/measure_ingest_meta.py`.

Makes a camera-like 12 MP JPEG (4032×3024, textured, with camera EXIF and a GPS
position; fixed seed, nothing downloaded), runs `imaging.ops.process_upload` on it
as the upload service does (the default WebP conversion, and JPEG kept with only
the location stripped), and times, inside each run, the two steps this adds:
`placeholders.compute` (on the smallest working copy) and `exif.summarise`.
Prints the medians over `--runs` runs (default 7) of those steps and of the
whole conversion, for scale.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, TiffImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pichub.imaging import ops, placeholders  # noqa: E402

SIZE = (4032, 3024)


def camera_jpeg(path: Path) -> None:
    small = (SIZE[0] // 8, SIZE[1] // 8)
    fractal = Image.effect_mandelbrot(small, (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    noise = Image.effect_noise(small, 30).convert("RGB")
    im = Image.blend(fractal, noise, 0.3).resize(SIZE, Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "PicHubCam", "Model X"
    r = TiffImagePlugin.IFDRational
    exif[0x8769] = {0x9003: "2024:05:01 10:00:00", 0x829D: r(18, 10), 0x829A: r(1, 250),
                    0x8827: 200, 0x920A: r(425, 100), 0xA434: "PicHub 4.25mm f/1.8"}
    exif[0x8825] = {1: "N", 2: (r(48), r(51), r(30)), 3: "E", 4: (r(2), r(17), r(40))}
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90, exif=exif.tobytes())
    path.write_bytes(out.getvalue())


def timed(target: Any, name: str, spent: list[float]) -> Callable[[], None]:
    """Wrap `target.name` to add its time (ms) to `spent`; returns the undo."""
    original = getattr(target, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append((time.perf_counter() - start) * 1000)

    setattr(target, name, wrapper)
    return lambda: setattr(target, name, original)


def run(path: Path, runs: int, **options: Any) -> tuple[float, float, float]:
    hashing: list[float] = []
    summary: list[float] = []
    whole: list[float] = []
    undo = [timed(placeholders, "compute", hashing), timed(ops, "summarise", summary)]
    try:
        for _ in range(runs):
            start = time.perf_counter()
            result = ops.process_upload(
                path, quality=85, remove_exif=False, keep_location=False,
                max_pixels=100_000_000, max_frames=500, max_decode_bytes=400 * 2**20, **options)
            whole.append((time.perf_counter() - start) * 1000)
            assert result.placeholder is not None and result.exif is not None
    finally:
        for step in undo:
            step()
    return statistics.median(hashing), statistics.median(summary), statistics.median(whole)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "camera.jpg"
        camera_jpeg(path)
        print(f"12 MP JPEG ({SIZE[0]}×{SIZE[1]}, {path.stat().st_size / 2**20:.1f} MB), "
              f"median of {args.runs} runs, ms:")
        for label, target in (("to WebP (default)", "webp"), ("kept as JPEG", None)):
            hashing, summary, whole = run(path, args.runs, target=target)
            print(f"  {label:18} placeholders {hashing:6.1f}  exif summary {summary:5.2f}  "
                  f"added {hashing + summary:6.1f}  whole conversion {whole:7.0f} "
                  f"({(hashing + summary) / whole:.1%})")


if __name__ == "__main__":
    main()
