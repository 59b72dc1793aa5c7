"""The certification desk in headless Chromium (Playwright, Debian's Chromium): an officer logs
in with password, TOTP and token PIN, works the queue by keyboard (J/K, Enter, A, R + digit,
S, +/-, ?), the next request's pages come from the prefetch, the queue refreshes in place, and
anyone opens /v/<code>. The Certifier is the real one over SQLite, as in
tests/test_certify_desk.py: approving signs on the SoftHSM2 tokens with the login's PIN.
Prints the request screen's timings (the real figure is bench/'s). Screenshots go to
docs/screens/certify-*.png with --update-screens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from fleet.certify.web import DeskConfig, create_app
from fleet.store import FleetStore
from protocol.crypto import DataKey
from tests.browser import chromium
from tests.certify_helpers import TestSigner, certifier_for_tests
from tests.test_certify_desk import AGENCY, NOW, PASSWORD, PIN, add_officer, add_request
from web_ui.server import WebServer

pytest.importorskip("playwright.sync_api")


NAV_TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const imgs = performance.getEntriesByType('resource').filter(r => r.name.endsWith('.jpg'));
  return {response: n.responseEnd - n.requestStart, load: n.loadEventEnd - n.startTime,
          images: imgs.map(r => ({name: r.name, transfer: r.transferSize}))};
}"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store = FleetStore(
        f"sqlite:///{tmp_path / 'fleet.db'}", data_key=DataKey.load_or_create(tmp_path / "dk")
    ).create()
    signer = TestSigner(tmp_path / "signer")
    certifier = certifier_for_tests(
        store, signer, clock=lambda: NOW, config=signer.config(agency_id=AGENCY)
    )
    secret = add_officer(store, "hoa")
    # By the Certifier's clock (SLA 3 minutes, "soon" in its last one): late, soon, ok.
    add_request(store, "REQ-0001", received_at=NOW - 5400, flags=[{"check": "photocopy"}])
    add_request(
        store, "REQ-0002", received_at=NOW - 150, flags=[{"check": "glare"}, {"check": "blur"}]
    )
    add_request(store, "REQ-0003", received_at=NOW - 60, pages=1)
    config = DeskConfig(secret_key_file=tmp_path / "secret", cookie_secure=False, queue_refresh_s=1)
    web = WebServer(create_app(certifier, store, config), host="127.0.0.1", port=0, threads=4)
    web.start()
    try:
        yield {
            "url": f"http://127.0.0.1:{web.port}",
            "certifier": certifier,
            "store": store,
            "secret": secret,
        }
    finally:
        web.stop()
        store.close()


def wait_url(page: Any, suffix: str) -> None:
    page.wait_for_url(f"**{suffix}", timeout=10_000)


def test_an_officer_works_the_queue_by_keyboard_in_chromium(
    site: dict[str, Any], screens: Path
) -> None:
    url, certifier, store = site["url"], site["certifier"], site["store"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="vi-VN")
        page.goto(f"{url}/queue")
        wait_url(page, "/login")
        page.fill("#username", "hoa")
        page.fill("#password", PASSWORD)
        page.fill("#code", pyotp.TOTP(site["secret"]).now())
        page.fill("#pin", PIN)
        page.screenshot(path=str(screens / "certify-login.png"))
        page.click("#login")
        wait_url(page, "/queue")
        assert page.inner_text("#count") == "3"
        assert page.locator("#requests tbody tr").first.get_attribute("data-id") == "REQ-0001"
        assert page.locator("tr.sla-late .tag.flag").inner_text() == "Nghi bản photo"
        page.screenshot(path=str(screens / "certify-queue.png"), full_page=True)

        # The queue refreshes by itself and keeps the officer's place.
        page.keyboard.press("j")
        page.keyboard.press("j")
        assert page.locator("tr.selected").get_attribute("data-id") == "REQ-0002"
        add_request(store, "REQ-0004", received_at=NOW - 1, pages=1)
        page.wait_for_selector('tr[data-id="REQ-0004"]', timeout=10_000)
        assert page.inner_text("#count") == "4"
        assert page.locator("tr.selected").get_attribute("data-id") == "REQ-0002"
        page.keyboard.press("k")
        page.keyboard.press("Enter")
        wait_url(page, "/requests/REQ-0001")
        first = page.evaluate(NAV_TIMING)

        # The request screen: pages, fields, flags; zoom with + and a click; help with ?.
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#pages img'))"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.locator("#pages img").count() == 2
        assert "Nguyễn Văn An" in page.inner_text("#fields")
        assert "Nghi bản photo" in page.inner_text("#flags")
        width = page.locator("#page-1").bounding_box()["width"]
        page.keyboard.press("+")
        assert page.locator("figure.page").first.get_attribute("data-zoom") == "1.5"
        assert page.locator("#page-1").bounding_box()["width"] > width * 1.3
        page.keyboard.press("-")
        page.keyboard.press("?")
        assert page.locator("#help").is_visible()
        page.screenshot(path=str(screens / "certify-help.png"))
        page.keyboard.press("Escape")
        assert not page.locator("#help").is_visible()
        page.screenshot(path=str(screens / "certify-request.png"))

        # J: the next request; its pages were prefetched, so none crosses the network.
        time.sleep(0.5)  # let the prefetches finish
        page.keyboard.press("j")
        wait_url(page, "/requests/REQ-0002")
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#pages img'))"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        second = page.evaluate(NAV_TIMING)
        fetched = [i for i in second["images"] if "REQ-0002" in i["name"]]
        assert fetched and all(i["transfer"] == 0 for i in fetched), fetched
        page.keyboard.press("k")
        wait_url(page, "/requests/REQ-0001")

        # A: approved with the PIN given at login; straight on to the next request.
        page.keyboard.press("a")
        wait_url(page, "/requests/REQ-0002")
        assert "Đã chứng thực, số 1" in page.inner_text(".flash.ok")
        # R then 9 ("other") asks for the text; Enter sends it.
        page.keyboard.press("r")
        assert page.locator("#refuse-panel").is_visible()
        page.screenshot(path=str(screens / "certify-refuse.png"))
        page.keyboard.press("9")
        assert page.locator("#reason-text").is_visible()
        page.keyboard.type("Thiếu trang 3")
        page.keyboard.press("Enter")
        wait_url(page, "/requests/REQ-0003")
        # R then 2: "damaged", sent at once.
        page.keyboard.press("r")
        page.keyboard.press("2")
        wait_url(page, "/requests/REQ-0004")
        # S: see staff, with a note.
        page.keyboard.press("s")
        page.keyboard.type("Mời mang bản chính đến quầy 2")
        page.keyboard.press("Enter")
        wait_url(page, "/queue")
        assert page.inner_text("#count") == "0"
        decided = {
            code: (row["status"], row["reason_code"], row["reason_text"])
            for code in ("REQ-0001", "REQ-0002", "REQ-0003", "REQ-0004")
            if (row := store.cert_request(code)) is not None
        }
        assert decided == {
            "REQ-0001": ("approved", None, None),
            "REQ-0002": ("refused", "other", "Thiếu trang 3"),
            "REQ-0003": ("refused", "damaged", None),
            "REQ-0004": ("see_staff", None, "Mời mang bản chính đến quầy 2"),
        }

        # Anyone, without a login: the public verification page of the approved copy.
        [entry] = certifier.book(AGENCY, year=2026)
        code = entry.copy_code
        anyone = browser.new_page(viewport={"width": 412, "height": 915}, locale="vi-VN")
        anyone.goto(f"{url}/V/{code.lower()}/ban-sao")
        assert anyone.locator("#verification").get_attribute("data-status") == "valid"
        assert "Bản sao hợp lệ" in anyone.inner_text("#verdict")
        assert anyone.inner_text("#officer-name") == "Lê Thị Hoa"
        assert anyone.evaluate("document.getElementById('thumbnail').naturalWidth") > 0
        anyone.screenshot(path=str(screens / "certify-verify.png"), full_page=True)

        page.click("#logout")
        wait_url(page, "/login")
    print(
        f"\nrequest screen: first open {first['response']:.1f} ms to response, "
        f"{first['load']:.1f} ms to load; next (prefetched) {second['response']:.1f} ms to "
        f"response, {second['load']:.1f} ms to load"
    )
