"""Peak memory of animated re-encodes, measured in a fresh Python process (VmHWM).

An 800×800 animation of 60 frames is 154 MB as full-canvas RGBA frames, what
the encoders used to be handed as a list. Streamed (codecs.FrameSequence),
WebP output grows the peak by a few frames (≈ 26 MB here) whatever the frame
count; Pillow's GIF writer still keeps every output frame as a palette image,
1 byte per pixel (38 MB here; ≈ 60 MB in all), which MAX_ANIMATION_PIXELS bounds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Growth of the peak allowed over the process's peak before the work.
ALLOWED_MB = {"webp": 50, "gif": 100}

PRELUDE = """
import sys
from pathlib import Path
from PIL import Image
from pichub.imaging.budget import MB
from pichub.imaging.ops import process_upload
from pichub.imaging.spec import TransformSpec
from pichub.imaging.transform import transform
from tests.support import bombs

def peak_mb():
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024

path = Path(sys.argv[1])
path.write_bytes(bombs.gif((800, 800), 60))
Image.open(path).close()
before = peak_mb()
"""
UPLOAD = """
result = process_upload(path, target="webp", quality=85, remove_exif=False, keep_location=False,
                        max_pixels=10**8, max_frames=500, max_decode_bytes=400 * MB)
assert result.frames == 60, result
"""
TRANSFORM = """
spec = TransformSpec.parse({"w": "800", "fm": sys.argv[2]}, None, "gif", 4096)
encoded = transform(path, "gif", spec, max_decode_bytes=400 * MB)
assert encoded.width == 800, encoded
"""


def peak_growth_mb(tmp_path: Path, work: str, *args: str) -> int:
    script = PRELUDE + work + "\nprint(peak_mb() - before)\n"
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "anim.gif"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_animated_upload_reencode_streams_frames(tmp_path: Path) -> None:
    assert peak_growth_mb(tmp_path, UPLOAD) < ALLOWED_MB["webp"]


@pytest.mark.parametrize("fm", ["webp", "gif"])
def test_animated_transform_streams_frames(tmp_path: Path, fm: str) -> None:
    assert peak_growth_mb(tmp_path, TRANSFORM, fm) < ALLOWED_MB[fm]
