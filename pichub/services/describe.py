"""The columns that describe an image besides its file, from what the imaging code found.

The upload computes them in the image pool (`imaging.ops`), `pichub backfill` from
the stored file (`imaging.stored`); both store them through `stored_meta`. The EXIF
summary is stored as a JSON object without the GPS position, which has columns of its
own (filled only when the stored file keeps it), so that no answer carries it unless
it is asked for (`models.images.Image.from_row`).
"""

from __future__ import annotations

import json
from typing import Final

from pichub.db.images import Meta
from pichub.imaging.exif import ExifSummary
from pichub.imaging.placeholders import Placeholder

#: The computation that fills the columns: rows below it are `pichub backfill`'s to do.
META_VERSION: Final = 1


def stored_meta(placeholder: Placeholder | None, exif: ExifSummary | None) -> Meta:
    """The columns to store for an image with these placeholders and EXIF summary."""
    facts = exif.facts() if exif is not None else {}
    gps = exif.gps if exif is not None else None
    return Meta(
        blurhash=placeholder.blurhash if placeholder else None,
        dominant_color=placeholder.dominant_color if placeholder else None,
        exif=json.dumps(facts, separators=(",", ":")) if any(
            value is not None for value in facts.values()) else None,
        gps_latitude=gps.latitude if gps else None,
        gps_longitude=gps.longitude if gps else None,
        gps_altitude=gps.altitude if gps else None,
        version=META_VERSION,
    )
