"""The EXIF summary of an image: a few camera facts, read once at upload and stored.

`summarise` picks, from EXIF that an upload keeps (the metadata policy has
already decided: nothing with `remove_exif`, no GPS unless `keep_location`),
the facts a photo page shows: make, model, lens, when it was taken, exposure
time, f-number, ISO, focal length, and the GPS position only when asked to
(`with_gps`). Nothing else is read: no serial numbers, owner names or maker
notes, which EXIF may also hold.

EXIF is untrusted input: text is decoded leniently, control characters
removed and cut to MAX_TEXT characters; numbers must be finite and in a
plausible range; a date must be a real date. Whatever fails these checks is
left out (None), never an error: the upload does not depend on it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

from PIL import Image

from pichub.imaging.codecs import EXIF_HEADER

EXIF_IFD: Final = 0x8769
GPS_IFD: Final = 0x8825
MAKE: Final = 0x010F
MODEL: Final = 0x0110
EXPOSURE_TIME: Final = 0x829A
F_NUMBER: Final = 0x829D
ISO: Final = 0x8827  # PhotographicSensitivity, formerly ISOSpeedRatings
DATE_TIME_ORIGINAL: Final = 0x9003
DATE_TIME_DIGITIZED: Final = 0x9004
OFFSET_TIME_ORIGINAL: Final = 0x9011
OFFSET_TIME_DIGITIZED: Final = 0x9012
FOCAL_LENGTH: Final = 0x920A
LENS_MODEL: Final = 0xA434
#: GPS IFD tags: latitude (ref, value), longitude (ref, value), altitude (ref, value).
GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE = 1, 2, 3, 4
GPS_ALTITUDE_REF, GPS_ALTITUDE = 5, 6
MAX_TEXT: Final = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_EXIF_DATE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"[+-](?:0\d|1[0-4]):[0-5]\d")


@dataclass(frozen=True)
class GpsPosition:
    """Where the picture was taken: WGS 84 degrees (south and west negative), metres
    above sea level (negative below), when the camera recorded them."""

    latitude: float
    longitude: float
    altitude: float | None = None


@dataclass(frozen=True)
class ExifSummary:
    """The camera facts of an image (each None when its EXIF does not say).

    `taken_at`: the camera's local time (EXIF dates have no zone), ISO 8601, with the
    UTC offset when the camera recorded one. `exposure_time` in seconds, `focal_length`
    in millimetres (the lens's own, not the 35 mm equivalent).
    """

    make: str | None = None
    model: str | None = None
    lens: str | None = None
    taken_at: str | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = None
    gps: GpsPosition | None = None

    def facts(self) -> dict[str, Any]:
        """Every field but `gps`, as JSON-ready values."""
        values = asdict(self)
        del values["gps"]
        return values

    @property
    def empty(self) -> bool:
        return self == ExifSummary()


def summarise(exif: Image.Exif | bytes | None, *, with_gps: bool) -> ExifSummary | None:
    """The summary of `exif` (Pillow's Exif, or TIFF bytes with or without the `Exif\\0\\0`
    header); None when there is none or it says nothing of the above."""
    if exif is None:
        return None
    try:
        if isinstance(exif, bytes):
            parsed = Image.Exif()
            parsed.load(exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif)
            exif = parsed
        summary = _summary(exif, with_gps)
    except Exception:  # any failure to parse untrusted bytes: no summary, not a failed upload
        return None
    return None if summary.empty else summary


def _summary(exif: Image.Exif, with_gps: bool) -> ExifSummary:
    sub = _ifd(exif, EXIF_IFD)
    taken = (_date(sub.get(DATE_TIME_ORIGINAL), sub.get(OFFSET_TIME_ORIGINAL))
             or _date(sub.get(DATE_TIME_DIGITIZED), sub.get(OFFSET_TIME_DIGITIZED)))
    iso = _number(sub.get(ISO), 1, 10_000_000)
    return ExifSummary(
        make=_text(exif.get(MAKE)), model=_text(exif.get(MODEL)),
        lens=_text(sub.get(LENS_MODEL)), taken_at=taken,
        exposure_time=_significant(_number(sub.get(EXPOSURE_TIME), 1e-7, 3600 * 24)),
        f_number=_decimals(_number(sub.get(F_NUMBER), 0.1, 1000)),
        iso=None if iso is None else round(iso),
        focal_length=_decimals(_number(sub.get(FOCAL_LENGTH), 0.1, 100_000)),
        gps=_gps(_ifd(exif, GPS_IFD)) if with_gps else None,
    )


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # a broken sub-IFD: as if absent
        return {}


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = " ".join(_CONTROL.sub(" ", value).split())[:MAX_TEXT]
    return cleaned or None


def _number(value: object, low: float, high: float) -> float | None:
    """A finite number within [low, high] (a rational, int or float; the first of several)."""
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]  # IFDRational, int, float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def _significant(value: float | None) -> float | None:
    """Six significant digits: 1/3 s is 0.333333, 1/8000 s 0.000125."""
    return None if value is None else float(f"{value:.6g}")


def _decimals(value: float | None) -> float | None:
    """Two decimals: f/1.8, 4.25 mm."""
    return None if value is None else round(value, 2)


def _date(value: object, offset: object) -> str | None:
    """`2024:05:01 10:00:00` → `2024-05-01T10:00:00`, plus `+02:00` when `offset` is one."""
    text = _text(value)
    found = _EXIF_DATE.match(text or "")
    if found is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in found.groups())
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:  # 0000:00:00 00:00:00 and other impossible dates
        return None
    zone = _text(offset)
    return moment.isoformat() + (zone if zone and _OFFSET.fullmatch(zone) else "")


def _gps(ifd: dict[int, Any]) -> GpsPosition | None:
    latitude = _degrees(ifd.get(GPS_LATITUDE), ifd.get(GPS_LATITUDE_REF), "S", 90)
    longitude = _degrees(ifd.get(GPS_LONGITUDE), ifd.get(GPS_LONGITUDE_REF), "W", 180)
    if latitude is None or longitude is None:
        return None
    altitude = _number(ifd.get(GPS_ALTITUDE), 0, 100_000)
    if altitude is not None and ifd.get(GPS_ALTITUDE_REF) in (1, b"\x01"):
        altitude = -altitude
    return GpsPosition(round(latitude, 7), round(longitude, 7),
                       None if altitude is None else round(altitude, 1))


def _degrees(value: object, ref: object, negative: str, limit: float) -> float | None:
    """Degrees, minutes, seconds (three rationals) → signed decimal degrees."""
    if not isinstance(value, tuple | list) or len(value) != 3:
        return None
    parts = [_number(part, 0, 360) for part in value]
    if any(part is None for part in parts):
        return None
    d, m, s = (float(part or 0) for part in parts)
    degrees = d + m / 60 + s / 3600
    if degrees > limit:
        return None
    return -degrees if _text(ref) == negative else degrees
