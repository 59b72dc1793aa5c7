"""The touchscreen UI in headless Chromium against a real simulated daemon (waitress on
127.0.0.1, the file camera, gpiozero's MockFactory buttons): every flow by touch and by the
physical buttons, what the citizen sees, bad input, out of service, the technician screen and
the idle timeout. Each screen is also saved to docs/screens/ at 1280x800 and 800x480."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests import pages as docs
from tests.conftest import http, wait_for
from tests.test_face import load
from tests.test_identify import card_scene_with_portrait
from tests.test_liveness import turning_frames
from tests.web_ui_helpers import (
    CHROMIUM_ARGS,
    TECH_PIN,
    press,
    running_kiosk,
    shoot,
    wait_buttons,
)

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory):
    with running_kiosk(tmp_path_factory.mktemp("kiosk")) as (daemon, scenes):
        yield daemon, scenes


@pytest.fixture
def page(browser, kiosk):
    daemon, _ = kiosk
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=daemon.base, locale="vi-VN"
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    csp = [e for e in errors if "Content Security Policy" in e]
    assert not csp, csp  # every script and style comes from our own static files


HOME = re.compile(r"^http://127\.0\.0\.1:\d+/$")


def headline(pg) -> str:
    return pg.inner_text("h1").strip()


def focused_id(pg) -> str:
    return pg.evaluate("document.activeElement && document.activeElement.id")


CARD_SCENE, CARD_PERSON = None, None


def card_scene():
    global CARD_SCENE, CARD_PERSON
    if CARD_SCENE is None:
        CARD_SCENE, CARD_PERSON = card_scene_with_portrait("obama.jpg")
    return CARD_SCENE


def page_scene(seed: int = 2, kind: str = "birth_certificate") -> np.ndarray:
    return docs.photographed(seed, kind, size=docs.PREVIEW).image


def pass_face_check(pg, scenes) -> str:
    """Look at the camera and do what the screen asks; returns the URL it ends on. A blink
    cannot be acted by a photo, so that try fails (a still face) and the next challenge comes."""
    for _ in range(3):
        scenes.show(load("obama2.jpg"))
        pg.wait_for_function(
            "() => document.getElementById('guidance') && "
            "/quay đầu|chớp mắt/.test(document.getElementById('guidance').textContent)"
            " || !location.pathname.endsWith('/face')",
            timeout=30000,
        )
        if not pg.url.endswith("/face"):
            return pg.url
        text = pg.inner_text("#guidance")
        if "trái" in text:  # the citizen's left: the nose moves to the image's right
            scenes.play((f for f, _ in turning_frames("obama2.jpg", 5)), fps=5)
        elif "phải" in text:
            scenes.play((f for f, _ in turning_frames("obama2.jpg", -5)), fps=5)
        pg.wait_for_function(
            "() => !location.pathname.endsWith('/face') || "
            "/Chưa xác minh/.test(document.getElementById('guidance').textContent)",
            timeout=30000,
        )
        scenes.stop()
        if not pg.url.endswith("/face"):
            return pg.url
    pg.wait_for_url(re.compile(r"/a/(pages|staff)$"), timeout=30000)
    return pg.url


# --- the start screen ------------------------------------------------------------------------


def test_start_screen_vietnamese_then_english_then_help(page, kiosk) -> None:
    daemon, _ = kiosk
    response = page.goto("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headline(page) == "Xin chào! Bạn cần làm gì?"
    tiles = page.locator(".tile .name").all_inner_texts()
    assert tiles == [
        "Bản sao điện tử chứng thực",
        "Lấy số thứ tự",
        "Tra cứu hồ sơ",
        "Hướng dẫn thủ tục",
        "Kiểm tra bản sao",
        "Nhận kết quả qua bưu điện",
    ]
    assert page.inner_text("#help-button").strip() == "Trợ giúp / Gọi nhân viên"
    assert focused_id(page) == "tile-ecopy"  # focus is visible from the first moment
    shoot(page, "01-start")
    page.click("text=English")
    assert headline(page) == "Welcome! What would you like to do?"
    page.click("text=Tiếng Việt")
    assert headline(page) == "Xin chào! Bạn cần làm gì?"
    page.click("#help-button")
    assert headline(page) == "Bạn cần trợ giúp?"
    shoot(page, "02-help")
    page.click("#call-staff")
    assert headline(page) == "Đã gọi nhân viên"
    shoot(page, "03-help-called")
    wait_for(
        lambda: any(
            e["kind"] == "help.requested" for e in daemon.get("/api/status")[1]["recent_events"]
        )
    )


def test_physical_buttons_move_focus_and_open_screens(page, kiosk) -> None:
    daemon, _ = kiosk
    page.goto("/")
    wait_buttons(page)
    press(daemon, "next")
    page.wait_for_function("() => document.activeElement.id === 'tile-ticket'")
    press(daemon, "back")
    page.wait_for_function("() => document.activeElement.id === 'tile-ecopy'")
    press(daemon, "ok")
    page.wait_for_url("**/a/")
    assert headline(page) == "Bản sao điện tử có chứng thực"
    assert page.locator(".steps li.now").inner_text().strip().endswith("Xác thực")
    shoot(page, "10-ecopy-start")
    wait_buttons(page)
    press(daemon, "help")
    page.wait_for_url("**/help")
    page.goto("/a/")
    wait_buttons(page)
    press(daemon, "cancel")
    page.wait_for_url(HOME)
    assert headline(page) == "Xin chào! Bạn cần làm gì?"
    wait_buttons(page)
    press(daemon, "cancel", hold_s=0.8)  # held: call staff
    page.wait_for_url("**/help")


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
    assert CARD_PERSON.id_number not in log and CARD_PERSON.name not in log


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


# --- out of service ---------------------------------------------------------------------------


def test_camera_down_closes_only_the_flows_that_need_it(page, kiosk) -> None:
    daemon, scenes = kiosk
    scenes.remove()
    try:
        wait_for(lambda: not daemon.get("/api/status")[1]["parts"]["camera"]["ok"], timeout=10)
        page.goto("/")
        assert page.locator("#tile-ecopy .badge").inner_text() == "Tạm ngừng"
        shoot(page, "04-start-camera-down")
        page.click("#tile-ecopy")
        assert headline(page) == "Dịch vụ này đang tạm ngừng"
        assert "cần camera" in page.inner_text("main")
        shoot(page, "05-out-of-order")
        page.goto("/help")
        assert headline(page) == "Bạn cần trợ giúp?"
    finally:
        scenes.show(np.full((960, 1280, 3), 60, np.uint8))
    wait_for(lambda: daemon.get("/api/status")[1]["parts"]["camera"]["ok"], timeout=15)


# --- technician ---------------------------------------------------------------------------------


def test_technician_screen_behind_pin_status_selftest_buttons_lock(page, kiosk) -> None:
    daemon, _ = kiosk
    page.goto("/technician/")
    assert headline(page) == "Kỹ thuật viên"
    shoot(page, "40-technician-login")
    page.fill("#pin", "0000")
    page.click("#login")
    assert page.inner_text("#pin-error") == "Sai mã PIN. Còn 4 lần thử."
    page.fill("#pin", TECH_PIN)
    page.click("#login")
    page.wait_for_url("**/technician/panel")
    text = page.inner_text("main")
    assert "camera" in text and "printer" in text and "TEST-UI" in text
    page.click("#run-selftest")
    assert page.locator("#checks tr").count() >= 5
    page.click("#print-test")
    assert "printed" in page.inner_text("#notice")
    wait_buttons(page)
    for name in ("back", "next", "ok", "cancel", "help"):
        press(daemon, name)
        page.wait_for_selector(f'[data-test-button="{name}"][data-pressed=true]')
    assert page.url.endswith("/technician/panel")  # the test did not drive the screen
    shoot(page, "41-technician-panel")
    if CARD_PERSON is not None:  # never personal data, even after citizens used the kiosk
        assert (
            CARD_PERSON.name not in page.content() and CARD_PERSON.id_number not in page.content()
        )
    page.click("#lock")
    page.goto("/")
    assert headline(page) == "Ki-ốt tạm ngừng phục vụ"
    shoot(page, "06-locked")
    page.goto("/b/")
    assert headline(page) == "Ki-ốt tạm ngừng phục vụ"
    page.goto("/technician/panel")
    page.click("#unlock")
    page.goto("/")
    assert headline(page) == "Xin chào! Bạn cần làm gì?"


# --- bad requests -------------------------------------------------------------------------------


def test_forms_without_csrf_or_too_large_get_a_vietnamese_page(page, kiosk) -> None:
    daemon, _ = kiosk
    request = urllib.request.Request(daemon.base + "/cancel", data=b"x=1", method="POST")
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("a form without its CSRF token was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 400
        assert "Trang này đã hết hạn" in err.read().decode()
    status, _ = http("GET", daemon.base + "/api/health")
    assert status == 200
    page.goto("/a/pages/99.jpg")
    assert headline(page) == "Trang này không tồn tại"
    shoot(page, "07-not-found")


# --- idle timeout (a kiosk of its own with a short timeout) ----------------------------------


def test_idle_warning_counts_down_then_wipes_everything(browser, tmp_path: Path) -> None:
    with running_kiosk(tmp_path, idle_s=6, warn_s=4) as (daemon, scenes):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=daemon.base)
        pg = context.new_page()
        pg.goto("/")
        scenes.show(card_scene())
        pg.goto("/a/identify")
        pg.wait_for_url("**/a/consent", timeout=20000)
        pg.wait_for_selector("#idle-warning:not([hidden])", timeout=10000)
        assert "Bạn vẫn đang sử dụng chứ?" in pg.inner_text("#idle-warning")
        count = int(pg.inner_text("#idle-count"))
        assert 1 <= count <= 4
        shoot(pg, "08-idle-warning")
        pg.click("#idle-stay")  # the citizen is still there: nothing is lost
        assert pg.is_hidden("#idle-warning") and pg.url.endswith("/a/consent")
        pg.wait_for_selector("#idle-warning:not([hidden])", timeout=10000)
        pg.wait_for_url(HOME, timeout=10000)
        assert pg.inner_text("h1") == "Xin chào! Bạn cần làm gì?"
        pg.goto("/a/consent")  # the identification in progress is gone
        assert pg.url.endswith("/a/")
        pg.goto("/")
        pg.click("text=English")  # a choice of language is wiped too
        assert pg.inner_text("h1") == "Welcome! What would you like to do?"
        pg.wait_for_function(
            "() => document.querySelector('h1').textContent.startsWith('Xin chào')", timeout=15000
        )
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
        assert pg.locator("#pin").count() == 0 and "Tạm khóa" in pg.inner_text("#pin-error")
        shoot(pg, "42-technician-locked")
        context.close()
