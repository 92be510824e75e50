"""A password-protected album in Chromium: the form, a wrong password, the right one (its
images then load through signed links), and the cookie does not open another album."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import samples
from browser import Site, Tab, expect, launch, open_tab, requires_browser, start_site

pytestmark = requires_browser


async def _api(site: Site, tab: Tab, method: str, path: str, token: str,
               **kwargs: Any) -> tuple[int, Any]:
    response = await tab.page.context.request.fetch(
        site.base + path, method=method, headers={"Authorization": f"Bearer {token}"},
        **kwargs)
    return response.status, await response.json()


async def _album_with_images(site: Site, tab: Tab, token: str, name: str) -> tuple[int, str]:
    status, body = await _api(site, tab, "POST", "/api/v1/albums", token,
                              data={"name": name, "password": "sesame"})
    assert status == 201, body
    album_id = body["data"]["id"]
    status, body = await _api(site, tab, "POST", "/api/v1/upload", token, multipart={
        "files[]": {"name": "a.jpg", "mimeType": "image/jpeg",
                    "buffer": samples.jpeg((120, 80))},
        "album_id": str(album_id), "convertToWebP": "false"})
    assert status == 201, body
    return album_id, body["data"][0]["id"]


async def test_album_password_flow(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    token = await site.new_user("dora")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        album_id, image_id = await _album_with_images(site, tab, token, "Beach")
        other_id, other_image = await _album_with_images(site, tab, token, "Mountains")
        page = tab.page
        await tab.goto(f"/a/{album_id}")
        await expect(page.locator("#album-password-form")).to_be_visible()
        await page.fill("input[name=password]", "wrong")
        await page.click("#album-password-form button[type=submit]")
        await expect(page.locator(".alert")).to_have_text("Wrong password.")
        assert image_id not in await page.content()

        await page.fill("input[name=password]", "sesame")
        await page.click("#album-password-form button[type=submit]")
        await page.wait_for_url(site.base + f"/a/{album_id}")
        tiles = page.locator("#album li.tile img")
        await expect(tiles).to_have_count(1)
        width = await tiles.first.evaluate(
            "img => img.complete ? img.naturalWidth : new Promise(done => {"
            " img.onload = () => done(img.naturalWidth); img.onerror = () => done(0); })")
        assert width > 0 and "sig=" in (await tiles.first.get_attribute("src") or "")
        cookies = await page.context.cookies()
        unlock = [c for c in cookies if c["name"] == "pichub_album"]
        assert len(unlock) == 1 and unlock[0]["path"] == f"/a/{album_id}", unlock
        assert unlock[0]["httpOnly"] and unlock[0]["sameSite"] == "Lax"

        await tab.goto(f"/a/{other_id}")
        await expect(page.locator("#album-password-form")).to_be_visible()
        assert other_image not in await page.content()
        await tab.screenshot("album-password.png")
        # A wrong password answers 403 for the document: the browser logs it as a failed
        # resource, which is the expected answer here, not a broken page.
        tab.problems = [p for p in tab.problems if "403" not in p]
        tab.assert_clean()
