"""The invite flow in a real headless Chromium: an admin makes an invite on the admin pages,
another browser (a new context: no shared cookies) opens the link, signs up and lands on its
dashboard, signed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser import PASSWORD, expect, launch, open_tab, requires_browser, start_site

from pichub.keys import DB
from pichub.services import accounts

pytestmark = requires_browser


async def test_invite_made_on_the_admin_page_signs_a_new_user_up(aiohttp_server: Any,
                                                                 tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path, auth={"registration": "invite"})
    await accounts.create_user(site.app[DB], "root", PASSWORD, is_admin=True)
    async with launch() as browser:
        admin = await open_tab(browser, site)
        await admin.login("root")
        await admin.page.click("#admin-link")
        await admin.page.click("nav.admin-tabs >> text=Invites")
        await admin.page.wait_for_url(admin.url("/admin/invites"))
        await admin.page.fill("#new-invite-form input[name=note]", "for dora")
        await admin.page.click("#new-invite-form button[type=submit]")
        link = await admin.page.locator("#new-invite-url").input_value()
        assert "/signup?invite=" in link
        await expect(admin.page.locator("#invite-table tbody tr")).to_have_count(1)
        await admin.screenshot("admin-invites.png")

        guest = await open_tab(browser, site)  # a new context: another person's browser
        await guest.page.goto(link)
        await guest.page.fill("#signup-form input[name=username]", "dora")
        await guest.page.fill("#signup-form input[name=password]", PASSWORD)
        await guest.page.fill("#signup-form input[name=confirm_password]", PASSWORD)
        await guest.screenshot("signup.png")
        await guest.page.click("#signup-form button[type=submit]")
        await guest.page.wait_for_url(guest.url("/dashboard"))
        await expect(guest.page.locator(".who")).to_have_text("dora")

        await admin.goto("/admin/invites")  # (a reload would post the form again)
        await expect(admin.page.locator("#invite-table tbody tr")).to_contain_text("used by dora")
        late = await open_tab(browser, site)  # someone else with the same link: it is used
        await late.page.goto(link)
        await expect(late.page.locator("main")).to_contain_text("cannot be used")
        for tab in (admin, guest):  # (the late one's console reports the page's 403)
            tab.assert_clean()
    assert await accounts.get_user(site.app[DB], "dora") is not None
