"""The dashboard's sharing controls in Chromium: an upload that expires, an album password
set from the albums page (a visitor of /a/{id} is then asked for it), an image's expiry
changed from its card, and a signed link copied from a private image's card."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import samples
from browser import expect, launch, open_tab, requires_browser, start_site

from pichub.keys import DB

pytestmark = requires_browser


def _seconds_left(expires_at: str) -> float:
    return (datetime.fromisoformat(expires_at) - datetime.now(UTC)).total_seconds()


async def test_album_password_and_image_expiry_from_the_dashboard(aiohttp_server: Any,
                                                                 tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    await site.new_user("fay")
    db = site.app[DB]
    async with launch() as browser:
        tab = await open_tab(browser, site)
        page = tab.page
        await tab.login("fay")
        await tab.goto("/dashboard/albums")
        await page.fill("#new-album input[name=name]", "Beach")
        await page.click("#new-album button[type=submit]")
        album = page.locator("li.album").first
        await expect(album.locator(".album-name")).to_have_text("Beach")
        album_id = await db.fetchval("SELECT id FROM albums")

        await tab.goto("/dashboard")  # an upload into the album that expires in a day
        await page.select_option("#upload-album", str(album_id))
        await page.select_option("#upload-expiry", "86400")
        await page.set_input_files("#file-input", files=[
            {"name": "a.jpg", "mimeType": "image/jpeg", "buffer": samples.jpeg((120, 80))}])
        card = page.locator("#my-images li.card")
        await expect(card).to_have_count(1)
        await expect(card.locator(".card-expiry")).to_be_visible()
        image = await db.fetchone("SELECT id, expires_at FROM images")
        assert 86400 - 120 < _seconds_left(image["expires_at"]) <= 86400

        await tab.goto("/dashboard/albums")
        await album.locator("details.album-edit summary").click()
        await album.locator("input[name=password]").fill("sesame")
        await album.locator("select[name=visibility]").select_option("unlisted")
        await album.locator("details.album-edit button[type=submit]").click()
        await expect(page.locator(".album-locked")).to_have_text("password set")
        assert "sesame" not in await page.content()
        href = await album.locator("a.album-page-link").get_attribute("href")
        assert href == f"/a/{album_id}"

        visitor = await open_tab(browser, site)  # another browser context: no session
        await visitor.goto(href)
        await expect(visitor.page.locator("#album-password-form")).to_be_visible()
        assert image["id"] not in await visitor.page.content()
        await visitor.page.fill("input[name=password]", "sesame")
        await visitor.page.click("#album-password-form button[type=submit]")
        await expect(visitor.page.locator("#album li.tile img")).to_have_count(1)
        visitor.assert_clean()

        await tab.goto("/dashboard")  # the card's edit form: expire in an hour instead
        card = page.locator(f'li.card[data-image-id="{image["id"]}"]')
        await card.locator("details.card-edit summary").click()
        await expect(card.locator("select[name=expires] option").first).to_contain_text(
            "Keep current (20")
        await card.locator("select[name=expires]").select_option("3600")
        await card.locator("select[name=is_public]").select_option("private")
        await card.locator("details.card-edit button[type=submit]").click()
        await expect(page.locator(".flash, .alert").first).to_contain_text("Image saved.")
        row = await db.fetchone("SELECT visibility, expires_at FROM images")
        assert row["visibility"] == "private"
        assert 3600 - 120 < _seconds_left(row["expires_at"]) <= 3600

        card = page.locator(f'li.card[data-image-id="{image["id"]}"]')  # now private
        await card.locator("select[name=link_expires_in]").select_option("604800")
        await card.locator("[data-signed-link-button]").click()
        await expect(card.locator("[data-signed-link-button]")).to_have_text("Copied!")
        shown = card.locator(".signed-link-url")
        await expect(shown).to_be_visible()
        url = await shown.input_value()
        assert f"/img/{image['id']}." in url and "sig=" in url
        assert await page.evaluate("() => navigator.clipboard.readText()") == url
        response = await visitor.page.context.request.get(url)  # no session: the link alone
        assert response.status == 200
        await tab.screenshot("dashboard-sharing.png")
        tab.assert_clean()
