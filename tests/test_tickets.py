"""Queue tickets: durable numbering across kill -9, day rollover in Asia/Ho_Chi_Minh, waiting
ahead and wait from central's figures, the printed slip (QR read back by zbar), the record."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pyzbar.pyzbar import decode

from edge.adapters.printer_sim import SimulatedPrinter
from edge.config import ServiceArea, ServicesSection
from edge.events import EventBus
from edge.printing import PrintQueue
from edge.services.printouts import ticket_slip
from edge.services.tickets import TicketService, UnknownArea
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from tests.escpos_readback import native_qr_payloads, paper
from tests.mqtt_broker import schema_validator

REPO = Path(__file__).resolve().parent.parent
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


class FakeClock:
    """An injected wall clock (the only thing swapped: time itself)."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


class Parts:
    def __init__(self, root: Path, *, clock: FakeClock | None = None, **settings) -> None:
        self.store = Store(root / "kiosk.db")
        self.store.open()
        self.key = DataKey.load_or_create(root / "keys" / "data.key")
        self.outbox = Outbox(self.store, self.key)
        self.bus = EventBus()
        self.bus.start()
        self.printer = SimulatedPrinter(root / "printer")
        self.printer.plug_in()
        self.queue = PrintQueue(self.printer, store=self.store, key=self.key, bus=self.bus)
        self.clock = clock or FakeClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=HCM))
        self.settings = ServicesSection(**settings)
        self.tickets = TicketService(
            store=self.store,
            outbox=self.outbox,
            kiosk_id="TEST-01",
            settings=self.settings,
            printer=self.queue,
            slip=lambda t, **kw: ticket_slip(t, site="Phường Thử nghiệm", native_qr=False, **kw),
            clock=self.clock,
        )

    def records(self) -> list[dict]:
        return [m.payload for m in self.outbox.pending(10_000) if m.topic == "records/ticket"]

    def close(self) -> None:
        self.bus.stop()
        self.store.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    p = Parts(tmp_path)
    yield p
    p.close()


# --- power cuts -------------------------------------------------------------------------


def _run_until_killed(state: Path, until: int, kill_after: int | None) -> list[str]:
    """Run the taker; SIGKILL it once it has printed kill_after numbers (None: let it finish)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.ticket_taker", str(state), "B", str(until)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if kill_after is not None and len(seen) >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(60)
        proc.stdout.close()
    if kill_after is not None:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 0
    return seen


def test_a_thousand_tickets_across_two_power_cuts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    printed = _run_until_killed(state, 1000, kill_after=300)
    printed += _run_until_killed(state, 1000, kill_after=350)
    printed += _run_until_killed(state, 1000, kill_after=None)

    seqs = [int(n.split("-")[1]) for n in printed]
    assert seqs == sorted(set(seqs)), "printed numbers must strictly increase"
    assert seqs[-1] == 1000

    store = Store(state / "kiosk.db")
    store.open()
    try:
        assert store.integrity() == "ok"
        rows = store.query("SELECT seq, number, queued FROM tickets WHERE area = 'B' ORDER BY seq")
        assert [r["seq"] for r in rows] == list(range(1, 1001)), "no gap, no duplicate"
        assert {r["number"] for r in rows} >= set(printed)
        assert all(r["queued"] == 1 for r in rows)
        outbox = Outbox(store, DataKey.load_or_create(state / "keys" / "data.key"))
        records = [m for m in outbox.pending(5000) if m.topic == "records/ticket"]
        assert sorted(m.payload["data"]["seq"] for m in records) == list(range(1, 1001))
        assert len({m.id for m in records}) == 1000
    finally:
        store.close()


# --- day rollover -------------------------------------------------------------------------


def test_numbers_restart_at_local_midnight_not_utc(parts: Parts) -> None:
    clock = parts.clock
    # 06:30 in Hanoi is 23:30 UTC the day before: the same local day as 09:00.
    clock.at = dt.datetime(2026, 11, 23, 6, 30, tzinfo=HCM)
    assert parts.tickets.take("A").number == "A-001"
    clock.at = dt.datetime(2026, 11, 23, 0, 30, tzinfo=dt.UTC)  # 07:30 local, UTC date changed
    assert parts.tickets.take("A").number == "A-002"
    clock.at = dt.datetime(2026, 11, 23, 23, 59, 59, tzinfo=HCM)
    last = parts.tickets.take("a")
    assert (last.number, last.day) == ("A-003", "2026-11-23")
    clock.at = dt.datetime(2026, 11, 23, 17, 0, 0, tzinfo=dt.UTC)  # 00:00 on the 24th in Hanoi
    first = parts.tickets.take("A")
    assert (first.number, first.day) == ("A-001", "2026-11-24")
    assert parts.tickets.take("C").number == "C-001"  # areas count separately
    assert parts.tickets.count_today() == 2
    ids = [r["id"] for r in parts.store.query("SELECT id FROM outbox")]
    assert "ticket-TEST-01-2026-11-23-A-1" in ids and "ticket-TEST-01-2026-11-24-A-1" in ids


# --- waiting ahead and estimated wait ----------------------------------------------------


def test_waiting_ahead_and_wait_from_central_figures(parts: Parts) -> None:
    t = parts.tickets
    assert (t.take("B").waiting_ahead, t.take("B").waiting_ahead) == (0, 1)
    assert t.take("B").estimated_wait_min is None  # no figures from central: unknown
    stats = {
        "schema": "queue-stats/1",
        "day": "2026-11-23",
        "time": "2026-11-23T02:00:00+00:00",
        "areas": {"B": {"serving": 1, "avg_service_s": 300, "counters_open": 2}},
    }
    assert t.on_queue_stats("res/queue-stats", json.dumps(stats).encode(), None) is None
    ticket = t.take("B")  # B-004: B-002 and B-003 are ahead (B-001 is at a counter)
    assert (ticket.number, ticket.waiting_ahead, ticket.estimated_wait_min) == ("B-004", 2, 5)
    area_b = next(a for a in t.areas() if a["code"] == "B")
    assert area_b == {**area_b, "issued_today": 4, "waiting": 3}
    # Figures older than queue_stats_max_age_s: the wait is unknown again.
    parts.clock.at += dt.timedelta(hours=1)
    assert t.take("B").estimated_wait_min is None
    # Yesterday's figures do not count today.
    parts.clock.at += dt.timedelta(days=1)
    assert t.take("B").waiting_ahead == 0
    assert not t.set_queue_stats({"schema": "queue-stats/1", "areas": "nonsense"})


def test_unknown_area_is_refused_in_vietnamese(parts: Parts) -> None:
    with pytest.raises(UnknownArea) as err:
        parts.tickets.take("Z")
    assert err.value.message_vi.startswith("Khu vực dịch vụ này không có")
    assert err.value.detail["areas"] == ["A", "B", "C", "D", "E", "F"]
    assert parts.store.query("SELECT COUNT(*) FROM tickets")[0][0] == 0


def test_areas_come_from_config(tmp_path: Path) -> None:
    p = Parts(tmp_path, areas=(ServiceArea(code="K", name="Khác"),))
    try:
        assert [a["code"] for a in p.tickets.areas()] == ["K"]
        assert p.tickets.take("K").area_name == "Khác"
    finally:
        p.close()


# --- record and printout ------------------------------------------------------------------


def test_record_for_central_is_a_valid_record(parts: Parts) -> None:
    ticket = parts.tickets.take("D")
    (message,) = [m for m in parts.outbox.pending(10) if m.topic == "records/ticket"]
    assert message.id == "ticket-TEST-01-2026-11-23-D-1"
    wire = {
        **message.payload,
        "id": message.id,
        "seq": message.seq,
        "queued_at": message.payload["time"],
    }
    schema_validator("record").validate(wire)
    schema_validator("ticket-record").validate(message.payload["data"])
    assert message.payload["data"]["number"] == ticket.number == "D-001"


@pytest.mark.parametrize(("width", "profile"), [(80, "TM-T88V"), (58, "POS-5890")])
def test_printed_ticket_qr_reads_back_with_zbar(parts: Parts, width: int, profile: str) -> None:
    ticket = parts.tickets.take("B", print_ticket=False)
    data = ticket_slip(
        ticket, site="Phường Thử nghiệm", paper_width_mm=width, profile=profile, native_qr=False
    )
    sheet = paper(data)  # the QR as a raster image, as a printer without native QR gets it
    assert sheet.width - 32 == (512 if width == 80 else 384)
    assert [s.data.decode() for s in decode(sheet)] == ["KIOSK-QUEUE|TEST-01|2026-11-23|B-001"]
    if width == 80:  # the TM-T88V prints its QR natively (GS ( k)
        native = ticket_slip(ticket, site="Phường Thử nghiệm", paper_width_mm=80)
        assert native_qr_payloads(native) == [ticket.follow]


def test_follow_url_template(tmp_path: Path) -> None:
    p = Parts(tmp_path, ticket_follow_url="https://xephang.example.vn/{kiosk_id}/{day}/{number}")
    try:
        assert p.tickets.take("A").follow == "https://xephang.example.vn/TEST-01/2026-11-23/A-001"
    finally:
        p.close()


def test_ticket_is_printed_and_a_failed_print_is_kept_for_reprint(parts: Parts) -> None:
    ticket = parts.tickets.take("A")
    assert ticket.printed and ticket.printed.printed
    (job,) = list((parts.printer.output_dir).glob("*.bin"))
    assert [s.data.decode() for s in decode(paper(job.read_bytes()))] == [ticket.follow]

    parts.printer.set_sensors(paper="out")
    second = parts.tickets.take("A")
    assert second.number == "A-002" and not second.printed.printed
    (kept,) = parts.queue.jobs(status="failed")
    assert kept["title"] == "Số thứ tự A-002" and kept["kind"] == "ticket"
    parts.printer.set_sensors(paper="ok")
    assert parts.queue.reprint(second.printed.job_id, actor="cli").printed


def test_central_figures_are_kept_for_other_processes(tmp_path: Path) -> None:
    p = Parts(tmp_path)
    try:
        stats = {
            "schema": "queue-stats/1",
            "day": "2026-11-23",
            "time": "2026-11-23T02:00:00+00:00",
            "areas": {"C": {"serving": 2, "avg_service_s": 60}},
        }
        for _ in range(3):
            p.tickets.take("C", print_ticket=False)
        assert p.tickets.set_queue_stats(stats)
        p.tickets.take("C", print_ticket=False)  # stored with this ticket's transaction
        # The CLI is another process: a fresh service over the same database.
        other = TicketService(
            store=p.store,
            outbox=p.outbox,
            kiosk_id="TEST-01",
            settings=p.settings,
            clock=p.clock,
        )
        ticket = other.take("C", print_ticket=False)
        assert (ticket.number, ticket.waiting_ahead, ticket.estimated_wait_min) == ("C-005", 2, 2)
    finally:
        p.close()
