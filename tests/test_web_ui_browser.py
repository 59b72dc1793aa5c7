"""The touchscreen UI in headless Chromium against a real simulated daemon (waitress on
127.0.0.1, the file camera, gpiozero's MockFactory buttons): start screen, help, the physical
buttons, out of service, the technician screen, bad requests and the idle timeout. Each screen
is saved at 1280x800 and 800x480 (into docs/screens/ with --update-screens). Flow A is in
test_web_ui_ecopy.py."""

from __future__ import annotations

import http.server as http_server
import json
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests import web_ui_helpers as web
from tests.cards import qr_image
from tests.conftest import http, wait_for
from tests.copies_helpers import CITIZEN_QR, write_pages
from tests.web_ui_helpers import (
    HOME,
    TECH_PIN,
    card,
    card_scene,
    focused_id,
    headline,
    press,
    shoot,
    wait_buttons,
)

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)
kiosk = pytest.fixture(scope="module")(web.kiosk_session)
page = pytest.fixture(web.kiosk_page)

# --- the start screen ------------------------------------------------------------------------


def test_start_screen_vietnamese_then_english_then_help(page, kiosk) -> None:
    daemon, _ = kiosk
    response = page.goto("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headline(page) == "Xin chào! Bạn cần làm gì?"
    tiles = page.locator(".tile .name").all_inner_texts()
    assert tiles == [
        "Chứng thực bản sao điện tử",
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
            e["kind"] == "help.requested" and e["source"] == "ui"
            for e in daemon.get("/api/status")[1]["recent_events"]
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
    assert headline(page) == "Chứng thực bản sao điện tử"
    assert page.locator(".steps li.now").inner_text().strip().endswith("Xác thực")
    shoot(page, "10-ecopy-start")
    wait_buttons(page)
    press(daemon, "help")
    page.wait_for_url("**/help")
    page.goto("/a/")
    wait_buttons(page)
    web.start_over_by_buttons(page, daemon)  # asks first (test_keys_browser.py)
    assert headline(page) == "Xin chào! Bạn cần làm gì?"
    wait_buttons(page)
    press(daemon, "cancel", hold_s=0.8)  # held: call staff
    page.wait_for_url("**/help")


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
    daemon, scenes = kiosk
    scenes.show(card_scene())  # a citizen used the kiosk just before
    page.goto("/a/identify")
    page.wait_for_url("**/a/consent", timeout=20000)
    page.click("#cancel-button")
    page.click("#cancel-yes")
    page.wait_for_url(HOME)
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
    assert page.inner_text("#notice") == "In thử: đã in"
    wait_buttons(page)
    for name in ("back", "next", "ok", "cancel", "help"):
        press(daemon, name)
        page.wait_for_selector(f'[data-test-button="{name}"][data-pressed=true]')
    assert page.url.endswith("/technician/panel")  # the test did not drive the screen
    shoot(page, "41-technician-panel")
    # Never personal data, even after citizens used the kiosk.
    assert card()[1].name not in page.content() and card()[1].id_number not in page.content()
    # The kiosk's own screen, open meanwhile (the technician works from a laptop).
    screen = page.context.browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=daemon.base
    ).new_page()
    screen.goto("/")
    wait_buttons(screen)
    page.click("#lock")
    assert page.url.endswith("/technician/panel")  # the technician's screen stays
    # The open citizen screen goes out of service by itself (server-sent lock state).
    screen.wait_for_function(
        "() => document.querySelector('h1').textContent === 'Ki-ốt tạm ngừng phục vụ'"
    )
    shoot(screen, "06-locked")
    screen.goto("/b/")
    assert headline(screen) == "Ki-ốt tạm ngừng phục vụ"
    page.click("#unlock")
    screen.wait_for_function(  # back in service: the ticket screen it was asked for
        "() => document.querySelector('h1').textContent === 'Chọn lĩnh vực cần giải quyết'"
    )
    screen.context.close()


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


def _printed(daemon) -> int:
    return len(list((daemon.config.parent / "printer-out").glob("*.bin")))


def test_the_page_and_the_developer_panel_reach_the_daemon_with_its_token(page, kiosk) -> None:
    daemon, _ = kiosk
    page.goto("/help")
    wait_for(lambda: daemon.get("/api/browser")[1]["screen"] == "/help", timeout=10)
    before = _printed(daemon)
    page.goto("/dev")
    page.click("#print-test")
    page.wait_for_function("() => document.getElementById('out').textContent.startsWith('200')")
    assert _printed(daemon) == before + 1


def test_a_page_of_another_origin_cannot_print_or_beat(page, kiosk) -> None:
    """Another site open in the kiosk's browser (or any browser on the device) posts to the
    daemon: Chromium sends its Origin, the daemon refuses, nothing is printed."""
    daemon, _ = kiosk
    evil = (
        "<!doctype html><title>evil</title><script>"
        f"Promise.all([fetch('{daemon.base}/api/printer/test', {{method: 'POST', mode: 'no-cors'}}),"
        f" fetch('{daemon.base}/live/heartbeat', {{method: 'POST', mode: 'no-cors',"
        ' body: \'{"screen": "/evil"}\'})])'
        ".then(() => { document.title = 'sent'; }, () => { document.title = 'failed'; });"
        "</script>"
    ).encode()

    class Evil(http_server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *args) -> None:
            pass

    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = _printed(daemon)
    try:
        page.goto(f"http://localhost:{server.server_port}/")
        page.wait_for_function("() => document.title !== 'evil'")
        assert page.title() == "sent"
    finally:
        server.shutdown()
        server.server_close()
    refused = wait_for(
        lambda: [r for r in daemon.log() if r.get("msg") == "request refused: other origin"]
    )
    assert len(refused) >= 2
    assert _printed(daemon) == before
    assert daemon.get("/api/browser")[1]["screen"] != "/evil"


# --- flow E: verify a copy by its QR ------------------------------------------------------------


def _issue_copy_with_the_cli(daemon, tmp: Path) -> dict:
    """A copy issued on this kiosk by `kiosk copy issue` (the daemon keeps running beside it)."""
    pages = [str(p) for p in write_pages(tmp, 1)]
    done = subprocess.run(
        [sys.executable, "-m", "edge", "copy", "issue", "--config", str(daemon.config),
         "--pages", *pages, "--citizen-qr", CITIZEN_QR, "--out", str(tmp / "c.pdf"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _qr_on_platen(text: str) -> np.ndarray:
    """A receipt's QR code lying on the platen, as the camera sees it."""
    frame = np.full((960, 1280, 3), 70, np.uint8)
    qr = np.array(qr_image(text, 420).convert("RGB"))[:, :, ::-1]
    h, w = qr.shape[:2]
    frame[200 : 200 + h, 400 : 400 + w] = qr
    return frame


def test_verify_a_copy_by_its_qr_valid_then_forged(page, kiosk, tmp_path: Path) -> None:
    daemon, scenes = kiosk
    issued = _issue_copy_with_the_cli(daemon, tmp_path)
    scenes.show(np.full((960, 1280, 3), 70, np.uint8))
    page.goto("/")
    page.click("#tile-verify")
    assert headline(page) == "Đặt mã QR của bản sao hoặc biên nhận dưới camera"
    page.wait_for_function(
        "() => document.getElementById('guidance').textContent.includes('Chưa thấy mã QR')"
    )
    shoot(page, "50-verify-scan")
    scenes.show(_qr_on_platen(issued["qr"]))
    page.wait_for_url("**/e/result", timeout=20000)
    # The simulated kiosk signs with its development key: never "Bản sao hợp lệ" (issue 16).
    assert headline(page) == "Bản sao không hợp lệ"
    assert "khóa phát triển, thử nghiệm" in page.inner_text("#verdict")
    assert page.inner_text("#copy-code") == issued["code"]
    shoot(page, "51-verify-valid")
    page.click("#done")
    page.wait_for_url(HOME)
    # The same QR with one character of the code changed: the signature no longer matches.
    code = issued["code"]
    forged_code = code[:-3] + ("1" if code[-3] != "1" else "2") + code[-2:]
    scenes.show(_qr_on_platen(issued["qr"].replace(code, forged_code)))
    web.wait_new_frames(daemon)
    page.goto("/e/")
    page.wait_for_url("**/e/result", timeout=20000)
    assert headline(page) == "Bản sao không hợp lệ"
    shoot(page, "52-verify-invalid")


def test_verify_by_buttons(page, kiosk, tmp_path: Path) -> None:
    daemon, scenes = kiosk
    issued = _issue_copy_with_the_cli(daemon, tmp_path)
    scenes.show(_qr_on_platen(issued["qr"]))
    web.wait_new_frames(daemon)
    page.goto("/")
    wait_buttons(page)
    for _ in range(4):  # e-copy, ticket, dossier, guide, then "verify a copy"
        press(daemon, "next")
    page.wait_for_function("() => document.activeElement.id === 'tile-verify'")
    press(daemon, "ok")
    page.wait_for_url("**/e/result", timeout=20000)
    assert headline(page) == "Bản sao không hợp lệ"  # a development-key copy (issue 16)
    wait_buttons(page)
    press(daemon, "ok")  # "Xong"
    page.wait_for_url(HOME)
