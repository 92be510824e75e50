"""Two-factor sign-in in a real headless Chromium: set up from the account page, then sign in
with a code. Codes come from pyotp, as from a phone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp
from browser import expect, launch, open_tab, requires_browser, start_site

pytestmark = requires_browser


async def test_enrol_then_sign_in_with_a_code(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    await site.new_user("dora")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await tab.login("dora")
        page = tab.page
        await page.click("a.who")  # the user name in the top bar: the account page
        await page.click("#totp-begin-form button[type=submit]")
        qr = page.locator("#totp-qr")
        await expect(qr).to_be_visible()
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
        secret = (await page.locator("#totp-secret").inner_text()).strip()
        await page.fill("#totp-confirm-form input[name=code]", pyotp.TOTP(secret).now())
        await page.click("#totp-confirm-form button[type=submit]")
        await expect(page.locator("#recovery-codes li")).to_have_count(10)
        await tab.screenshot("twofactor-recovery-codes.png")
        await page.click("#logout-button")
        await page.wait_for_url(site.base + "/")

        await tab.goto("/login")
        await page.fill("input[name=username]", "dora")
        await page.fill("input[name=password]", "correct horse battery")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_url(site.base + "/login/totp")
        code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step: never used yet
        await page.fill("#totp-form input[name=code]", code)
        await page.click("#totp-form button[type=submit]")
        await page.wait_for_url(site.base + "/dashboard")
        await expect(page.locator(".who")).to_have_text("dora")
        tab.assert_clean()
