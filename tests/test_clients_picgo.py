"""PicGo-Core's CLI (`picgo`, npm) with the unmodified picgo-plugin-lankong (Lsky Pro V2) and
picgo-plugin-web-uploader, configured from PicHub's integrations endpoint, against a PicHub on
127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import samples
from client_site import ClientSite, start
from npm_clients import node_script, picgo, picgo_home, requires_clients, version

pytestmark = requires_clients
URL = re.compile(r"^(http://127\.0\.0\.1:\d+/img/([A-Za-z0-9_-]{12})\.webp)$", re.MULTILINE)


def _photo(tmp_path: Path, name: str = "holiday.png") -> Path:
    path = tmp_path / name
    path.write_bytes(samples.png_alpha())
    return path


async def _upload(site: ClientSite, home: Path, photo: Path) -> tuple[str, str]:
    done = await picgo(home, "upload", str(photo))
    assert done.code == 0, (done.out, done.err)
    found = URL.search(done.out)
    assert found, f"picgo printed no PicHub URL:\n{done.out}\n{done.err}"
    return found.group(1), found.group(2)


async def test_lankong_plugin_uploads_and_deletes(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    config = json.loads(await site.integration("picgo-lankong"))
    assert config["picBed"]["lankong"]["server"] == site.base + "/compat/lsky"
    home = picgo_home(tmp_path / "home", config)
    url, image_id = await _upload(site, home, _photo(tmp_path))

    row = await site.image(image_id)
    assert row["user_id"] == site.user_id and row["is_public"] == 1
    assert row["original_name"] == "holiday.png"
    status, _ = await site.get(url.removeprefix(site.base))
    assert status == 200
    status, listed = await site.get("/compat/lsky/api/v1/images")
    assert status == 200 and json.loads(listed)["data"]["data"][0]["key"] == image_id

    # The plugin's "sync delete": its own DELETE /api/v1/images/{key} with the token.
    config_path = home / ".picgo" / "config.json"
    done = await node_script("lankong-delete.js", str(config_path), image_id, url, home=home)
    assert done.code == 0, done.err
    outcome = json.loads(done.out.strip().splitlines()[-1])
    assert await site.image(image_id) is None
    assert any(image_id in event for event in await site.events("image.deleted"))
    # picgo-plugin-lankong 1.1.3 JSON.parses the answer that PicGo-Core's axios already
    # parsed, so after the delete it throws; uploads are unaffected (they use formData).
    assert outcome["error"] is None or "JSON" in outcome["error"], outcome


async def test_lankong_permission_zero_is_not_listed(aiohttp_server: Any,
                                                     tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    config = json.loads(await site.integration("picgo-lankong"))
    config["picBed"]["lankong"]["permission"] = 0  # "private(default)" in the plugin
    token = config["picBed"]["lankong"]["token"]
    config["picBed"]["lankong"]["token"] = token.removeprefix("Bearer ")  # bare token works
    home = picgo_home(tmp_path / "home", config)
    _, image_id = await _upload(site, home, _photo(tmp_path, "secret.png"))
    row = await site.image(image_id)
    assert row["user_id"] == site.user_id and row["is_public"] == 0


async def test_lankong_plugin_reports_pichub_refusals(aiohttp_server: Any,
                                                      tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    config = json.loads(await site.integration("picgo-lankong"))
    home = picgo_home(tmp_path / "home", config)
    fake = tmp_path / "drawing.png"
    fake.write_bytes(samples.SVG)
    done = await picgo(home, "upload", str(fake))
    assert "Unsupported file format" in done.out + done.err
    assert not URL.search(done.out)


async def test_web_uploader_from_the_integrations_endpoint(aiohttp_server: Any,
                                                           tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    config = json.loads(await site.integration("picgo-web-uploader"))
    home = picgo_home(tmp_path / "home", config)
    url, image_id = await _upload(site, home, _photo(tmp_path))
    row = await site.image(image_id)
    assert row["user_id"] == site.user_id
    status, _ = await site.get(url.removeprefix(site.base))
    assert status == 200


def test_versions_are_the_pinned_ones() -> None:
    pinned = json.loads((Path(__file__).parent / "clients" / "package.json").read_text())
    for name, wanted in pinned["dependencies"].items():
        assert version(name) == wanted
