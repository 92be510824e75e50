#!/usr/bin/env python3
"""Peak memory of one upload conversion: `.venv/bin/python scripts/measure_upload_memory.py`.

Generates (fixed seeds, no downloads) a 20 MP camera-like JPEG and a 24 MP
photo PNG of about 45 MB with scripts/bench.py's generators, and the 965-byte
GIF bomb (2000×2000, 40 frames), then runs `process_upload` on each, with the
default settings, in a fresh Python process per case and prints that
process's peak RSS (VmHWM) before and after the conversion. Each case gets its
own process because VmHWM is the peak of a process's whole life.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

CASES = [("photo-20mp.jpg", "webp"), ("photo-20mp.jpg", None), ("photo-24mp.png", "webp"),
         ("photo-24mp.png", "jpeg"), ("bomb.gif", "webp")]
CHILD = """
import sys
from pathlib import Path
from pichub.config import Settings
from pichub.errors import PichubError
from pichub.imaging.ops import process_upload

def peak_mb():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) // 1024

storage, images = Settings().storage, Settings().images
path, target = Path(sys.argv[1]), sys.argv[2] or None
before = peak_mb()
try:
    result = process_upload(path, target=target, quality=images.default_quality,
                            remove_exif=False, keep_location=False,
                            max_pixels=storage.max_pixels, max_frames=storage.max_frames,
                            max_decode_bytes=storage.max_decode_mb * 2**20)
    outcome = f"{result.format} {result.width}x{result.height}x{result.frames}"
except PichubError as exc:
    outcome = f"refused ({exc.status})"
print(f"{path.name} -> {target or 'same format'}: {outcome}; "
      f"peak RSS {before} MB before, {peak_mb()} MB after")
"""


def make_inputs(folder: Path) -> None:
    import bench

    from tests.support import bombs

    (folder / "photo-20mp.jpg").write_bytes(bench.camera_jpeg((6028, 3391), 1))
    bench.photo((6000, 4000), 2).save(folder / "photo-24mp.png", compress_level=6)
    (folder / "bomb.gif").write_bytes(bombs.gif())


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_inputs(folder)
        for name, target in CASES:
            subprocess.run([sys.executable, "-c", CHILD, str(folder / name), target or ""],
                           cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
