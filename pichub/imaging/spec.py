"""Dynamic-image parameters (README: Dynamic images): validated once, canonical everywhere after.

`TransformSpec.parse` turns the query string and URL extension of
`/img/{id}[.{ext}]` into a frozen, canonical value: equivalent URLs
(`fit=crop` vs `fit=cover`, `fm=jpg` vs `fm=jpeg`, any parameter order, an
explicit default fit, a fit given with only one side) produce equal specs and
therefore one cache entry. Signed URLs (`images.signing_key`) are checked with
`verify`, produced with `sign`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlencode

from pichub.errors import BadRequest
from pichub.imaging.formats import LOSSY_FORMATS, canonical

FITS: Final = ("cover", "contain", "fill", "inside", "outside")
FIT_ALIASES: Final = {"crop": "cover"}
SIGNATURE_PARAM: Final = "s"
_INT = re.compile(r"[0-9]{1,9}")


def _bad(param: str, value: str, allowed: str) -> BadRequest:
    return BadRequest(
        f"Invalid value for '{param}': must be {allowed}",
        {"param": param, "value": value[:100], "allowed": allowed},
    )


def _int_param(query: Mapping[str, str], name: str, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not _INT.fullmatch(raw) or not 1 <= int(raw) <= high:
        raise _bad(name, raw, f"an integer from 1 to {high}")
    return int(raw)


def _fit_param(query: Mapping[str, str]) -> str | None:
    raw = query.get("fit")
    if raw is None:
        return None
    fit = FIT_ALIASES.get(raw.lower(), raw.lower())
    if fit not in FITS:
        raise _bad("fit", raw, "one of cover, crop, contain, fill, inside, outside")
    return fit


def _format(raw: str, param: str) -> str:
    fmt = canonical(raw)
    if fmt is None:
        raise _bad(param, raw, "one of jpg, jpeg, png, webp, avif, jxl, gif")
    return fmt


def normalize_format(name: str) -> str:
    """`jpg` → `jpeg`; the other format names are already canonical."""
    return _format(name, "format")


@dataclass(frozen=True)
class TransformSpec:
    """What to make of a stored image: target box, fit, quality and output format.

    `fit` is always resolved: `cover` by default when both sides are given,
    `inside` when one side or none is (then every fit means "keep the aspect
    ratio", so they are folded into one). `q` is None for "the format's
    default" and always None for lossless outputs (png, gif), where it means
    nothing. `fm` is the canonical format name (`jpeg`, never `jpg`).
    """

    w: int | None
    h: int | None
    q: int | None
    fit: str
    fm: str

    @classmethod
    def parse(
        cls,
        query: Mapping[str, str],
        ext: str | None,
        stored_format: str,
        max_dimension: int,
    ) -> TransformSpec:
        """Validate `w, h, q, fit, fm`; anything else in `query` (like `s`) is ignored.

        Raises BadRequest naming the first bad parameter.
        """
        w = _int_param(query, "w", max_dimension)
        h = _int_param(query, "h", max_dimension)
        q = _int_param(query, "q", 100)
        fit = _fit_param(query)
        if "fm" in query:
            fm = _format(query["fm"], "fm")
        elif ext:
            fm = _format(ext, "ext")
        else:
            fm = normalize_format(stored_format)
        if w is None or h is None:
            fit = "inside"
        return cls(w=w, h=h, q=q if fm in LOSSY_FORMATS else None, fit=fit or "cover", fm=fm)

    @property
    def resizes(self) -> bool:
        """True when a target size was asked for."""
        return self.w is not None or self.h is not None

    def is_identity(self, stored_format: str) -> bool:
        """True when the stored bytes are the answer: no size, no quality, same format."""
        return not self.resizes and self.q is None and self.fm == normalize_format(stored_format)

    def with_default_quality(self, default_quality: int) -> TransformSpec:
        """The same spec with `q` filled in for lossy formats (see `quality_for`)."""
        if self.q is not None or self.fm not in LOSSY_FORMATS:
            return self
        return replace(self, q=quality_for(self.fm, default_quality))

    def canonical(self) -> str:
        """A stable text form: equal for, and only for, equivalent specs."""
        parts: dict[str, Any] = {"w": self.w, "h": self.h, "fit": self.fit, "q": self.q}
        text = "&".join(f"{k}={v}" for k, v in parts.items() if v is not None)
        return f"{text}&fm={self.fm}" if text else f"fm={self.fm}"

    def digest(self) -> str:
        """128 bits of SHA-256 over `canonical()`, hex: the variant's file name and ETag."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:32]

    def cache_key(self, image_id: str) -> str:
        """`<image_id>/<digest>`: the DiskCache files variants per image, so purge is cheap.

        Resolve the default quality first (`with_default_quality`) so that `q`
        omitted and `q` equal to the default share one entry.
        """
        return f"{image_id}/{self.digest()}"


def quality_for(fmt: str, default_quality: int) -> int:
    """The quality used when the URL gives none.

    AVIF's scale runs lower than JPEG's for the same look (sharp's defaults
    are 80 for JPEG/WebP and 50 for AVIF), so AVIF gets the default minus 30.
    """
    if fmt == "avif":
        return max(1, default_quality - 30)
    return default_quality


def _message(path: str, query: Mapping[str, str]) -> bytes:
    items = sorted((k, v) for k, v in query.items() if k != SIGNATURE_PARAM)
    return f"{path}?{urlencode(items)}".encode()


def sign(path: str, query: Mapping[str, str], key: str) -> str:
    """The `s` value for `path` and `query` (any `s` already in it is left out).

    HMAC-SHA256 over `path?sorted-urlencoded-query`, urlsafe base64 without
    padding (43 characters). `path` is the request path as served, e.g.
    `/img/abc.webp`; the same image under `/abc.webp` needs its own signature.
    """
    mac = hmac.new(key.encode(), _message(path, query), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify(path: str, query: Mapping[str, str], key: str) -> bool:
    """True when `query["s"]` is the signature of `path` and the rest of `query`."""
    given = query.get(SIGNATURE_PARAM, "")
    return hmac.compare_digest(given.encode(), sign(path, query, key).encode())
