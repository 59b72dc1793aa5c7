"""Cash at the counter in headless Chromium, on a simulated kiosk that reports to the tests'
Mosquitto (so its payments go through central's adapter): a fee-payable copy, the citizen
chooses "Nộp tiền mặt tại quầy", staff are called once, the shared PIN and a wrong PIN do not
confirm, a named staff account does; the copy goes on to the slip, the slip says how the fee
was paid, and central receives the payment request and exactly one cash fee receipt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge import config as cfg
from edge.store import Store
from edge.store.staff import StaffAccounts
from tests import web_ui_helpers as web
from tests.conftest import wait_for
from tests.mqtt_broker import assert_valid
from tests.web_ui_helpers import (
    TECH_PIN,
    card,
    card_scene,
    fleet_mqtt,
    headline,
    page_scene,
    running_kiosk,
    wait_for_fleet,
)

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)
ANA, ANA_PIN = "ana", "135790"


def records(central, kind: str) -> list[dict]:
    got: dict[str, dict] = {}
    for m in central.received(f"kiosk/v1/TEST-UI/records/{kind}"):
        got.setdefault(m.json()["id"], m.json())
    return list(got.values())


def test_cash_confirmed_by_a_named_staff_account_finishes_to_the_slip(
    browser, tmp_path: Path, broker, fleet_pki, central
) -> None:
    with running_kiosk(tmp_path, extra=fleet_mqtt(broker, fleet_pki)) as (daemon, scenes):
        store = Store(cfg.load(daemon.config).storage.db_path)
        store.open()
        try:
            StaffAccounts(store).add(ANA, ANA_PIN, role="staff")
        finally:
            store.close()
        wait_for_fleet(daemon)
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, base_url=daemon.base, locale="vi-VN"
        )
        page = context.new_page()
        page.set_default_timeout(30000)

        # Identified by staff (consent declined), one page read, the fee screen.
        scenes.show(card_scene())
        page.goto("/a/identify")
        page.wait_for_url("**/a/consent")
        page.click("#decline")
        page.wait_for_url("**/a/staff")
        page.fill("#pin", TECH_PIN)
        page.click("#confirm-staff")
        page.wait_for_url("**/a/pages")
        scenes.show(page_scene(3, "diploma"))
        page.wait_for_function("() => document.getElementById('page-count').textContent === '1'")
        scenes.show(np.full((960, 1280, 3), 60, np.uint8))
        page.click("#pages-done")
        page.wait_for_url("**/a/review", timeout=90000)
        page.click("#confirm-review")
        page.wait_for_url("**/a/fee")
        assert page.inner_text("#fee-amount") == "2.000 đ"
        assert page.locator("#payment-qr").count() == 1 and page.is_disabled("#issue")
        asked = wait_for(lambda: records(central, "payment-request"), timeout=10)
        assert_valid(asked[0]["data"], "payment-request-record")
        reference = asked[0]["data"]["reference"]

        # Cash at the counter: where to go, the reference, staff called once, no idle wipe.
        page.click("#pay-cash")
        page.wait_for_url("**/a/fee/cash")
        assert headline(page) == "Nộp tiền mặt tại quầy"
        assert page.inner_text("#cash-amount") == "2.000 đ"
        assert reference in page.inner_text("#cash-reference")
        assert page.get_attribute("body", "data-idle-free") == "true"
        assert page.inner_text("#confirm-cash") == "Đã thu 2.000 đ tiền mặt"

        def cash_calls() -> list[dict]:
            events = daemon.get("/api/status")[1]["recent_events"]
            return [
                e
                for e in events
                if e["kind"] == "help.requested" and e.get("reason") == "cash_payment"
            ]

        (call,) = wait_for(cash_calls, timeout=5)
        assert call["screen"] == "ecopy.cash"

        # The shared PIN is no one's: with no name, or as "technician", it does not confirm.
        for name in ("", "technician"):
            page.fill("#staff-name", name)
            page.fill("#pin", TECH_PIN)
            page.click("#confirm-cash")
            page.wait_for_selector("#pin-error")
            assert "tài khoản nhân viên có tên" in page.inner_text("#pin-error")
            assert page.url.endswith("/a/fee/cash")
        # A wrong PIN of a named account does not either.
        page.fill("#staff-name", ANA)
        page.fill("#pin", "000000")
        page.click("#confirm-cash")
        page.wait_for_function(
            "() => /Sai mã PIN/.test(document.getElementById('pin-error')?.textContent || '')"
        )
        assert page.inner_text("#pin-error") == "Sai mã PIN. Còn 4 lần thử."
        assert page.url.endswith("/a/fee/cash") and not records(central, "fee-receipt")

        # The named account confirms: paid, and the copy goes on to the slip.
        page.fill("#staff-name", ANA)
        page.fill("#pin", ANA_PIN)
        page.click("#confirm-cash")
        page.wait_for_url("**/a/fee")
        assert page.inner_text("#paid") == "Đã nhận thanh toán. Xin cảm ơn."
        page.click("#channel-kiosk")
        page.click("#issue")
        page.wait_for_url("**/a/slip", timeout=30000)
        jobs = daemon.get("/api/printer/jobs")[1]["jobs"]
        assert jobs[0]["kind"] == "slip" and jobs[0]["status"] == "printed"
        assert len(cash_calls()) == 1  # reloads and polls posted no second call

        (receipt,) = wait_for(lambda: records(central, "fee-receipt"), timeout=10)
        data = receipt["data"]
        assert_valid(data, "fee-receipt-record")
        assert (data["method"], data["amount_vnd"], data["staff"]) == ("cash", 2000, ANA)
        assert data["reference"] == reference and data["payer_name"] == card()[1].name
        answered = daemon.get("/api/status")[1]["recent_events"]
        done = [e for e in answered if e["kind"] == "help.answered" and e["call"] == call["call"]]
        assert len(done) == 1 and done[0]["by"] == "staff"  # the audit has the name, not the log
        context.close()

    store = Store(cfg.load(daemon.config).storage.db_path)
    store.open()
    try:
        audited = store.query(
            "SELECT actor, action, subject FROM audit WHERE action = ?", ("payment.cash",)
        )
        assert [tuple(r) for r in audited] == [(ANA, "payment.cash", reference)]
    finally:
        store.close()
    log = daemon.log_path.read_text(encoding="utf-8")
    assert card()[1].name not in log and card()[1].id_number not in log
