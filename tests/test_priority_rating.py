"""Priority queue tickets and satisfaction ratings (issue 18, "Priority and satisfaction"):
the priority series (B-UT001) and its printed mark read back with zbar and Tesseract, the
record for central, priority tickets called first, the migration of an existing ticket table,
ratings kept as hourly counters only, and the counters reaching the fleet console through a
real Mosquitto."""

from __future__ import annotations

import datetime as dt
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pyzbar.pyzbar import decode

from edge.config import ServicesSection
from edge.services.printouts import ticket_slip
from edge.services.ratings import RatingService, UnknownRating
from edge.services.tickets import TicketService, UnknownPriorityGroup
from edge.store import DataKey, Store
from edge.store.migrations import MIGRATIONS
from edge.store.outbox import Outbox
from edge.vision.ocr import Ocr
from fleet.console import Console
from tests.escpos_readback import paper
from tests.mqtt_broker import Broker, FleetPki, kiosk_client, schema_validator, wait_until
from tests.test_fleet_console import console_config, login, make_console  # noqa: F401
from tests.test_tickets import HCM, FakeClock, Parts

RECORD_KEYS = {
    "number",
    "area",
    "area_name",
    "day",
    "seq",
    "issued_at",
    "waiting_ahead",
    "estimated_wait_min",
    "priority",
}


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    p = Parts(tmp_path)
    yield p
    p.close()


def _plain(text: str) -> list[str]:
    """Lines without tone marks, upper case: Tesseract mixes up Ê/Ề on a bold title."""
    bare = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return bare.replace("Đ", "D").replace("đ", "d").upper().splitlines()


def _slip_text(image: np.ndarray) -> str:
    """The slip as Tesseract reads it: the lines at full size, then the huge number (too tall
    for Tesseract's line model) at half size as sparse text."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    with Ocr() as ocr:
        return ocr.read(gray, psm=6).text + "\n" + ocr.read(half, psm=11).text


# --- priority tickets ---------------------------------------------------------------------


def test_priority_ticket_has_its_own_series_a_printed_mark_and_a_flag_for_central(
    parts: Parts,
) -> None:
    ordinary = parts.tickets.take("B")
    first = parts.tickets.take("B", priority="elderly")
    second = parts.tickets.take("B", priority="pregnant")
    assert (ordinary.number, first.number, second.number) == ("B-001", "B-UT001", "B-UT002")
    assert (first.seq, second.seq) == (1, 2)  # the series has no gap and no clash with B-001

    by_id = {m.id: m.payload["data"] for m in parts.outbox.pending(10)}
    assert set(by_id) == {
        "ticket-TEST-01-2026-11-23-B-1",
        "ticket-TEST-01-2026-11-23-BUT-1",
        "ticket-TEST-01-2026-11-23-BUT-2",
    }
    for data in by_id.values():
        schema_validator("ticket-record").validate(data)
    assert by_id["ticket-TEST-01-2026-11-23-B-1"]["priority"] is False
    assert set(by_id["ticket-TEST-01-2026-11-23-B-1"]) == RECORD_KEYS
    flagged = by_id["ticket-TEST-01-2026-11-23-BUT-1"]
    assert set(flagged) == RECORD_KEYS | {"priority_group"}  # nothing else about the citizen
    assert (flagged["number"], flagged["priority"], flagged["priority_group"]) == (
        "B-UT001",
        True,
        "elderly",
    )
    bad = {**flagged, "priority": False}  # a group without the flag breaks the contract
    with pytest.raises(Exception, match="priority_group"):
        schema_validator("ticket-record").validate(bad)

    # The printed slip: read back as the paper comes out of the printer.
    job = max(parts.printer.output_dir.glob("*.bin"), key=lambda p: p.stat().st_mtime_ns)
    sheet = paper(job.read_bytes())
    assert [s.data.decode() for s in decode(sheet)] == ["KIOSK-QUEUE|TEST-01|2026-11-23|B-UT002"]
    text = _slip_text(np.array(sheet.convert("RGB"))[:, :, ::-1])
    assert "UU TIEN" in _plain(text)  # the mark above the number
    assert "B-UT002" in text.splitlines()
    assert "Ưu tiên: Phụ nữ có thai" in text.splitlines()
    plain = paper(ticket_slip(ordinary, site="Phường Thử nghiệm", native_qr=False))
    assert not [
        line
        for line in _plain(_slip_text(np.array(plain.convert("RGB"))[:, :, ::-1]))
        if "UU TIEN" in line
    ]


def test_priority_tickets_are_called_first(parts: Parts) -> None:
    for _ in range(3):
        parts.tickets.take("B")
    first = parts.tickets.take("B", priority="disabled")
    assert first.waiting_ahead == 0  # the three ordinary numbers wait behind it
    after = parts.tickets.take("B")
    assert after.number == "B-004" and after.waiting_ahead == 4  # three earlier + the priority
    areas = {a["code"]: a for a in parts.tickets.areas()}
    assert (areas["B"]["waiting"], areas["B"]["priority_waiting"]) == (5, 1)

    # Central: B-002 at a counter, priority B-UT001 called; averages known.
    stats = {
        "schema": "queue-stats/1",
        "day": "2026-11-23",
        "time": "2026-11-23T02:00:00+00:00",
        "areas": {
            "B": {"serving": 2, "avg_service_s": 300, "counters_open": 1, "priority_serving": 1}
        },
    }
    assert parts.tickets.set_queue_stats(stats)
    second = parts.tickets.take("B", priority="child")
    assert (second.number, second.waiting_ahead, second.estimated_wait_min) == ("B-UT002", 0, 0)
    ordinary = parts.tickets.take("B")
    # B-003 and B-004 are still waiting, and B-UT002 goes before this one.
    assert (ordinary.number, ordinary.waiting_ahead, ordinary.estimated_wait_min) == (
        "B-005",
        3,
        15,
    )
    # Central that does not count the priority series apart: "serving" covers it.
    del stats["areas"]["B"]["priority_serving"]
    assert parts.tickets.set_queue_stats(stats)
    assert parts.tickets.take("B").waiting_ahead == 3


def test_a_group_the_site_does_not_offer_is_refused_in_vietnamese(tmp_path: Path) -> None:
    p = Parts(tmp_path, priority_groups=("elderly", "disabled"))
    try:
        with pytest.raises(UnknownPriorityGroup) as err:
            p.tickets.take("A", priority="pregnant")
        assert err.value.message_vi == "Nhóm ưu tiên này không áp dụng tại đây. Vui lòng chọn lại."
        assert [g["code"] for g in p.tickets.priority_groups()] == ["elderly", "disabled"]
        assert [g["label"].vi for g in p.tickets.priority_groups()] == [
            "Người cao tuổi (từ đủ 60 tuổi)",
            "Người khuyết tật",
        ]
        assert p.tickets.count_today() == 0  # nothing was issued
    finally:
        p.close()


def test_an_existing_ticket_table_is_migrated_without_losing_a_number(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:7]:
        conn.executescript(script)
    conn.execute(
        "INSERT INTO tickets(day, area, seq, number, issued_at, waiting_ahead, "
        "estimated_wait_min, queued) VALUES ('2026-11-23', 'A', 1, 'A-001', 0, 0, NULL, 1)"
    )
    conn.execute("PRAGMA user_version=7")
    conn.commit()
    conn.close()
    p = Parts(tmp_path)  # opens the same kiosk.db: migrates to the current schema
    try:
        assert p.store.schema_version() == len(MIGRATIONS)
        assert p.tickets.take("A").number == "A-002"
        assert p.tickets.take("A", priority="merit").number == "A-UT001"
        assert p.tickets.count_today() == 3
    finally:
        p.close()


# --- satisfaction ratings -------------------------------------------------------------------


def test_ratings_are_hourly_counters_and_telemetry_leaves_out_the_hour_not_over(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "kiosk.db")
    store.open()
    clock = FakeClock(dt.datetime(2026, 11, 23, 9, 40, tzinfo=HCM))
    ratings = RatingService(store=store, clock=clock)
    try:
        for flow, rating in [
            ("ticket", "very_satisfied"),
            ("ticket", "very_satisfied"),
            ("ecopy", "not_satisfied"),
        ]:
            ratings.record(flow, rating)
        with pytest.raises(UnknownRating):
            ratings.record("ticket", "B-001")
        with pytest.raises(UnknownRating):
            ratings.record("somewhere", "satisfied")
        # What the kiosk keeps: counters, no row per tap, nothing to tie a tap to anyone.
        columns = [r[1] for r in store.query("PRAGMA table_info(rating_counts)")]
        assert columns == ["hour", "flow", "rating", "n"]
        assert [tuple(r) for r in store.query("SELECT * FROM rating_counts ORDER BY flow")] == [
            ("2026-11-23T09", "ecopy", "not_satisfied", 1),
            ("2026-11-23T09", "ticket", "very_satisfied", 2),
        ]
        # 09:40: the hour is not over, nothing of it is sent yet.
        assert ratings.telemetry() == {"day": "2026-11-23", "through_hour": 9, "counts": {}}
        clock.at = dt.datetime(2026, 11, 23, 10, 0, 5, tzinfo=HCM)
        ratings.record("ticket", "satisfied")  # in the 10:00 hour: not in the 10:00 sample
        sample = ratings.telemetry()
        assert sample == {
            "day": "2026-11-23",
            "through_hour": 10,
            "counts": {"ecopy": {"not_satisfied": 1}, "ticket": {"very_satisfied": 2}},
        }
        schema = schema_validator("telemetry").schema["properties"]["ratings"]
        schema_validator("telemetry").__class__(schema).validate(sample)
        clock.at = dt.datetime(2026, 11, 24, 0, 30, tzinfo=HCM)  # a new day starts empty
        assert ratings.telemetry()["counts"] == {}
    finally:
        store.close()


def test_priority_record_and_rating_counters_reach_the_fleet_console_through_mosquitto(
    tmp_path: Path,
    broker: Broker,
    fleet_pki: FleetPki,
    make_console: Callable[..., Console],  # noqa: F811
) -> None:
    console = make_console()
    store = Store(tmp_path / "kiosk" / "kiosk.db")
    store.open()
    clock = FakeClock(dt.datetime(2026, 11, 23, 14, 20, tzinfo=HCM))
    ratings = RatingService(store=store, clock=clock)
    for rating in ("very_satisfied", "very_satisfied", "satisfied", "not_satisfied"):
        ratings.record("ticket", rating)
    ratings.record("guide", "satisfied")
    clock.at = dt.datetime(2026, 11, 23, 15, 1, tzinfo=HCM)
    me = fleet_pki.client("HN-RATING-01")
    outbox = Outbox(store, DataKey.load_or_create(tmp_path / "kiosk" / "keys" / "k"))
    tickets = TicketService(
        store=store,
        outbox=outbox,
        kiosk_id="HN-RATING-01",
        settings=ServicesSection(),
        clock=clock,
    )
    tickets.take("F", priority="pregnant")
    client = kiosk_client(
        broker,
        fleet_pki,
        me,
        kiosk_id="HN-RATING-01",
        store=store,
        outbox=outbox,
        telemetry_provider=lambda: {"ratings": ratings.telemetry()},
    )
    client.start()
    try:
        row = wait_until(
            lambda: (console.store.kiosk("HN-RATING-01") or {}).get("telemetry"),
            15,
            "telemetry stored at central",
        )
        sent = row["ratings"]
        assert sent == {
            "day": "2026-11-23",
            "through_hour": 15,
            "counts": {
                "guide": {"satisfied": 1},
                "ticket": {"very_satisfied": 2, "satisfied": 1, "not_satisfied": 1},
            },
        }
        (record,) = wait_until(
            lambda: console.store.records(kiosk_id="HN-RATING-01", with_data=True),
            15,
            "the ticket record stored at central",
        )
        assert (record["kind"], record["id"]) == ("ticket", "ticket-HN-RATING-01-2026-11-23-FUT-1")
        assert (record["data"]["number"], record["data"]["priority_group"]) == (
            "F-UT001",
            "pregnant",
        )
        assert record["data"]["priority"] is True
        web, _ = login(console)
        page = web.get("/kiosks/HN-RATING-01").get_data(as_text=True)
        shown = page.split('id="kiosk-ratings">', 1)[1].split("</dd>", 1)[0]
        assert "ticket: Chưa hài lòng 1 · Hài lòng 1 · Rất hài lòng 2" in shown
        assert "guide: Hài lòng 1" in shown
    finally:
        client.stop()
        store.close()


def test_a_technician_takes_a_priority_ticket_from_the_cli(tmp_path: Path, capsys) -> None:
    from tests.conftest import write_sim_config
    from tests.escpos_readback import native_qr_payloads
    from tests.test_cli_services import kiosk

    config = write_sim_config(tmp_path)
    code, ticket = kiosk(capsys, config, "ticket", "take", "c", "--priority", "disabled")
    assert code == 0 and ticket["number"] == "C-UT001" and ticket["priority"] == "disabled"
    (slip,) = (tmp_path / "printer-out").glob("*.bin")
    assert native_qr_payloads(slip.read_bytes()) == [ticket["follow"]]
    code, areas = kiosk(capsys, config, "ticket", "areas")
    c = next(a for a in areas["areas"] if a["code"] == "C")
    assert (c["issued_today"], c["priority_waiting"]) == (0, 1)
    from edge import cli

    with pytest.raises(SystemExit) as refused:  # argparse refuses a group that does not exist
        cli.main(["ticket", "take", "c", "--priority", "vip", "--config", str(config)])
    assert refused.value.code == 2 and "invalid choice: 'vip'" in capsys.readouterr().err


def test_the_rating_at_a_flow_end_counts_once_and_only_a_known_answer(tmp_path: Path) -> None:
    """The guide's end screen in the daemon's own Flask app (CSRF on, as in service)."""
    import re

    from tests.web_ui_helpers import LoopbackClient, in_process_kiosk

    with in_process_kiosk(tmp_path) as app:
        flask_app = app.web.app
        client = LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)
        ratings = app.services.ratings
        ratings.clock = FakeClock(dt.datetime(2026, 11, 23, 10, 30, tzinfo=HCM))

        def total() -> int:
            return app.store.query("SELECT COALESCE(SUM(n), 0) FROM rating_counts")[0][0]

        page = client.get("/d/p/HT-001").get_data(as_text=True)
        assert page.count('class="btn rate') == 3 and "Rất hài lòng" in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post("/rating/guide", data={"rating": "satisfied"}).status_code == 400
        refused = client.post("/rating/guide", data={"csrf_token": token, "rating": "B-001"})
        assert refused.status_code == 400 and total() == 0
        ok = client.post("/rating/guide", data={"csrf_token": token, "rating": "satisfied"})
        assert (ok.status_code, ok.get_data()) == (204, b"")
        again = client.post("/rating/guide", data={"csrf_token": token, "rating": "satisfied"})
        assert again.status_code == 204 and total() == 1  # one flow end, one answer
        assert 'class="btn rate' not in client.get("/d/p/HT-001").get_data(as_text=True)
        client.post("/d/done", data={"csrf_token": token})  # the flow ends: a new end may ask
        assert 'class="btn rate' in client.get("/d/p/HT-001").get_data(as_text=True)

        # The daemon's telemetry has it once the hour is over.
        assert app.telemetry()["ratings"]["counts"] == {}  # 10:30: the hour is not over
        ratings.clock.at = dt.datetime(2026, 11, 23, 11, 0, tzinfo=HCM)
        sent = app.telemetry()["ratings"]
        assert sent["counts"] == {"guide": {"satisfied": 1}}
        assert set(sent) == {"day", "through_hour", "counts"}
