"""Flow A, the certified e-copy, in headless Chromium against a simulated daemon: by touch
(card, consent, face with a liveness challenge, pages, OCR review) and by the physical buttons
(consent declined, staff confirm with their PIN), page problems told plainly, retakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import pages as docs
from tests import web_ui_helpers as web
from tests.web_ui_helpers import (
    TECH_PIN,
    card,
    card_scene,
    focused_id,
    headline,
    page_scene,
    pass_face_check,
    press,
    shoot,
    wait_buttons,
)

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)
kiosk = pytest.fixture(scope="module")(web.kiosk_session)
page = pytest.fixture(web.kiosk_page)

# --- flow A by touch: card, consent, face with liveness, pages, OCR review ---------------------


def test_ecopy_by_touch_identify_face_pages_review(page, kiosk) -> None:
    daemon, scenes = kiosk
    scenes.show(np.full((960, 1280, 3), 60, np.uint8))
    page.goto("/a/")
    page.click("#begin")
    page.wait_for_url("**/a/identify")
    assert headline(page) == "Đặt thẻ Căn cước công dân dưới camera"
    page.wait_for_function(
        "() => document.getElementById('guidance').textContent.includes('Không tìm thấy')"
    )
    assert "Không tìm thấy thẻ" in page.inner_text("#guidance")
    shoot(page, "11-ecopy-identify")
    scenes.show(card_scene())
    page.wait_for_url("**/a/consent", timeout=20000)
    assert "Tôi đồng ý để ki-ốt chụp ảnh khuôn mặt" in page.inner_text("#consent-text")
    shoot(page, "12-ecopy-consent")
    page.click("#agree")
    page.wait_for_url("**/a/face")
    shoot(page, "13-ecopy-face")
    end = pass_face_check(page, scenes)
    if end.endswith("/staff"):  # three blink challenges in a row (1 in 27): staff confirm
        page.fill("#pin", TECH_PIN)
        page.click("#confirm-staff")
    page.wait_for_url("**/a/pages", timeout=20000)
    assert headline(page) == "Đặt lần lượt từng trang của bản gốc"
    scenes.show(page_scene())
    page.wait_for_function(
        "() => document.getElementById('page-count').textContent === '1'", timeout=30000
    )
    assert page.locator(".pages figure").count() == 1
    shoot(page, "14-ecopy-pages")
    page.click("#pages-done")
    page.wait_for_url("**/a/review", timeout=60000)
    assert page.inner_text(".doc-type") == "Giấy khai sinh"
    assert page.locator(".name-check").count() == 1
    shoot(page, "15-ecopy-review")
    page.click("#confirm-review")
    page.wait_for_url("**/a/fee")
    shoot(page, "16-ecopy-fee")
    log = daemon.log_path.read_text(encoding="utf-8")
    assert card()[1].id_number not in log and card()[1].name not in log


def test_ecopy_by_buttons_declined_consent_staff_confirms(page, kiosk) -> None:
    daemon, scenes = kiosk
    scenes.show(card_scene())
    page.goto("/a/")
    wait_buttons(page)
    press(daemon, "ok")  # "Bắt đầu" has the focus
    page.wait_for_url("**/a/consent", timeout=20000)
    wait_buttons(page)
    assert focused_id(page) == "agree"
    press(daemon, "next")
    page.wait_for_function("() => document.activeElement.id === 'decline'")
    press(daemon, "ok")
    page.wait_for_url("**/a/staff")
    assert headline(page) == "Nhân viên sẽ kiểm tra danh tính của bạn"
    shoot(page, "17-ecopy-staff")
    page.fill("#pin", "12ab<b>")
    page.click("#confirm-staff")
    assert page.inner_text("#error-pin") == "Mã PIN gồm 4 đến 12 chữ số."
    page.fill("#pin", TECH_PIN)
    page.click("#confirm-staff")
    page.wait_for_url("**/a/pages")
    scenes.show(page_scene(3, "diploma"))
    page.wait_for_function(
        "() => document.getElementById('page-count').textContent === '1'", timeout=30000
    )
    wait_buttons(page)
    assert focused_id(page) == "pages-done"
    press(daemon, "ok")
    page.wait_for_url("**/a/review", timeout=60000)
    wait_buttons(page)
    press(daemon, "ok")
    page.wait_for_url("**/a/fee")


def test_page_problems_are_told_plainly_and_a_page_can_be_retaken(page, kiosk) -> None:
    _, scenes = kiosk
    scenes.show(card_scene())
    page.goto("/a/identify")
    page.wait_for_url("**/a/consent", timeout=20000)
    page.click("#decline")
    page.fill("#pin", TECH_PIN)
    page.click("#confirm-staff")
    page.wait_for_url("**/a/pages")
    scenes.show(docs.photographed(4, "other", size=docs.PREVIEW, problem="finger").image)
    page.wait_for_function(
        "() => document.getElementById('guidance').textContent.includes('ngón tay')", timeout=20000
    )
    shoot(page, "18-ecopy-page-problem")
    scenes.show(docs.photographed(4, "other", size=docs.PREVIEW, problem="cut_off").image)
    page.wait_for_function(
        "() => document.getElementById('guidance').textContent.includes('lệch ra ngoài')",
        timeout=20000,
    )
    scenes.show(page_scene(5, "other"))
    page.wait_for_function(
        "() => document.getElementById('page-count').textContent === '1'", timeout=30000
    )
    page.click("#retake-1")
    assert page.inner_text("#page-count") == "0"
    page.click("#pages-done")
    assert page.inner_text("#page-error") == "Vui lòng đặt ít nhất một trang giấy tờ."
