"""The web UI in a real headless Chromium: what a person does, end to end.

Screenshots of the dashboard and the square land in test-artifacts/ (gitignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import samples
from browser import Site, Tab, expect, launch, open_tab, requires_browser, start_site

pytestmark = requires_browser

FILES = [("sunset beach.jpg", "image/jpeg", samples.jpeg((900, 600))),
         ("alpha.png", "image/png", samples.png_alpha((400, 300))),
         ("dance.gif", "image/gif", samples.animated_gif(3, (320, 240)))]
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


async def _api(site: Site, tab: Tab, method: str, path: str, token: str,
               **kwargs: Any) -> tuple[int, Any]:
    """Call the JSON API from the test (not the browser), as a client with a token."""
    response = await tab.page.context.request.fetch(
        site.base + path, method=method, headers={"Authorization": f"Bearer {token}"},
        **kwargs)
    return response.status, await response.json()


async def _upload_three(tab: Tab) -> list[str]:
    """Upload FILES with the file picker; returns the new cards' image ids."""
    page = tab.page
    await page.set_input_files("#file-input", files=[
        {"name": name, "mimeType": mime, "buffer": data} for name, mime, data in FILES])
    bars = page.locator("#upload-list progress")
    await expect(bars).to_have_count(3)
    for index in range(3):
        await expect(bars.nth(index)).to_have_attribute("value", "100")
    await expect(page.locator("#upload-list .upload-item.done")).to_have_count(3)
    cards = page.locator("#my-images li.card")
    await expect(cards).to_have_count(3)
    return [await cards.nth(i).get_attribute("data-image-id") or "" for i in range(3)]


async def _assert_thumbnails_loaded(tab: Tab, ids: list[str]) -> None:
    for image_id in ids:
        img = tab.page.locator(f'li.card[data-image-id="{image_id}"] img')
        src = await img.get_attribute("src") or ""
        assert src.startswith(f"/img/{image_id}."), src
        await img.scroll_into_view_if_needed()
        await expect(img).to_have_js_property("complete", True)
        assert await img.evaluate("el => el.naturalWidth") > 0, src


async def _check_copy_buttons(tab: Tab, image: dict[str, Any]) -> None:
    card = tab.page.locator(f'li.card[data-image-id="{image["id"]}"]')
    for kind in ("url", "markdown", "html", "bbcode"):
        button = card.locator(f'button[data-kind="{kind}"]')
        assert await button.get_attribute("data-copy") == image["links"][kind]
    await card.locator('button[data-kind="markdown"]').click()
    await expect(card.locator('button[data-kind="markdown"]')).to_have_text("Copied!")
    copied = await tab.page.evaluate("() => navigator.clipboard.readText()")
    assert copied == image["links"]["markdown"]


async def _move_to_new_album(tab: Tab, image_id: str, name: str) -> None:
    page = tab.page
    await page.click('a[href="/dashboard/albums"]')
    await page.fill("#new-album input[name=name]", name)
    await page.click("#new-album button[type=submit]")
    await expect(page.locator(".flash")).to_contain_text("created")
    await page.click('nav.nav a[href="/dashboard"]')
    card = page.locator(f'li.card[data-image-id="{image_id}"]')
    await card.locator("details.card-edit summary").click()
    await card.locator("select[name=album_id]").select_option(label=name)
    await card.locator("select[name=is_public]").select_option("0")
    await card.locator("details.card-edit button[type=submit]").click()
    await expect(page.locator(".flash")).to_have_text("Image saved.")


async def test_upload_share_organise_and_sign_out(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    token = await site.new_user("carol")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await tab.login("carol")
        ids = await _upload_three(tab)
        await _assert_thumbnails_loaded(tab, ids)
        status, listing = await _api(site, tab, "GET", "/api/v1/images", token)
        assert status == 200 and {i["id"] for i in listing["data"]} == set(ids)
        await _check_copy_buttons(tab, listing["data"][0])
        await tab.screenshot("dashboard.png")

        private_id = ids[1]
        await _move_to_new_album(tab, private_id, "Holidays")
        status, body = await _api(site, tab, "GET", f"/api/v1/images/{private_id}", token)
        album_id = body["data"]["album_id"]
        assert album_id is not None and body["data"]["is_public"] is False
        await tab.goto(f"/dashboard?album_id={album_id}")
        await expect(tab.page.locator("#my-images li.card")).to_have_count(1)

        await tab.page.click("a.brand")
        tiles = tab.page.locator("#square li.tile a")
        await expect(tiles).to_have_count(2)
        hrefs = {await tiles.nth(i).get_attribute("href") for i in range(2)}
        assert hrefs == {f"/i/{i}" for i in ids if i != private_id}
        await tab.screenshot("square.png")

        await tab.page.click("#logout-button")
        await tab.page.wait_for_url(site.base + "/")
        await expect(tab.page.locator(".account a")).to_have_text("Sign in")
        await tab.goto("/dashboard")
        assert tab.page.url.startswith(site.base + "/login?next=")
        tab.assert_clean()


async def test_tokens_created_in_the_browser_work_until_revoked(aiohttp_server: Any,
                                                                tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    await site.new_user("dora")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await tab.login("dora")
        page = tab.page
        await page.click('a[href="/dashboard/tokens"]')
        await page.fill("#new-token-form input[name=name]", "ci script")
        await page.select_option("#new-token-form select[name=scope]", "read")
        await page.click("#new-token-form button[type=submit]")
        token = await page.locator("#new-token-value").input_value()
        assert token.startswith("ph_")
        status, _ = await _api(site, tab, "GET", "/api/v1/images", token)
        assert status == 200
        await page.goto(site.base + "/dashboard/tokens")  # shown once: gone on reload
        await expect(page.locator("#new-token-value")).to_have_count(0)
        row = page.locator("#token-table tr", has_text="ci script")
        await row.locator("button", has_text="Revoke").click()  # confirm() is accepted
        await expect(page.locator(".flash")).to_contain_text("revoked")
        await expect(page.locator("#token-table tr", has_text="ci script")).to_have_count(0)
        status, body = await _api(site, tab, "GET", "/api/v1/images", token)
        assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
        tab.assert_clean()


async def test_script_in_names_renders_as_text(aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    token = await site.new_user("eve")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await _api(site, tab, "POST", "/api/v1/albums", token,
                   data={"name": XSS[:100], "description": XSS})
        status, body = await _api(site, tab, "POST", "/api/v1/upload", token, multipart={
            "files[]": {"name": "x.jpg", "mimeType": "image/jpeg", "buffer": samples.jpeg()},
            "description": XSS})
        assert status == 201
        image_id = body["data"][0]["id"]
        await tab.login("eve")
        for path, text in [("/dashboard", ".card-desc"), ("/dashboard/albums", ".album-desc"),
                           (f"/i/{image_id}", ".image-desc")]:
            await tab.goto(path)
            await expect(tab.page.locator(text).first).to_have_text(XSS)
            assert await tab.page.evaluate("() => window.__xss") is None, path
            assert await tab.page.locator("img[src=x]").count() == 0, path
        await tab.goto("/dashboard/albums")
        await expect(tab.page.locator(".album-name")).to_have_text(XSS[:100])
        tab.assert_clean()


async def test_state_changing_requests_without_the_csrf_token_get_403(
        aiohttp_server: Any, tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    await site.new_user("finn")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await tab.login("finn")
        request = tab.page.context.request  # shares the browser's cookies (the session)
        response = await request.post(site.base + "/dashboard/albums",
                                      form={"name": "forged"})
        assert response.status == 403
        response = await request.post(site.base + "/dashboard/upload", multipart={
            "files[]": {"name": "a.jpg", "mimeType": "image/jpeg", "buffer": samples.jpeg()}})
        assert response.status == 403
        await tab.goto("/dashboard/albums")
        await expect(tab.page.locator(".empty")).to_have_text("No albums yet.")
        tab.assert_clean()


async def test_docs_try_it_out_with_the_users_token(aiohttp_server: Any,
                                                    tmp_path: Path) -> None:
    site = await start_site(aiohttp_server, tmp_path)
    await site.new_user("gail")
    async with launch() as browser:
        tab = await open_tab(browser, site)
        await tab.login("gail")
        page = tab.page
        await page.click('a[href="/dashboard/tokens"]')
        await page.click("#new-token-form button[type=submit]")
        await page.click("button[data-docs-token]")  # hands the token to /docs (this tab)
        await page.wait_for_url(site.base + "/docs")
        block = page.locator("#operations-Images-listImages")
        await block.locator(".opblock-summary").click()
        await block.get_by_role("button", name="Try it out").click()
        await block.get_by_role("button", name="Execute").click()
        status = block.locator(".live-responses-table .response .response-col_status").first
        await expect(status).to_have_text("200")
        await expect(block.locator(".live-responses-table")).to_contain_text('"success": true')
        tab.assert_clean()

