"""The interface in English and Simplified Chinese (issue 17, item 5): the locale from the
`lang` cookie or `Accept-Language`, the footer's switcher, `<html lang>`, dates and numbers per
locale, a complete catalogue whose committed .mo matches its .po, and an English JSON API."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from html import unescape
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import samples
from aiohttp import FormData
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from browser import PASSWORD, FormClient, form_client

from pichub.keys import DB
from pichub.services import accounts
from pichub.web.ui import i18n

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "pichub" / "locale" / "zh_CN" / "LC_MESSAGES"
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def _lang(html: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', html)
    assert found, html[:200]
    return found.group(1)


async def _admin(aiohttp_client: Any, tmp_path: Path) -> FormClient:
    ui = await form_client(aiohttp_client, tmp_path)
    await accounts.create_user(ui.app[DB], "root", PASSWORD, is_admin=True)
    await ui.login("root")
    return ui


async def test_login_page_in_chinese_and_english_by_accept_language(aiohttp_client: Any,
                                                                    tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    status, html = await ui.text("/login", headers=ZH)
    assert status == 200 and _lang(html) == "zh-CN"
    assert "<title>登录 — PicHub</title>" in html and "用户名" in html and "密码" in html
    assert "Username" not in html
    status, html = await ui.text("/login", headers=EN)
    assert status == 200 and _lang(html) == "en"
    assert "<title>Sign in — PicHub</title>" in html and "Username" in html and "用户名" not in html
    status, html = await ui.text("/login")  # no header at all: English
    assert _lang(html) == "en" and "Username" in html


@pytest.mark.parametrize(("header", "lang"), [
    ("zh", "zh-CN"), ("zh-CN", "zh-CN"), ("zh-Hans", "zh-CN"), ("zh-SG", "zh-CN"),
    ("fr-FR, zh;q=0.5", "zh-CN"), ("en;q=0.9, zh-CN", "zh-CN"), ("zh;q=0.4, en;q=0.8", "en"),
    ("de-DE", "en"), ("zh-TW", "en"), ("", "en"), ("zh;q=abc", "en"),
])
async def test_accept_language_negotiation(aiohttp_client: Any, tmp_path: Path,
                                           header: str, lang: str) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    _, html = await ui.text("/login", headers={"Accept-Language": header})
    assert _lang(html) == lang


async def test_dashboard_and_flash_messages_in_chinese(aiohttp_client: Any,
                                                       tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    await ui.login("alice")
    status, html = await ui.text("/dashboard", headers=ZH)
    assert status == 200 and _lang(html) == "zh-CN"
    for text in ("我的图片", "相册", "API 令牌", "上传", "退出登录", "把图片拖到这里"):
        assert text in html, text
    assert "My images" not in html and "Drop images here" not in html
    # A flash message is written in the language of the request that made it.
    status, _, resp = await ui.post("/dashboard/albums", {"name": "Trip"}, headers=ZH)
    assert status == 303
    _, html = await ui.text(resp.headers["Location"], headers=ZH)
    assert "相册“Trip”已创建。" in html
    _, html = await ui.text("/dashboard", headers=EN)
    assert _lang(html) == "en" and "My images" in html and "我的图片" not in html


async def test_admin_overview_in_both_languages(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _admin(aiohttp_client, tmp_path)
    status, html = await ui.text("/admin", headers=ZH)
    assert status == 200 and _lang(html) == "zh-CN"
    for text in ("<title>管理 — PicHub</title>", "概览", "用户", "磁盘剩余空间",
                 "每日上传量（最近 30 天，UTC）", "2（2 个启用）"):
        assert text in html, text
    assert "Free disk" not in html
    status, html = await ui.text("/admin", headers=EN)
    assert status == 200 and "Free disk" in html and "2 (2 active)" in html


async def test_switcher_sets_the_cookie_and_it_wins_over_accept_language(
        aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    _, html = await ui.text("/login", headers=EN)
    assert 'href="/lang/zh-CN?next=/login"' in html  # the footer's switcher
    async with ui.client.get("/lang/zh-CN", params={"next": "/login"},
                             allow_redirects=False, headers=EN) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/login"
        assert resp.cookies["lang"].value == "zh-CN"
    _, html = await ui.text("/login", headers=EN)  # the cookie beats Accept-Language
    assert _lang(html) == "zh-CN" and "用户名" in html
    assert 'href="/lang/en?next=/login"' in html
    async with ui.client.get("/lang/en", params={"next": "/login"},
                             allow_redirects=False, headers=ZH) as resp:
        assert resp.status == 303 and resp.cookies["lang"].value == "en"
    _, html = await ui.text("/login", headers=ZH)
    assert _lang(html) == "en" and "Username" in html


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil",
                                    "javascript:alert(1)", ""])
async def test_switcher_goes_back_only_to_this_site(aiohttp_client: Any, tmp_path: Path,
                                                    target: str) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    async with ui.client.get("/lang/zh-CN", params={"next": target},
                             allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/"


async def test_switcher_refuses_unknown_languages(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    async with ui.client.get("/lang/fr", allow_redirects=False) as resp:
        assert resp.status == 404 and "lang" not in resp.cookies


async def test_api_errors_stay_english(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    for headers in (ZH, {**ZH, "Cookie": "lang=zh-CN"}):
        async with ui.client.get("/api/v1/images", headers=headers) as resp:
            body = await resp.json()
        assert resp.status == 401 and body["error"]["code"] == "UNAUTHORIZED"
        assert body["error"]["message"].isascii()
        async with ui.client.get("/api/v1/images/nope", headers={
                **headers, "Authorization": "Bearer wrong"}) as resp:
            assert (await resp.json())["error"]["message"].isascii()


def test_dates_and_numbers_follow_the_locale() -> None:
    from pichub.web.ui.templates import filesize, when

    moment = datetime(2026, 11, 27, 6, 50, tzinfo=UTC)
    token = i18n._locale.set("zh_CN")
    try:
        assert i18n.moment(moment) == "2026年11月27日 06:50 UTC"
        assert when("2026-11-27T06:50:33Z") == "2026年11月27日 06:50 UTC"
        assert i18n.number(1234567) == "1,234,567"
        assert filesize(1536) == "1.5 KB"
        assert i18n.gettext("Album saved.") == "相册已保存。"
    finally:
        i18n._locale.reset(token)
    assert when("2026-11-27T06:50:33Z") == "2026-11-27 06:50 UTC"
    assert i18n.number(1234567) == "1,234,567" and filesize(1023) == "1,023 B"
    assert i18n.gettext("Album saved.") == "Album saved."


def _extracted() -> set[str | tuple[str, ...]]:
    """Every msgid of the templates and pichub/web/ui, by Babel's extraction as babel.cfg says."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options = parse_mapping_cfg(cfg)
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options):
        found.add(message)
    return found


def test_every_interface_string_is_translated_to_chinese() -> None:
    extracted = _extracted()
    assert len(extracted) > 300  # the extraction saw the templates and the views
    with open(CATALOGUE / "messages.po", "rb") as po:
        catalogue = read_po(po)
    translated: dict[str | tuple[str, ...], Any] = {}
    for message in catalogue:
        if message.id:
            assert not message.fuzzy, message.id
            translated[message.id if isinstance(message.id, str) else tuple(message.id)] = \
                message.string
    missing = [msgid for msgid in extracted if msgid not in translated]
    assert not missing, f"not in the zh_CN catalogue (pybabel update): {missing}"
    empty = [msgid for msgid, text in translated.items()
             if not (all(text) if isinstance(text, tuple) else text)]
    assert not empty, f"untranslated in zh_CN: {empty}"
    # Placeholders survive translation (a lost %(name)s would raise or drop a value).
    for msgid, text in translated.items():
        source = " ".join(msgid) if isinstance(msgid, tuple) else msgid
        target = " ".join(text) if isinstance(text, tuple) else text
        assert set(PLACEHOLDER.findall(source)) == set(PLACEHOLDER.findall(target)), msgid


def test_the_committed_mo_is_compiled_from_the_po() -> None:
    with open(CATALOGUE / "messages.po", "rb") as po:
        catalogue = read_po(po)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    shipped = (resources.files("pichub") / "locale" / "zh_CN" / "LC_MESSAGES"
               / "messages.mo").read_bytes()
    assert shipped == compiled.getvalue(), "run: pybabel compile -d pichub/locale"


async def test_every_page_renders_in_chinese(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await _admin(aiohttp_client, tmp_path)
    ui.client.session.cookie_jar.update_cookies({"lang": "zh-CN"})
    token = await ui.token()
    data = FormData()
    data.add_field("files[]", io.BytesIO(samples.jpeg()), filename="cat.jpg",
                   content_type="image/jpeg")
    data.add_field("is_public", "false")
    async with ui.client.post("/dashboard/upload", data=data,
                              headers={"X-CSRF-Token": token}) as resp:
        assert resp.status == 201
        image_id = (await resp.json())["data"][0]["id"]
    await ui.post("/dashboard/albums", {"name": "Trip"})
    await ui.post("/dashboard/webhooks", {"url": "https://example.com/hook"})
    pages = {"/": "公开广场", "/dashboard": "我的图片", "/dashboard/albums": "新建相册",
             "/dashboard/tokens": "新建令牌", "/dashboard/webhooks": "新建 Webhook",
             "/dashboard/integrations": "双击 .sxcu 文件", "/account": "修改密码",
             "/docs": "API 参考", "/admin": "概览", "/admin/users": "新建用户",
             "/admin/images": "全部图片", "/admin/tokens": "所有用户的全部有效令牌",
             "/admin/invites": "新建邀请", f"/i/{image_id}": "上传时间", "/logout": "退出登录",
             "/i/nothing-here": "未找到"}
    for path, text in pages.items():
        status, html = await ui.text(path)
        assert status in (200, 404) and _lang(html) == "zh-CN", path
        assert text in html, path
    _, html = await ui.text("/dashboard")
    assert "1 小时后" in html and "私有" in html and "编辑" in html  # the card macros


async def test_the_scripts_get_their_messages_in_the_page_language(aiohttp_client: Any,
                                                                   tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    _, html = await ui.text("/login", headers=ZH)
    found = re.search(r'<meta name="pichub-messages" content="([^"]*)">', html)
    assert found
    messages = json.loads(unescape(found.group(1)))
    assert set(messages) == set(i18n.JS_MESSAGES) and messages["Copied!"] == "已复制！"
    assert messages["Larger than {mb} MB"] == "超过 {mb} MB"
    _, html = await ui.text("/login", headers=EN)
    assert '<meta name="pichub-messages" content="{}">' in html


async def test_an_error_pages_switcher_goes_home(aiohttp_client: Any, tmp_path: Path) -> None:
    ui = await form_client(aiohttp_client, tmp_path)
    status, html = await ui.text("/i/no-such-image", headers=ZH)
    assert status == 404 and "未找到" in html and "no-such-image" not in html
    assert "<p>图片不存在</p>" in html  # the service's message, known to the catalogue
    assert 'href="/lang/en?next=/"' in html
