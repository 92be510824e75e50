"""TransformSpec: validation, canonical form / cache keys, signed URLs."""

from __future__ import annotations

import pytest

from pichub.errors import BadRequest
from pichub.imaging.spec import TransformSpec, quality_for, sign, verify


def parse(
    query: dict[str, str], ext: str | None = None, stored: str = "jpeg", max_dim: int = 4096
) -> TransformSpec:
    return TransformSpec.parse(query, ext, stored, max_dim)


def key(query: dict[str, str], ext: str | None = None, stored: str = "jpeg") -> str:
    return parse(query, ext, stored).with_default_quality(85).cache_key("img123")


def test_defaults_are_the_stored_image() -> None:
    spec = parse({})
    assert spec == TransformSpec(w=None, h=None, q=None, fit="inside", fm="jpeg")
    assert spec.is_identity("jpeg")
    assert spec.is_identity("jpg")


def test_default_fit_is_cover_with_both_sides_and_inside_with_one() -> None:
    assert parse({"w": "800", "h": "600"}).fit == "cover"
    assert parse({"w": "800"}).fit == "inside"
    assert parse({"h": "600", "fit": "fill"}).fit == "inside"


def test_format_from_fm_then_extension_then_stored() -> None:
    assert parse({"fm": "webp"}, ext="png", stored="gif").fm == "webp"
    assert parse({}, ext="png", stored="gif").fm == "png"
    assert parse({}, ext=None, stored="gif").fm == "gif"
    assert parse({"fm": "JPG"}).fm == "jpeg"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"w": "800", "h": "600", "fit": "crop"}, {"w": "800", "h": "600", "fit": "cover"}),
        ({"w": "800", "h": "600"}, {"h": "600", "w": "800", "fit": "cover"}),
        ({"w": "800", "fm": "jpg"}, {"w": "800", "fm": "jpeg"}),
        ({"w": "800", "fit": "outside"}, {"w": "800"}),
        ({"w": "800", "q": "85"}, {"w": "800"}),
        ({"w": "0800"}, {"w": "800"}),
        ({"w": "800", "s": "sig", "utm_source": "x"}, {"w": "800"}),
        ({"fm": "png", "q": "30"}, {"fm": "png"}),
    ],
)
def test_equivalent_urls_share_one_cache_key(a: dict[str, str], b: dict[str, str]) -> None:
    assert key(a) == key(b)


def test_extension_and_fm_share_one_cache_key() -> None:
    assert key({"w": "10"}, ext="jpg") == key({"w": "10", "fm": "jpeg"}, ext=None)
    assert key({"w": "10"}, ext="webp") == key({"w": "10", "fm": "webp"}, ext="jpg")


@pytest.mark.parametrize(
    "other",
    [
        {"w": "801", "h": "600"},
        {"w": "800", "h": "601"},
        {"w": "800"},
        {"w": "800", "h": "600", "fit": "contain"},
        {"w": "800", "h": "600", "q": "84"},
        {"w": "800", "h": "600", "fm": "webp"},
        {},
    ],
)
def test_different_specs_get_different_keys(other: dict[str, str]) -> None:
    assert key(other) != key({"w": "800", "h": "600"})


def test_keys_differ_per_image_and_are_path_safe() -> None:
    spec = parse({"w": "10"})
    assert spec.cache_key("a") != spec.cache_key("b")
    image_id, digest = spec.cache_key("abc_-9").split("/")
    assert image_id == "abc_-9"
    assert len(digest) == 32 and int(digest, 16) >= 0


def test_quality_default_per_format() -> None:
    assert parse({"w": "5", "fm": "webp"}).with_default_quality(85).q == 85
    assert parse({"w": "5", "fm": "avif"}).with_default_quality(85).q == quality_for("avif", 85)
    assert quality_for("avif", 85) < 85
    assert parse({"w": "5", "fm": "png"}).with_default_quality(85).q is None
    assert parse({"w": "5", "q": "40"}).with_default_quality(85).q == 40


@pytest.mark.parametrize(
    ("query", "ext", "param"),
    [
        ({"w": "0"}, None, "w"),
        ({"w": "-5"}, None, "w"),
        ({"w": "abc"}, None, "w"),
        ({"w": "1.5"}, None, "w"),
        ({"w": ""}, None, "w"),
        ({"w": " 10"}, None, "w"),
        ({"h": "4097"}, None, "h"),
        ({"h": "99999999999999999999"}, None, "h"),
        ({"q": "0"}, None, "q"),
        ({"q": "101"}, None, "q"),
        ({"fit": "stretch", "w": "5", "h": "5"}, None, "fit"),
        ({"fit": "stretch"}, None, "fit"),
        ({"fm": "bmp"}, None, "fm"),
        ({}, "tiff", "ext"),
    ],
)
def test_bad_params_are_bad_requests_naming_the_param(
    query: dict[str, str], ext: str | None, param: str
) -> None:
    with pytest.raises(BadRequest) as info:
        parse(query, ext)
    assert info.value.status == 400
    assert f"'{param}'" in info.value.message
    assert info.value.details["param"] == param


def test_width_above_max_dimension_is_refused() -> None:
    assert parse({"w": "1000"}, max_dim=1000).w == 1000
    with pytest.raises(BadRequest, match="'w'"):
        parse({"w": "1001"}, max_dim=1000)


def test_identity_needs_no_size_no_quality_and_the_stored_format() -> None:
    assert parse({"fm": "jpg"}).is_identity("jpeg")
    assert parse({}, ext="jpg").is_identity("jpeg")
    assert not parse({"q": "50"}).is_identity("jpeg")
    assert not parse({"w": "10"}).is_identity("jpeg")
    assert not parse({"fm": "webp"}).is_identity("jpeg")
    assert parse({"q": "50"}, stored="png").is_identity("png")  # q means nothing for PNG


def test_canonical_form_is_readable() -> None:
    spec = parse({"fm": "jpg", "fit": "crop", "h": "600", "w": "800", "q": "90"})
    assert spec.canonical() == "w=800&h=600&fit=cover&q=90&fm=jpeg"


KEY = "signing-key"
PATH = "/img/abc123.webp"


def test_signed_url_verifies() -> None:
    query = {"w": "800", "h": "600", "fit": "crop"}
    sig = sign(PATH, query, KEY)
    assert verify(PATH, {**query, "s": sig}, KEY)
    # order of parameters does not matter, an `s` already present is ignored when signing
    assert verify(PATH, {"s": sig, "fit": "crop", "h": "600", "w": "800"}, KEY)
    assert sign(PATH, {**query, "s": "old"}, KEY) == sig
    assert set(sig) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


GOOD = "<the right signature>"


@pytest.mark.parametrize(
    ("path", "query", "key"),
    [
        (PATH, {"w": "800", "h": "600", "fit": "crop", "s": "AAAA"}, KEY),  # wrong signature
        (PATH, {"w": "800", "h": "600", "fit": "crop"}, KEY),  # missing signature
        (PATH, {"w": "800", "h": "600", "fit": "crop", "s": ""}, KEY),  # empty signature
        (PATH, {"w": "801", "h": "600", "fit": "crop", "s": GOOD}, KEY),  # tampered param
        (PATH, {"w": "800", "h": "600", "fit": "crop", "q": "1", "s": GOOD}, KEY),  # added
        ("/img/other.webp", {"w": "800", "h": "600", "fit": "crop", "s": GOOD}, KEY),
        (PATH, {"w": "800", "h": "600", "fit": "crop", "s": GOOD}, "other-key"),
    ],
)
def test_wrong_signatures_are_refused(path: str, query: dict[str, str], key: str) -> None:
    good = sign(PATH, {"w": "800", "h": "600", "fit": "crop"}, KEY)
    signed = {k: good if v == GOOD else v for k, v in query.items()}
    assert not verify(path, signed, key)
