"""The idle timeout in headless Chromium, on a kiosk of its own with a short timeout: the
countdown warning, "I am still here", then everything the citizen entered is wiped (the
identification in progress and the language); and the technician PIN lock after five wrong
tries, which a reload does not lift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import web_ui_helpers as web
from tests.web_ui_helpers import HOME, card_scene, running_kiosk, shoot

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)


def test_idle_warning_counts_down_then_wipes_everything(browser, tmp_path: Path) -> None:
    with running_kiosk(tmp_path, idle_s=5, warn_s=3) as (daemon, scenes):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=daemon.base)
        pg = context.new_page()
        pg.goto("/")
        pg.click("text=English")  # a citizen chose English and began an e-copy
        scenes.show(card_scene())
        pg.goto("/a/identify")
        pg.wait_for_url("**/a/consent", timeout=20000)
        pg.wait_for_selector("#idle-warning:not([hidden])", timeout=10000)
        assert "Are you still there?" in pg.inner_text("#idle-warning")
        assert 1 <= int(pg.inner_text("#idle-count")) <= 3
        pg.click("#idle-stay")  # the citizen is still there: nothing is lost
        assert pg.is_hidden("#idle-warning") and pg.url.endswith("/a/consent")
        pg.wait_for_selector("#idle-warning:not([hidden])", timeout=10000)
        pg.wait_for_url(HOME, timeout=10000)  # then walked away
        assert pg.inner_text("h1") == "Xin chào! Bạn cần làm gì?"  # the language went too
        pg.goto("/a/consent")  # and the identification in progress
        assert pg.url.endswith("/a/")
        pg.wait_for_selector("#idle-warning:not([hidden])", timeout=10000)
        shoot(pg, "08-idle-warning")
        lines = [
            json.loads(x) for x in daemon.log_path.read_text().splitlines() if x.startswith("{")
        ]
        assert any(x.get("msg", x.get("message", "")).startswith("idle timeout") for x in lines)
        # Five wrong PINs lock the technician screen for 15 minutes, across a page reload.
        pg.goto("/technician/")
        for _ in range(5):
            pg.fill("#pin", "1111")
            pg.click("#login")
        assert "Tạm khóa 15 phút" in pg.inner_text("#pin-error")
        pg.goto("/technician/")
        assert "Tạm khóa" in pg.inner_text("#pin-error")  # the shared PIN's own lock:
        assert pg.locator("#name").count() == 1  # a named account still signs in (pin.py)
        shoot(pg, "42-technician-locked")
        context.close()
