"""Paste to upload and the "From a URL" box of the dashboard, in a real headless Chromium.

The paste is a real `ClipboardEvent` whose `DataTransfer` carries an image `File`,
dispatched on the page as the browser does for Ctrl/Cmd+V; the page's own script
(under the strict CSP) has to pick it up and upload it. The URL box fetches from
a raw local origin on 127.0.0.1 (private networks allowed for it).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import samples
from browser import Tab, expect, launch, open_tab, requires_browser, start_site

from tests.support import heic
from tests.support import origin as o
from tests.support.origin import Origin

pytestmark = requires_browser

SCREENSHOT = samples.png_alpha((320, 200))
PASTE = """async ([b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: type }));
  const event = new ClipboardEvent("paste", { clipboardData: data, bubbles: true,
                                              cancelable: true });
  document.body.dispatchEvent(event);
  return event.defaultPrevented;
}"""


async def _paste_file(tab: Tab, data: bytes, name: str, mime: str) -> bool:
    return bool(await tab.page.evaluate(PASTE, [base64.b64encode(data).decode(), name, mime]))


async def _images(tab: Tab, token: str) -> list[dict[str, Any]]:
    response = await tab.page.context.request.get(
        tab.site.base + "/api/v1/images", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    return list((await response.json())["data"])


async def test_paste_an_image_and_upload_from_a_url(aiohttp_server: Any,
                                                    tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path,
                            storage={"fetch_allow_private_networks": True})
    token = await site.new_user("paula")
    remote = await Origin().start()
    remote.routes["/remote%20cat.jpg"] = o.body(samples.jpeg((300, 200)), "image/jpeg")
    try:
        async with launch() as browser:
            tab = await open_tab(browser, site)
            await tab.login("paula")
            page = tab.page
            await page.uncheck("input[name=convertToWebP]")  # the options in force apply

            assert await _paste_file(tab, SCREENSHOT, "image.png", "image/png")
            item = page.locator("#upload-list .upload-item").first
            await expect(item).to_have_class(re.compile(r"\bdone\b"))
            await expect(item.locator("progress")).to_have_attribute("value", "100")
            await expect(item.locator(".name")).to_have_text(re.compile(r"^pasted-.*\.png$"))
            await expect(page.locator("#my-images li.card")).to_have_count(1)
            [pasted] = await _images(tab, token)
            assert pasted["original_name"].startswith("pasted-")
            assert pasted["original_name"].endswith(".png") and pasted["format"] == "png"
            assert (pasted["width"], pasted["height"]) == (320, 200)
            card = page.locator(f'li.card[data-image-id="{pasted["id"]}"] img')
            await expect(card).to_have_js_property("complete", True)
            assert await card.evaluate("el => el.naturalWidth") > 0

            await page.fill("#url-input", remote.url("/remote%20cat.jpg"))
            await page.press("#url-input", "Enter")
            await expect(page.locator("#upload-list .upload-item.done")).to_have_count(2)
            await expect(page.locator("#my-images li.card")).to_have_count(2)
            fetched = (await _images(tab, token))[0]
            assert fetched["original_name"] == "remote cat.jpg" and fetched["format"] == "jpeg"
            assert await page.input_value("#url-input") == ""

            await page.fill("#url-input", remote.url("/gone.png"))
            await page.click("#url-button")
            failed = page.locator("#upload-list .upload-item.failed")
            await expect(failed).to_contain_text("HTTP 404")
            await expect(page.locator("#my-images li.card")).to_have_count(2)

            # A link pasted outside any field waits in the URL box, not uploaded yet.
            link = "https://images.example/cat.png"
            await page.evaluate("""(link) => {
              const data = new DataTransfer();
              data.setData("text/plain", link);
              document.body.dispatchEvent(new ClipboardEvent("paste",
                { clipboardData: data, bubbles: true, cancelable: true }));
            }""", link)
            await expect(page.locator("#url-input")).to_have_value(link)
            await expect(page.locator("#upload-list .upload-item")).to_have_count(3)
            await tab.screenshot("dashboard-paste-url.png")
            # The one expected failure: the 404 URL's upload answered 422 (the response and
            # the console's note of it).
            assert len(tab.problems) == 2, tab.problems
            assert all("422" in problem for problem in tab.problems), tab.problems
        assert remote.requests == ["/remote%20cat.jpg", "/gone.png"]
    finally:
        await remote.close()


async def test_a_phone_heic_chosen_in_the_dashboard_uploads_and_shows(
        aiohttp_server: Any, tmp_path: Path) -> None:
    """The iPhone-like 12 MP HEIC (held upright) through the dashboard's file picker: stored
    as WebP, upright, its card showing the picture, the HEIC kept for its owner."""
    site = await start_site(aiohttp_server, tmp_path)
    token = await site.new_user("hana")
    photo = heic.iphone_photo()
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await tab.login("hana")
        page = tab.page
        await page.set_input_files("#file-input", files=[{
            "name": "IMG_0001.HEIC", "mimeType": "image/heic", "buffer": photo}])
        item = page.locator("#upload-list .upload-item").first
        await expect(item).to_have_class(re.compile(r"\bdone\b"), timeout=30_000)
        [image] = await _images(tab, token)
        assert image["format"] == "webp" and image["original_format"] == "heic"
        assert (image["width"], image["height"]) == (3024, 4032)  # upright
        card = page.locator(f'li.card[data-image-id="{image["id"]}"] img')
        await expect(card).to_have_js_property("complete", True)
        assert await card.evaluate("el => el.naturalWidth") > 0
        original = await page.context.request.get(
            f"{site.base}/api/v1/images/{image['id']}/original",
            headers={"Authorization": f"Bearer {token}"})
        assert original.status == 200 and await original.body() == photo
        await tab.screenshot("dashboard-heic.png")
        assert tab.problems == [], tab.problems
