"""The generated configurations of the tools that cannot run here (ShareX and uPic are
Windows and macOS apps, Flameshot needs a screen): their requests replayed exactly as the
tools build them, and the shell scripts run by `sh` with real curl."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import samples
from client_site import ClientSite, start
from npm_clients import run

_JSON_PATH = re.compile(r"\{json:([^}]+)\}")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
requires_curl = pytest.mark.skipif(  # in CI (`.ci/run` installs it) they must run
    shutil.which("curl") is None and os.environ.get("CI") != "true",
    reason="curl is missing (apt-get install curl); these tests always run in CI")


def json_path(answer: Any, path: str) -> Any:
    """ShareX 14's `{json:data[0].url}`: dotted keys and [index] steps."""
    value = answer
    for key, index in _STEP.findall(path):
        value = value[int(index)] if index else value[key]
    return value


def sharex_syntax(template: str, answer: Any) -> str:
    return _JSON_PATH.sub(lambda match: str(json_path(answer, match.group(1))), template)


async def replay_sxcu(sxcu: dict[str, Any], name: str, data: bytes) -> tuple[int, Any]:
    """Send the upload as ShareX does for a custom uploader with `Body: MultipartFormData`:
    `Parameters` in the query, `Headers`, `Arguments` as form fields, then the file under
    `FileFormName` with its name and MIME type."""
    form = aiohttp.FormData()
    for key, value in sxcu.get("Arguments", {}).items():
        form.add_field(key, value)
    form.add_field(sxcu["FileFormName"], io.BytesIO(data), filename=name,
                   content_type="image/png")
    async with aiohttp.ClientSession() as session, session.request(
            sxcu["RequestMethod"], sxcu["RequestURL"], params=sxcu.get("Parameters", {}),
            headers={"User-Agent": "ShareX/16.1.0", **sxcu["Headers"]}, data=form) as resp:
        return resp.status, await resp.json()


async def test_sharex_sxcu(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path, images={"signing_key": "k" * 32})
    sxcu = json.loads(await site.integration("sharex"))
    assert sxcu["DestinationType"] == "ImageUploader" and sxcu["Body"] == "MultipartFormData"
    status, answer = await replay_sxcu(sxcu, "screenshot.png", samples.png_alpha())
    assert status == 201
    url = sharex_syntax(sxcu["URL"], answer)
    thumbnail = sharex_syntax(sxcu["ThumbnailURL"], answer)
    deletion = sharex_syntax(sxcu["DeletionURL"], answer)
    image_id = answer["data"][0]["id"]
    assert url == f"{site.base}/img/{image_id}.webp"
    for link in (url, thumbnail, deletion):  # the thumbnail is signed: it answers
        status, _ = await site.get(link.removeprefix(site.base))
        assert status == 200, link
    assert await site.image(image_id) is not None  # opening the delete link deleted nothing
    # The error ShareX shows: `{json:message}` of the error answer.
    async with aiohttp.ClientSession() as session, session.post(
            sxcu["RequestURL"], headers={"Authorization": "Bearer ph_wrong"},
            data={"file": "x"}) as resp:
        assert resp.status == 401
        assert sharex_syntax(sxcu["ErrorMessage"], await resp.json()) == (
            "Invalid or expired API token")


async def test_upic_host_export(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    [host] = json.loads(await site.integration("upic"))
    assert host["type"] == -1  # uPic's custom host
    config = json.loads(host["data"])
    form = aiohttp.FormData()
    for item in json.loads(config["bodys"]):
        form.add_field(item["key"], item["value"])
    form.add_field("key", "uPic/screenshot.png")  # uPic always adds its save key
    form.add_field(config["field"], io.BytesIO(samples.png_alpha()), filename="screenshot.png",
                   content_type="image/png")
    headers = {item["key"]: item["value"] for item in json.loads(config["headers"])}
    async with aiohttp.ClientSession() as session, session.request(
            config["method"], config["url"], headers=headers, data=form) as resp:
        assert resp.status == 201
        answer = await resp.json()
    url = answer
    for step in json.loads(config["resultPath"]):
        url = url[step]
    assert url == answer["data"][0]["url"] and url.startswith(site.base + "/img/")


def _script(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@requires_curl
async def test_flameshot_script(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    shot = tmp_path / "shot.png"
    shot.write_bytes(samples.png_alpha())
    script = await site.integration("flameshot")
    assert "flameshot gui --raw" in script
    script = _script(tmp_path, script.replace("flameshot gui --raw", f"cat {shot}"), "shot.sh")
    done = await run("sh", str(script))
    assert done.code == 0, done.err
    url = done.out.strip()
    assert re.fullmatch(re.escape(site.base) + r"/img/[A-Za-z0-9_-]{12}\.webp", url)
    status, _ = await site.get(url.removeprefix(site.base))
    assert status == 200
    # A failed upload prints PicHub's message and exits non-zero.
    bad = tmp_path / "bad.txt"
    bad.write_text("not an image")
    script.write_text(script.read_text().replace(f"cat {shot}", f"cat {bad}"))
    done = await run("sh", str(script))
    assert done.code == 1 and "Unsupported file format" in done.err


@requires_curl
async def test_curl_script(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start(aiohttp_server, tmp_path)
    first, second = tmp_path / "a.jpg", tmp_path / "b b.png"
    first.write_bytes(samples.jpeg())
    second.write_bytes(samples.png_alpha())
    script = _script(tmp_path, await site.integration("curl"), "up.sh")
    done = await run("sh", str(script), str(first), str(second))
    assert done.code == 0, done.err
    urls = done.out.split()
    assert len(urls) == 2 and all(u.startswith(site.base + "/img/") for u in urls)


async def test_placeholder_without_create_token(aiohttp_server: Any, tmp_path: Path) -> None:
    site: ClientSite = await start(aiohttp_server, tmp_path)
    status, text = await site.get("/api/v1/integrations/sharex")
    assert status == 200 and "YOUR_PICHUB_TOKEN" in text
