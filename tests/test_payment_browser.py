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
    start_over_by_buttons,
    wait_buttons,
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


def events(daemon, kind: str, call: str | None = None) -> list[dict]:
    got = daemon.get("/api/status")[1]["recent_events"]
    return [e for e in got if e["kind"] == kind and (call is None or e.get("call") == call)]


def cash_calls(daemon) -> list[dict]:
    return [e for e in events(daemon, "help.requested") if e.get("reason") == "cash_payment"]


def to_fee(page, scenes, central) -> str:
    """Identified by staff (consent declined), one page read: the fee screen, its VietQR and
    its payment-request record at central; the visit's payment reference."""
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
    shown = page.get_attribute("#payment-qr", "src")
    asked = wait_for(
        lambda: [
            r for r in records(central, "payment-request") if r["data"]["reference"] not in seen
        ],
        timeout=10,
    )
    assert shown and len(asked) == 1
    assert_valid(asked[0]["data"], "payment-request-record")
    seen.add(asked[0]["data"]["reference"])
    return asked[0]["data"]["reference"]


seen: set[str] = set()  # the references whose payment-request this module has seen


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

        # A citizen who chose cash and then leaves (Cancel): the call is cancelled, nothing is
        # recorded, the visit is gone.
        first = to_fee(page, scenes, central)
        page.click("#pay-cash")
        page.wait_for_url("**/a/fee/cash")
        (left,) = wait_for(lambda: cash_calls(daemon), timeout=5)
        wait_buttons(page)
        start_over_by_buttons(page, daemon)
        wait_for(lambda: events(daemon, "help.cancelled", left["call"]), timeout=5)
        page.goto("/a/fee/cash")
        page.wait_for_url("**/a/")  # no visit: the e-copy's start screen
        assert not records(central, "fee-receipt")

        reference = to_fee(page, scenes, central)
        assert reference != first  # one reference per visit

        # Cash at the counter: where to go, the reference, staff called once, no idle wipe.
        page.click("#pay-cash")
        page.wait_for_url("**/a/fee/cash")
        assert headline(page) == "Nộp tiền mặt tại quầy"
        assert page.inner_text("#cash-amount") == "2.000 đ"
        assert reference in page.inner_text("#cash-reference")
        assert page.get_attribute("body", "data-idle-free") == "true"
        assert page.inner_text("#confirm-cash") == "Đã thu 2.000 đ tiền mặt"

        call = wait_for(lambda: [c for c in cash_calls(daemon) if c["call"] != left["call"]])[0]
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
        assert len(cash_calls(daemon)) == 2  # one per visit: reloads and polls posted none more

        (receipt,) = wait_for(lambda: records(central, "fee-receipt"), timeout=10)
        data = receipt["data"]
        assert_valid(data, "fee-receipt-record")
        assert (data["method"], data["amount_vnd"], data["staff"]) == ("cash", 2000, ANA)
        assert data["reference"] == reference and data["payer_name"] == card()[1].name
        (done,) = events(daemon, "help.answered", call["call"])
        assert done["by"] == "staff"  # the audit has the name; the log and events do not
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
