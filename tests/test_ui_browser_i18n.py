"""The Chinese interface in a real headless Chromium: the footer's switcher, then the scripts'
own messages (upload status, copy buttons) in Chinese, with no CSP or console errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import samples
from browser import expect, launch, open_tab, requires_browser, start_site

pytestmark = requires_browser


async def test_switch_to_chinese_and_use_the_dashboard(aiohttp_server: Any,
                                                       tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    await site.new_user("alice")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        page = tab.page
        await tab.goto("/login")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await page.click(".lang-switch a[lang=zh-CN]")
        await page.wait_for_url(tab.url("/login"))
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.locator("h1")).to_have_text("登录")
        await tab.login("alice")
        await expect(page.locator("h1")).to_have_text("我的图片")
        await page.set_input_files("#file-input", files=[
            {"name": "sea.jpg", "mimeType": "image/jpeg", "buffer": samples.jpeg((300, 200))}])
        done = page.locator("#upload-list .upload-item.done")
        await expect(done).to_have_count(1)
        await expect(done).to_contain_text("已上传")
        copy = page.locator('#my-images li.card button[data-kind="url"]').first
        await copy.click()
        await expect(copy).to_have_text("已复制！")
        await tab.screenshot("dashboard-zh-CN.png")
        # Back to English from the footer, on the same page.
        await page.click(".lang-switch a[lang=en]")
        await page.wait_for_url(tab.url("/dashboard"))
        await expect(page.locator("h1")).to_have_text("My images")
        tab.assert_clean()
