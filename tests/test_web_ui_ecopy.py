"""Flow A, the certified e-copy, in headless Chromium against a simulated daemon: by touch
(card, consent, face with a liveness challenge, pages, OCR review) and by the physical buttons
(consent declined, staff confirm with their PIN), page problems told plainly, retakes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests import pages as docs
from tests import web_ui_helpers as web
from tests.web_ui_helpers import (
    HOME,
    TECH_PIN,
    card,
    card_scene,
    focused_id,
    headline,
    page_scene,
    pass_face_check,
    press,
    set_paper,
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
    assert headline(page) == "Đặt thẻ Căn cước hoặc Căn cước công dân dưới camera"
    page.wait_for_function(
        "() => document.getElementById('guidance').textContent.includes('Không tìm thấy')"
    )
    assert "Không tìm thấy thẻ" in page.inner_text("#guidance")
    shoot(page, "11-ecopy-identify")
    scenes.show(card_scene())
    page.wait_for_url("**/a/consent", timeout=20000)
    assert "Ảnh khuôn mặt và đặc trưng khuôn mặt" in page.inner_text("#consent-text")
    # The whole consent is read aloud: heading and every block, in parts the endpoint takes.
    parts = page.evaluate("window.kioskSpeech.screenParts()")
    assert len(parts) >= 3 and all(len(p) <= 600 for p in parts)
    said = " ".join(parts)
    blocks = page.locator("#consent-text p").all_inner_texts()
    assert len(blocks) == 8 and all(b.strip() in said for b in blocks)
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
    assert page.inner_text("#original-1") == "Bản gốc 1"
    page.click("#next-original")  # "Thêm bản gốc khác": the next pages are another original
    assert page.inner_text("#original-2") == "Bản gốc 2"
    assert page.locator(".empty-original").count() == 1
    shoot(page, "14-ecopy-pages")
    page.click("#pages-done")
    page.wait_for_url("**/a/review", timeout=60000)
    assert page.inner_text(".doc-type") == "Giấy khai sinh"
    assert page.locator(".name-check").count() == 1
    shoot(page, "15-ecopy-review")
    page.click("#confirm-review")
    page.wait_for_url("**/a/fee")
    assert page.inner_text("#fee-amount") == "2.000 đ"  # one page at 2,000 VND
    assert headline(page) == "Phí chứng thực bản sao"  # a phí since 2017, not a lệ phí
    assert "Lệ phí" not in page.inner_text("main")
    assert page.inner_text("#fee-basis") == "Căn cứ pháp lý: Thông tư 226/2016/TT-BTC, Điều 4"
    assert page.locator("#payment-qr").count() == 1 and page.is_disabled("#issue")
    shoot(page, "16-ecopy-fee")
    page.click("#simulate-paid")  # central's confirmation, in simulation
    assert page.inner_text("#paid") == "Đã nhận thanh toán. Xin cảm ơn."
    for typed, message in (
        ("<script>alert(1)</script>", "Vui lòng không dùng các ký tự < > { } [ ] \\ ` $."),
        ("a" * 130 + "@example.vn", "Tối đa 120 ký tự."),
        (
            "không phải email",
            "Vui lòng nhập địa chỉ email (ten@example.vn) hoặc mã ví điện tử, "
            "ví dụ MoMo:0912345678.",
        ),
    ):
        page.fill("#contact", typed)
        page.click("#issue")
        assert page.inner_text("#error-contact") == message
    shoot(page, "17-ecopy-fee-bad-input")
    page.fill("#contact", "nguoidan@example.vn")
    page.click("#issue")
    # One certification request; the simulated kiosk has no central to answer: the slip.
    page.wait_for_url("**/a/slip", timeout=30000)
    assert headline(page) == "Yêu cầu của bạn đã được tiếp nhận"
    code = page.inner_text("#pending-1 .code")
    assert re.fullmatch(r"[A-Z0-9-]+", code) and "TEST-UI" in code
    assert page.locator("tr.pending").count() == 1  # the empty second original sent nothing
    assert page.inner_text("#pending-1 .channel") == "Thư điện tử"
    assert re.fullmatch(r"17:00 \d\d/\d\d/20\d\d", page.inner_text("#pending-1 .due"))
    assert page.inner_text("#print-note").startswith("Vui lòng lấy phiếu hẹn ở máy in")
    jobs = daemon.get("/api/printer/jobs")[1]["jobs"]
    assert jobs[0]["kind"] == "slip" and jobs[0]["status"] == "printed"
    shoot(page, "18-ecopy-slip")
    page.click("#print-consent")
    assert "Đã in xác nhận đồng ý của bạn." in page.inner_text("main")
    page.click("#done")
    page.wait_for_url(HOME)
    page.goto("/a/slip")  # the finished visit's session is gone
    page.wait_for_url(HOME)
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
    # Staff are called, and the screen says so and waits for them (no idle wipe).
    assert page.inner_text("#staff-called") == "Đã gọi nhân viên. Vui lòng ở lại ki-ốt."
    assert page.get_attribute("body", "data-idle-free") == "true"
    # A refusal still leaves what needs no personal data: the guide and a ticket, from the start.
    assert "hướng dẫn thủ tục và lấy số thứ tự" in page.inner_text("#no-data-services")
    assert page.get_attribute("#declined-home", "href") == "/"
    shoot(page, "19-ecopy-staff")
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
    # The diploma names someone else than the card: the warning says so and OK would retake
    # the pages (the safe choice); ◀ reaches "Đúng, tiếp tục".
    assert page.locator("#name-warning").is_visible()
    assert focused_id(page) == "back-to-pages"
    press(daemon, "back")
    page.wait_for_function("() => document.activeElement.id === 'confirm-review'")
    press(daemon, "ok")
    page.wait_for_url("**/a/fee")
    set_paper(daemon.config.parent, "out")  # the printer runs out of paper meanwhile
    try:
        page.click("#simulate-paid")
        wait_buttons(page)
        assert focused_id(page) == "issue"
        press(daemon, "ok")
        page.wait_for_url("**/a/slip", timeout=30000)
        # The request is sent and kept; the slip waits for a reprint; the citizen is told.
        assert page.inner_text("#pending-1 .code")
        assert "Không in được phiếu hẹn" in page.inner_text("#print-note")
        shoot(page, "21-ecopy-slip-printer-out")
        failed = daemon.get("/api/printer/jobs?status=failed")[1]["jobs"]
        assert failed and failed[0]["kind"] == "slip"
    finally:
        set_paper(daemon.config.parent, "ok")


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
    shoot(page, "20-ecopy-page-problem")
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
