"""A priority ticket and a satisfaction rating in headless Chromium, against the simulated
daemon reporting to a real Mosquitto: the priority group by touch, the number of the priority
series on screen and on the printed slip (read back), the ticket record at central with the flag
and group only; then the rating reached with the physical buttons, kept as a counter that names
no ticket and no session, and telemetry that carries counters of finished hours only."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pyzbar.pyzbar import decode

from tests import web_ui_helpers as web
from tests.escpos_readback import native_qr_payloads, paper
from tests.mqtt_broker import CENTRAL, Broker, FleetPki, Peer, assert_valid, wait_until
from tests.test_priority_rating import _plain, _slip_text
from tests.web_ui_helpers import focused_id, press, running_kiosk, shoot, wait_buttons

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)
BASE = "kiosk/v1/TEST-UI"


def test_priority_ticket_then_a_rating_with_the_buttons(
    browser, tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> None:
    mqtt = web.fleet_mqtt(broker, fleet_pki, extra="telemetry_interval_s = 5\n")
    central = Peer(broker, fleet_pki.client(CENTRAL)).connect()
    central.subscribe("kiosk/v1/#")
    try:
        with running_kiosk(tmp_path, extra=mqtt) as (daemon, _):
            web.wait_for_fleet(daemon)
            context = browser.new_context(
                viewport={"width": 1280, "height": 800}, base_url=daemon.base, locale="vi-VN"
            )
            pg = context.new_page()
            errors: list[str] = []
            # Script errors (rating.js) and CSP refusals fail the test; Chromium's own favicon
            # request (a 404 on a kiosk without one) does not.
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on(
                "console",
                lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
            )
            pg.goto("/b/")
            assert pg.inner_text("#priority").startswith("Ưu tiên: người cao tuổi")
            pg.click("#priority")
            pg.wait_for_url("**/b/priority")
            assert pg.inner_text("#headline") == "Số ưu tiên: bạn thuộc nhóm nào?"
            assert [pg.inner_text(f"#group-{g}") for g in ("elderly", "pregnant")] == [
                "Người cao tuổi (từ đủ 60 tuổi)",
                "Phụ nữ có thai",
            ]
            shoot(pg, "33-ticket-priority-groups")
            pg.click("#group-elderly")
            pg.wait_for_url("**/b/")
            assert "Số ưu tiên: Người cao tuổi" in pg.inner_text("#priority-on")
            shoot(pg, "33b-ticket-areas-priority")
            pg.click("#area-B")
            pg.wait_for_url("**/b/ticket")
            assert pg.inner_text("#ticket-number") == "B-UT001"
            assert pg.inner_text("#priority-mark") == "ƯU TIÊN · Người cao tuổi (từ đủ 60 tuổi)"
            assert pg.locator("#rating .btn.rate").count() == 3
            shoot(pg, "34-ticket-priority-and-rating")

            # The slip, as it came out of the (simulated) printer.
            jobs = sorted((daemon.config.parent / "printer-out").glob("*.bin"))
            slip = jobs[-1].read_bytes()
            sheet = paper(slip)
            # The configured TM-T88V prints its QR natively (GS ( k); others get a raster.
            qr = native_qr_payloads(slip) or [s.data.decode() for s in decode(sheet)]
            assert qr == ["KIOSK-QUEUE|TEST-UI|" + data_day(pg) + "|B-UT001"]
            text = _slip_text(np.array(sheet.convert("RGB"))[:, :, ::-1])
            assert "UU TIEN" in _plain(text) and "B-UT001" in text.splitlines()
            assert "Ưu tiên: Người cao tuổi (từ đủ 60 tuổi)" in text.splitlines()

            # Central gets the flag and the group, nothing else about the citizen.
            record = central.wait_for(f"{BASE}/records/ticket").json()
            assert_valid(record, "record")
            assert_valid(record["data"], "ticket-record")
            assert record["id"].endswith("-BUT-1")
            data = record["data"]
            assert (data["number"], data["priority"], data["priority_group"]) == (
                "B-UT001",
                True,
                "elderly",
            )

            # The rating with the physical buttons: "Xong" keeps the focus, ▶ reaches a face.
            wait_buttons(pg)
            assert focused_id(pg) == "done"
            press(daemon, "next")
            pg.wait_for_function("() => document.activeElement.id === 'rate-very_satisfied'")
            press(daemon, "ok")
            pg.wait_for_selector("#rating-thanks")
            assert pg.inner_text("#rating-thanks").startswith("Cảm ơn bạn!")
            pg.wait_for_function("() => document.activeElement.id === 'done'")
            assert pg.url.endswith("/b/ticket")  # the flow was not left

            # Stored: one counter of this hour; no ticket number, no session anywhere in it.
            db = sqlite3.connect(
                f"file:{daemon.config.parent / 'state' / 'kiosk.db'}?mode=ro", uri=True
            )
            try:
                columns = [r[1] for r in db.execute("PRAGMA table_info(rating_counts)")]
                rows = wait_until(
                    lambda: db.execute("SELECT * FROM rating_counts").fetchall(), 5, "a counter"
                )
            finally:
                db.close()
            assert columns == ["hour", "flow", "rating", "n"]
            hour = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%Y-%m-%dT%H")
            (row,) = rows
            assert row[1:] == ("ticket", "very_satisfied", 1)
            assert row[0] in (hour, _previous_hour(hour))  # the tap may straddle the hour
            cookie = {c["name"]: c["value"] for c in context.cookies()}
            assert cookie  # the visit had a session; it is named nowhere below
            # A second tap of the same flow end (e.g. a stale page) is not counted again.
            token = pg.get_attribute("input[name=csrf_token]", "value")
            again = pg.request.post(
                "/rating/ticket", form={"csrf_token": token, "rating": "not_satisfied"}
            )
            assert again.status == 204
            pg.click("#done")
            pg.wait_for_url(web.HOME)

            # Sent: telemetry carries only counters of the hours already over.
            sample = central.wait_for(
                f"{BASE}/telemetry", lambda m: "ratings" in m.json(), timeout=15
            ).json()
            assert_valid(sample, "telemetry")
            ratings = sample["ratings"]
            assert set(ratings) == {"day", "through_hour", "counts"}
            sent = json.dumps(ratings)
            for secret in ["B-UT001", *cookie.values()]:
                assert secret not in sent
            assert ratings["counts"].get("ticket", {}).get("not_satisfied") is None
            assert not errors, errors
            context.close()
            # The kiosk's log has no line of the tap (its time would tie it to the ticket).
            logged = [json.dumps(e, ensure_ascii=False) for e in daemon.log()]
            assert any("B-UT001" in line for line in logged)  # the log is the daemon's
            assert not [line for line in logged if "satisf" in line or "/rating" in line]
        db = sqlite3.connect(daemon.config.parent / "state" / "kiosk.db")
        try:
            assert db.execute("SELECT SUM(n) FROM rating_counts").fetchone()[0] == 1
        finally:
            db.close()
    finally:
        central.close()


def data_day(pg) -> str:
    """Today in the kiosk's time zone (the ticket's day)."""
    return dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()


def _previous_hour(hour: str) -> str:
    at = dt.datetime.strptime(hour, "%Y-%m-%dT%H") - dt.timedelta(hours=1)
    return at.strftime("%Y-%m-%dT%H")
