"""Placeholders and photo metadata: `blurhash`, `dominant_color` and `exif`, computed once at
upload (from the pixels already decoded and the EXIF the stored file keeps), stored, shown in
every answer and event without GPS, GPS only for the owner who asks with `?include=gps` (and
only when the upload kept its location), and back-filled by `pichub backfill` for old rows."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from contextlib import closing
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import blurhash
import pillow_heif
import pytest
import requests
from browser import expect, launch, open_tab, requires_browser, start_site
from PIL import Image, TiffImagePlugin

from pichub.blobs import BlobStore
from pichub.imaging import exif as exif_mod
from pichub.imaging import placeholders
from tests import samples
from tests.conftest import Api
from tests.support import dbrows
from tests.support.server import Server, pichub

HEX = re.compile(r"^#[0-9a-f]{6}$")
#: What the camera EXIF of `camera_exif` says, as the API answers it.
FACTS = {"make": "PicHubCam", "model": "Model X", "lens": "PicHub 4.25mm f/1.8",
         "taken_at": "2024-05-01T10:00:00+02:00", "exposure_time": 0.004, "f_number": 1.8,
         "iso": 200, "focal_length": 4.25}
GPS = {"latitude": 48.8583333, "longitude": 2.2944444, "altitude": 35.0}


def _rational(value: float | Fraction) -> TiffImagePlugin.IFDRational:
    fraction = Fraction(value).limit_denominator(10_000)
    return TiffImagePlugin.IFDRational(fraction.numerator, fraction.denominator)


def camera_exif(*, gps: bool = True, orientation: int = 1) -> Image.Exif:
    """EXIF as a camera writes it: make, model, lens, date with its offset, exposure, f-number,
    ISO, focal length and (if `gps`) a GPS position with altitude."""
    exif = Image.Exif()
    exif[samples.ORIENTATION] = orientation
    exif[samples.MAKE] = "PicHubCam"
    exif[samples.MODEL] = "Model X"
    exif[samples.EXIF_IFD] = {
        exif_mod.DATE_TIME_ORIGINAL: "2024:05:01 10:00:00",
        exif_mod.OFFSET_TIME_ORIGINAL: "+02:00",
        exif_mod.F_NUMBER: _rational(Fraction(18, 10)),
        exif_mod.EXPOSURE_TIME: _rational(Fraction(1, 250)),
        exif_mod.ISO: 200,
        exif_mod.FOCAL_LENGTH: _rational(Fraction(425, 100)),
        exif_mod.LENS_MODEL: "PicHub 4.25mm f/1.8",
        0xA431: "SERIAL-123456",  # BodySerialNumber: never in the summary
    }
    if gps:
        exif[samples.GPS_IFD] = {
            1: "N", 2: (_rational(48), _rational(51), _rational(30)),
            3: "E", 4: (_rational(2), _rational(17), _rational(40)),
            5: b"\x00", 6: _rational(35),
        }
    return exif


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> Image.Image:
    return Image.new("RGB", size, colour)


def two_colours(size: tuple[int, int] = (200, 100)) -> Image.Image:
    """70 % red on the left, 30 % blue on the right."""
    im = solid((255, 0, 0), size)
    im.paste((0, 0, 255), (size[0] * 7 // 10, 0, size[0], size[1]))
    return im


def encoded(im: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def photo(fmt: str = "JPEG", *, gps: bool = True, orientation: int = 1,
          size: tuple[int, int] = (96, 64)) -> bytes:
    """Two colours with the camera EXIF, in `fmt` (Pillow's name)."""
    return encoded(two_colours(size), fmt, exif=camera_exif(gps=gps, orientation=orientation),
                   quality=95)


def heic_photo(*, gps: bool = True) -> bytes:
    im = two_colours((96, 64))
    out = io.BytesIO()
    pillow_heif.encode("RGB", im.size, im.tobytes(), out, quality=95,
                       exif=camera_exif(gps=gps).tobytes())
    return out.getvalue()


def near(colour: str | tuple[int, ...], expected: tuple[int, int, int],
         tolerance: int = 12) -> bool:
    """`colour` (`#rrggbb` or a pixel) within `tolerance` of `expected` on every channel."""
    value = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5)) if isinstance(
        colour, str) else colour
    return all(abs(a - b) <= tolerance for a, b in zip(value, expected, strict=True))


def pixels(im: Image.Image) -> list[tuple[int, ...]]:
    data = im.convert("RGB").tobytes()
    return [tuple(data[at:at + 3]) for at in range(0, len(data), 3)]


def decoded_hash(hash_: str, size: tuple[int, int] = (20, 10)) -> Image.Image:
    """A BlurHash drawn at `size`, as a client would."""
    rows = blurhash.decode(hash_, size[0], size[1])
    return Image.frombytes("RGB", size, bytes(v for row in rows for pixel in row for v in pixel))


async def upload(api: Api, data: bytes, name: str = "photo.jpg", token: str | None = None,
                 **fields: Any) -> dict[str, Any]:
    status, body = await api.upload((name, data), token=token, **fields)
    assert status == 201, body
    return dict(body["data"][0])


async def get(api: Api, image_id: str, query: str = "", token: str | None = None
              ) -> tuple[int, Any]:
    return await api.call("GET", f"/api/v1/images/{image_id}{query}", token=token)


# --- the pure parts: summary and placeholders ------------------------------------------------


def test_the_summary_reads_the_camera_facts_and_gps_only_when_asked() -> None:
    tiff = camera_exif().tobytes()
    summary = exif_mod.summarise(tiff, with_gps=False)
    assert summary is not None and summary.facts() == FACTS and summary.gps is None
    located = exif_mod.summarise(tiff, with_gps=True)
    assert located is not None and located.gps == exif_mod.GpsPosition(**GPS)
    assert "SERIAL" not in json.dumps(located.facts())


def test_the_summary_of_bad_or_empty_exif_is_none_or_leaves_the_bad_fact_out() -> None:
    assert exif_mod.summarise(None, with_gps=True) is None
    assert exif_mod.summarise(b"\x00garbage", with_gps=True) is None
    only_orientation = Image.Exif()
    only_orientation[samples.ORIENTATION] = 6
    assert exif_mod.summarise(only_orientation, with_gps=True) is None
    odd = Image.Exif()
    odd[samples.MAKE] = "Pic\x00Hub\nCam  " + "x" * 300
    odd[samples.EXIF_IFD] = {
        exif_mod.DATE_TIME_ORIGINAL: "0000:00:00 00:00:00",
        exif_mod.DATE_TIME_DIGITIZED: "2023:02:03 04:05:06",
        exif_mod.OFFSET_TIME_DIGITIZED: "junk",
        exif_mod.F_NUMBER: TiffImagePlugin.IFDRational(1, 0),  # not a number
        exif_mod.EXPOSURE_TIME: -1.0,
        exif_mod.ISO: (400, 800),
    }
    odd[samples.GPS_IFD] = {1: "S", 2: (_rational(33), _rational(52), _rational(0)),
                            3: "W", 4: (_rational(151), 0, 0)}
    summary = exif_mod.summarise(odd.tobytes(), with_gps=True)
    assert summary is not None
    assert summary.make is not None and summary.make.startswith("Pic Hub Cam x")
    assert len(summary.make) == exif_mod.MAX_TEXT
    assert summary.taken_at == "2023-02-03T04:05:06"  # digitised, without a bad offset
    assert (summary.f_number, summary.exposure_time, summary.iso) == (None, None, 400)
    assert summary.gps == exif_mod.GpsPosition(-33.8666667, -151.0, None)


def test_placeholders_of_solid_two_colour_and_transparent_images() -> None:
    found = placeholders.compute(solid((12, 34, 56)))
    assert found is not None and found.dominant_color == "#0c2238"
    assert near(found.dominant_color, (12, 34, 56), 0)
    drawn = decoded_hash(found.blurhash)
    assert all(near(p, (12, 34, 56), 8) for p in pixels(drawn))
    mixed = placeholders.compute(two_colours())
    assert mixed is not None and mixed.dominant_color == "#ff0000"
    drawn = decoded_hash(mixed.blurhash)  # red on the left, blue on the right
    left, right = drawn.getpixel((1, 5)), drawn.getpixel((18, 5))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert left[0] > 200 and left[2] < 80 and right[2] > 150 and right[0] < 120
    logo = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    logo.paste((0, 128, 0, 255), (40, 40, 60, 60))  # 4 % of the pixels, the only opaque ones
    found = placeholders.compute(logo)
    assert found is not None and found.dominant_color == "#008000"
    empty = placeholders.compute(Image.new("RGBA", (10, 10), (0, 0, 0, 0)))
    assert empty is not None and empty.dominant_color == "#ffffff"


@pytest.mark.parametrize(("size", "components"), [((300, 200), (4, 3)), ((200, 300), (3, 4)),
                                                  ((100, 100), (4, 4)), ((5000, 1), (4, 3))])
def test_the_blurhash_has_more_components_along_the_long_side(
        size: tuple[int, int], components: tuple[int, int]) -> None:
    found = placeholders.compute(solid((200, 100, 50), size))
    assert found is not None and blurhash.components(found.blurhash) == components


# --- through the API ------------------------------------------------------------------------


async def test_an_upload_answers_its_placeholders_and_exif_without_gps(api: Api) -> None:
    image = await upload(api, photo())  # default: WebP, location stripped
    assert image["format"] == "webp"
    assert HEX.match(image["dominant_color"]) and near(image["dominant_color"], (255, 0, 0), 4)
    assert blurhash.components(image["blurhash"]) == (4, 3)
    assert image["exif"] == {**FACTS, "gps": None}
    status, body = await get(api, image["id"])
    assert status == 200
    assert {k: body["data"][k] for k in ("blurhash", "dominant_color", "exif")} == {
        k: image[k] for k in ("blurhash", "dominant_color", "exif")}
    status, body = await get(api, image["id"], "?include=gps")  # the file has no location
    assert status == 200 and body["data"]["exif"] == {**FACTS, "gps": None}


async def test_solid_and_two_colour_uploads_get_exact_colours_and_the_right_hash(
        api: Api) -> None:
    plain = await upload(api, encoded(solid((12, 34, 56)), "PNG"), "plain.png")
    assert plain["dominant_color"] == "#0c2238" and plain["exif"] is None
    assert all(near(p, (12, 34, 56), 8)
               for p in pixels(decoded_hash(plain["blurhash"])))
    mixed = await upload(api, encoded(two_colours(), "PNG"), "mixed.png",
                         convertToWebP="false")
    assert mixed["dominant_color"] == "#ff0000"
    drawn = decoded_hash(mixed["blurhash"])
    assert drawn.getpixel((1, 5)) != drawn.getpixel((18, 5))


async def test_gps_only_with_keep_location_and_only_for_the_owner_who_asks(api: Api) -> None:
    image = await upload(api, photo(), keep_location="true")
    assert image["exif"] == {**FACTS, "gps": None}  # not in the upload answer either
    status, body = await get(api, image["id"])
    assert status == 200 and body["data"]["exif"]["gps"] is None
    for query in ("?include=gps", "?include=gps,", "?include=%20gps&include=gps"):
        status, body = await get(api, image["id"], query)
        assert status == 200 and body["data"]["exif"] == {**FACTS, "gps": GPS}, query
    for path in ("/api/v1/images", "/api/v1/square", "/api/v1/images?include=gps"):
        status, body = await api.call("GET", path)
        assert status == 200 and body["data"][0]["exif"]["gps"] is None, path
    mallory = await api.new_user("mallory")
    status, body = await get(api, image["id"], "?include=gps", token=mallory)
    assert status == 404 and "48.85" not in json.dumps(body)
    status, body = await get(api, image["id"], "?include=location")
    assert status == 422 and body["error"]["details"][0]["field"] == "include"


async def test_remove_exif_leaves_no_exif_at_all_but_the_placeholders(api: Api) -> None:
    for options in ({"remove_exif": "true"}, {"remove_exif": "true", "keep_location": "true"}):
        image = await upload(api, photo(), **options)
        assert image["exif"] is None and near(image["dominant_color"], (255, 0, 0), 4)
        assert blurhash.components(image["blurhash"]) == (4, 3)
        status, body = await get(api, image["id"], "?include=gps")
        assert status == 200 and body["data"]["exif"] is None
    rows = dbrows.rows(api, "SELECT exif, gps_latitude FROM images")
    assert rows == [(None, None), (None, None)]


async def test_events_carry_the_fields_but_never_gps(api: Api) -> None:
    image = await upload(api, photo(), keep_location="true")
    payload = json.loads(dbrows.rows(
        api, "SELECT payload FROM events WHERE type = 'image.uploaded'")[0][0])
    [stored] = dbrows.rows(api, "SELECT gps_latitude, gps_longitude, gps_altitude FROM images"
                                " WHERE id = ?", (image["id"],))
    assert stored == (GPS["latitude"], GPS["longitude"], GPS["altitude"])
    data = payload["data"]
    assert data["exif"] == {**FACTS, "gps": None}
    assert (data["blurhash"], data["dominant_color"]) == (image["blurhash"],
                                                          image["dominant_color"])
    assert "48.85" not in json.dumps(payload)


async def test_the_placeholder_is_of_the_upright_picture(api: Api) -> None:
    image = await upload(api, photo(orientation=6, size=(96, 64)))
    assert (image["width"], image["height"]) == (64, 96)
    assert blurhash.components(image["blurhash"]) == (3, 4)
    drawn = decoded_hash(image["blurhash"], (10, 20))  # turned: red on top, blue below
    top, bottom = drawn.getpixel((5, 1)), drawn.getpixel((5, 18))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and bottom[2] > 150


async def test_an_animation_is_described_by_its_first_frame(api: Api) -> None:
    gif = await upload(api, samples.animated_gif(3), "a.gif", convertToWebP="false")
    webp = await upload(api, samples.animated_gif(3), "a.gif")  # re-encoded to WebP
    for image in (gif, webp):
        assert image["dominant_color"] == "#ff0000" and image["exif"] is None, image["format"]
        assert blurhash.components(image["blurhash"]) == (4, 3)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "jxl", "gif"])
async def test_every_stored_format_gets_the_fields(api: Api, fmt: str) -> None:
    image = await upload(api, photo(), format=fmt) if fmt != "gif" else await upload(
        api, encoded(two_colours(), "GIF"), "p.gif", convertToWebP="false")
    assert image["format"] == fmt
    assert near(image["dominant_color"], (255, 0, 0), 16)
    assert image["exif"] == (None if fmt == "gif" else {**FACTS, "gps": None})


async def test_heic_uploads_are_described_too(api: Api) -> None:
    image = await upload(api, heic_photo(), "IMG_0001.HEIC")
    assert image["original_format"] == "heic" and image["format"] == "webp"
    assert near(image["dominant_color"], (255, 0, 0), 16)
    assert blurhash.components(image["blurhash"]) == (4, 3)
    assert image["exif"] == {**FACTS, "gps": None}
    status, body = await get(api, image["id"], "?include=gps")
    assert status == 200 and body["data"]["exif"]["gps"] is None  # stripped by default
    kept = await upload(api, heic_photo(), "IMG_0002.HEIC", keep_location="true")
    status, body = await get(api, kept["id"], "?include=gps")
    assert status == 200 and body["data"]["exif"] == {**FACTS, "gps": GPS}


async def test_jpeg_xl_uploads_are_described_too(api: Api) -> None:
    source = encoded(two_colours((96, 64)), "JXL", exif=camera_exif().tobytes(), lossless=True)
    for options in ({}, {"convertToWebP": "false"}, {"convertToWebP": "false",
                                                     "keep_location": "true"}):
        image = await upload(api, source, "p.jxl", **options)
        assert image["format"] == ("webp" if not options else "jxl")
        assert near(image["dominant_color"], (255, 0, 0), 16)
        assert image["exif"] == {**FACTS, "gps": None}
        status, body = await get(api, image["id"], "?include=gps")
        want = GPS if "keep_location" in options else None
        assert status == 200 and body["data"]["exif"]["gps"] == want


# --- the web UI ------------------------------------------------------------------------------


async def test_pages_show_the_placeholder_and_the_camera_facts_never_gps(api: Api) -> None:
    image = await upload(api, photo(), keep_location="true")
    async with api.client.get(f"/i/{image['id']}") as resp:
        assert resp.status == 200
        html = await resp.text()
    assert f'style="background-color: {image["dominant_color"]}"' in html
    assert f'data-blurhash="{image["blurhash"]}"' in html
    for shown in ("PicHubCam Model X", "PicHub 4.25mm f/1.8", "2024-05-01 10:00 (UTC+02:00)",
                  "1/250 s", "f/1.8", "<dd>200</dd>", "4.25 mm"):
        assert shown in html, shown
    assert "48.85" not in html and "2.29" not in html
    async with api.client.get("/") as resp:
        square = await resp.text()
    assert f'data-blurhash="{image["blurhash"]}"' in square


@requires_browser
async def test_the_browser_shows_the_placeholder_until_the_image_is_in(
        aiohttp_server: Any, tmp_path: Path) -> None:
    """Under the page's real CSP: the colour (a style attribute) and the BlurHash (drawn by
    app.js) while the image is held back, neither once it has loaded."""
    site = await start_site(aiohttp_server, tmp_path)
    token = await site.new_user("paula")
    form = aiohttp.FormData()
    form.add_field("file", photo(), filename="photo.jpg")
    async with aiohttp.ClientSession() as session, session.post(
            site.base + "/api/v1/upload", data=form,
            headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 201
        image = (await resp.json())["data"][0]
    held: list[Any] = []
    async with launch() as browser:
        tab = await open_tab(browser, site)
        page = tab.page

        async def hold(route: Any) -> None:  # not answered until released below
            held.append(route)

        await page.route("**/img/**", hold)
        await page.goto(site.base + f"/i/{image['id']}", wait_until="domcontentloaded")
        picture = page.locator("figure img")
        await expect(picture).to_have_css("background-image", re.compile(r'^url\("data:image/png'))
        red, green, blue = (int(image["dominant_color"][i:i + 2], 16) for i in (1, 3, 5))
        await expect(picture).to_have_css("background-color", f"rgb({red}, {green}, {blue})")
        assert held and await picture.evaluate("el => el.naturalWidth") == 0
        for route in held:
            await route.continue_()
        await page.unroute("**/img/**")
        await expect(picture).to_have_class(re.compile(r"\bplaceholder-done\b"))
        await expect(picture).to_have_css("background-image", "none")
        await expect(picture).to_have_css("background-color", "rgba(0, 0, 0, 0)")
        assert await picture.evaluate("el => el.naturalWidth") == image["width"]
        tab.assert_clean()


# --- pichub backfill -------------------------------------------------------------------------


def _columns(db_path: Path) -> dict[str, tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute("SELECT id, blurhash, dominant_color, exif, gps_latitude,"
                            " meta_version FROM images ORDER BY seq").fetchall()
    return {row[0]: row[1:] for row in rows}


def _old_database(data_dir: Path) -> None:
    """A data directory as PicHub left it before migration 0005: schema 4, no such columns."""
    data_dir.mkdir(parents=True)
    folder = resources.files("pichub.db") / "migrations"
    with closing(sqlite3.connect(data_dir / "pichub.db")) as conn:
        for version in range(1, 5):
            script = next(entry for entry in folder.iterdir()
                          if entry.name.startswith(f"{version:04d}_"))
            conn.executescript(script.read_text())
        conn.execute("PRAGMA user_version = 4")
        conn.execute("INSERT INTO users (id, username, password_hash, created_at)"
                     " VALUES (1, 'old', 'x', '2024-01-01T00:00:00Z')")
        columns = [row[1] for row in conn.execute("PRAGMA table_info(images)")]
        assert "blurhash" not in columns and "meta_version" not in columns
        blobs = BlobStore(data_dir / "blobs")
        images = [("oldphoto0001", "jpeg", photo(gps=True), 96, 64, 1),
                  ("oldsolid0002", "png", encoded(solid((12, 34, 56)), "PNG"), 120, 80, 1),
                  ("oldanim00003", "gif", samples.animated_gif(3), 32, 24, 3)]
        for image_id, fmt, data, width, height, frames in images:
            blobs.put(image_id, "jpg" if fmt == "jpeg" else fmt, data)
            conn.execute(
                "INSERT INTO images (id, user_id, filename, original_name, format, width,"
                " height, frames, size, sha256, created_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?,"
                " '0', '2024-01-01T00:00:00Z')",
                (image_id, image_id, image_id, fmt, width, height, frames, len(data)))
        conn.commit()


def test_backfill_describes_old_rows_resumably(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _old_database(data_dir)
    args = ["--data-dir", str(data_dir)]
    first = pichub("backfill", "--limit", "1", *args)  # stopped part-way…
    assert first.returncode == 0, first.stderr
    assert "looked at 1 image(s): 0 working copies made, 1 described" in first.stdout
    columns = _columns(data_dir / "pichub.db")
    assert [row[-1] for row in columns.values()] == [1, 0, 0]
    again = pichub("backfill", *args)  # …resumed: only the other two are left
    assert "looked at 3 image(s): 0 working copies made, 2 described" in again.stdout
    columns = _columns(data_dir / "pichub.db")
    photo_row, solid_row, anim_row = columns.values()
    assert near(photo_row[1], (255, 0, 0), 4) and json.loads(photo_row[2]) == FACTS
    # The stored file of an old row is the truth: this one kept its location.
    assert photo_row[3] == GPS["latitude"]
    assert solid_row[1:4] == ("#0c2238", None, None)
    assert anim_row[1] == "#ff0000" and anim_row[2] is None
    assert all(row[-1] == 1 and blurhash.components(row[0]) == (4, 3)
               for row in (photo_row, solid_row, anim_row))
    last = pichub("backfill", *args)
    assert "0 working copies made, 0 described" in last.stdout


def test_backfill_refills_uploaded_rows_as_the_upload_described_them(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        auth = {"Authorization": f"Bearer {server.token}"}
        answers = []
        for name, data, fields in (("a.jpg", photo(), {}),
                                   ("b.jpg", photo(), {"keep_location": "true"}),
                                   ("c.jpg", photo(), {"remove_exif": "true"}),
                                   ("d.png", encoded(solid((12, 34, 56), (1600, 1200)), "PNG"),
                                    {"convertToWebP": "false"})):
            resp = requests.post(server.base + "/api/v1/upload", headers=auth, timeout=60,
                                 files={"file": (name, data)}, data=fields)
            assert resp.status_code == 201, resp.text
            answers.append(resp.json()["data"][0])
    finally:
        server.stop()
    db_path = tmp_path / "data" / "pichub.db"
    uploaded = _columns(db_path)
    assert [row[-1] for row in uploaded.values()] == [1, 1, 1, 1]  # the server's own code
    assert [a["exif"] is None for a in answers] == [False, False, True, True]
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("UPDATE images SET blurhash = NULL, dominant_color = NULL, exif = NULL,"
                     " gps_latitude = NULL, gps_longitude = NULL, gps_altitude = NULL,"
                     " meta_version = 0")
        conn.commit()
    done = pichub("backfill", "--data-dir", str(tmp_path / "data"))
    assert "looked at 4 image(s): 0 working copies made, 4 described" in done.stdout, done.stdout
    refilled = _columns(db_path)
    for (image_id, before), answer in zip(uploaded.items(), answers, strict=True):
        after = refilled[image_id]
        assert after[2:] == before[2:], answer["original_name"]  # EXIF, GPS, version
        assert near(after[1], (255, 0, 0) if answer["original_name"] != "d.png"
                    else (12, 34, 56), 16)
        assert blurhash.components(after[0]) == blurhash.components(before[0])
