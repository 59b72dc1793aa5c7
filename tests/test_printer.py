"""Printer: receipts as ESC/POS, transports (simulated, device file, network peer), durable jobs."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pyzbar.pyzbar import decode

from edge import config as cfg
from edge.adapters import printer_escpos
from edge.adapters.printer_sim import SimulatedPrinter
from edge.events import EventBus
from edge.printing import JobPurged, PrintQueue
from edge.receipts import Receipt, selftest_page
from edge.store import DataKey, Store
from edge.store.staff import recent
from tests.escpos_readback import native_qr_payloads, paper, raster_images

NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))


def page(native_qr: bool | None = None, width: int = 80) -> bytes:
    return selftest_page(
        kiosk_id="TEST-01",
        site="Phường Thử",
        printer="simulated",
        paper_width_mm=width,
        profile="TM-T88V",
        now=NOW,
        native_qr=native_qr,
    )


def test_test_page_is_whole_escpos_job() -> None:
    data = page()
    assert data.startswith(b"\x1b@")  # ESC @ initialise
    assert b"\x1dV" in data[-8:]  # GS V cut at the end
    assert native_qr_payloads(data) == ["KIOSK-TEST|TEST-01|20261123T093000"]


def test_raster_qr_on_paper_is_read_back_by_zbar() -> None:
    sheet = paper(page(native_qr=False))
    found = [s.data.decode() for s in decode(sheet)]
    assert found == ["KIOSK-TEST|TEST-01|20261123T093000"]


@pytest.mark.parametrize(("width_mm", "dots"), [(80, 512), (58, 384)])
def test_text_is_rasterised_to_the_paper_width(width_mm: int, dots: int) -> None:
    receipt = Receipt(paper_width_mm=width_mm, profile="TM-T88V")
    assert receipt.width_dots == dots
    data = receipt.text("Bản sao điện tử chứng thực " * 6).build()
    (image,) = raster_images(data)
    assert image.width == dots
    assert image.height > 3 * 24  # wrapped onto several lines, not cut off


@pytest.mark.parametrize("title", ["PHIẾU HẸN", "BIÊN NHẬN BẢN SAO CHỨNG THỰC ĐIỆN TỬ ỖẶỆ"])
def test_stacked_marks_on_bold_capitals_are_not_clipped(title: str) -> None:
    """Ế carries a circumflex and an acute above the font's ascent; both must reach the paper."""
    import numpy as np

    receipt = Receipt(paper_width_mm=80, profile="TM-T88V")
    ink = ~np.array(receipt.render_text(title, size=34, bold=True))
    rows = np.flatnonzero(ink.any(axis=1))
    assert rows[0] > 0, "ink touches the top edge: a mark was cut off"
    # Without the stacked marks the ink is shorter: the acute on Ế really reaches the paper.
    plain_title = title.translate(str.maketrans("ẾỖẶỆ", "ÊÔĂÊ"))
    plain = ~np.array(receipt.render_text(plain_title, size=34, bold=True))
    plain_rows = np.flatnonzero(plain.any(axis=1))
    assert rows[-1] - rows[0] > plain_rows[-1] - plain_rows[0]


# --- transports ---------------------------------------------------------------------------


def test_simulated_printer_writes_one_file_per_job(tmp_path: Path) -> None:
    printer = SimulatedPrinter(tmp_path / "out")
    printer.plug_in()
    printer.send(b"\x1b@hello", job_id="a1")
    printer.send(b"\x1b@again", job_id="b2")
    files = sorted((tmp_path / "out").glob("*.bin"))
    assert [f.name.split("-")[-1] for f in files] == ["a1.bin", "b2.bin"]
    assert files[0].read_bytes() == b"\x1b@hello"


def test_simulated_printer_sensors_and_unplugging(tmp_path: Path) -> None:
    printer = SimulatedPrinter(tmp_path / "out")
    printer.plug_in()
    assert printer.status().can_print
    printer.set_sensors(paper="near-end")
    assert printer.status().paper == "near-end"
    printer.set_sensors(paper="out")
    assert not printer.status().can_print
    printer.set_sensors(cover_open=True)
    assert printer.status().cover_open
    (tmp_path / "out").rename(tmp_path / "gone")
    status = printer.status()
    assert not status.online
    assert "unplugged" in status.detail


def test_device_file_transport_delivers_bytes(tmp_path: Path) -> None:
    target = tmp_path / "lp0"
    target.touch()
    transport = printer_escpos.device_file(target, "TM-T88V")
    transport.send(b"\x1b@file-job", job_id="x")
    assert target.read_bytes() == b"\x1b@file-job"
    assert transport.status().online


class FakeNetworkPrinter:
    """A TCP peer on loopback that speaks enough ESC/POS: takes jobs, answers DLE EOT."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = bytearray()
        self.paper = 0x12  # DLE EOT 4: 0x12 paper ok, 0x1E near end, 0x72 out
        self.cover = 0x12  # DLE EOT 2: bit 2 set = cover open
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                while True:
                    try:
                        chunk = conn.recv(65536)
                    except (TimeoutError, OSError):
                        break
                    if not chunk:
                        break
                    if chunk.startswith(b"\x10\x04"):
                        reply = {1: 0x16, 2: self.cover, 4: self.paper}[chunk[2]]
                        conn.sendall(bytes([reply]))
                    else:
                        self.received += chunk

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()


@pytest.fixture
def network_printer() -> Iterator[FakeNetworkPrinter]:
    peer = FakeNetworkPrinter()
    try:
        yield peer
    finally:
        peer.close()


def test_network_transport_sends_and_reads_status(network_printer: FakeNetworkPrinter) -> None:
    transport = printer_escpos.network("127.0.0.1", network_printer.port, 2, "TM-T88V")
    status = transport.status()
    assert (status.online, status.paper, status.cover_open) == (True, "ok", False)
    data = page()
    transport.send(data, job_id="n1")
    threading.Event().wait(0.3)
    assert bytes(network_printer.received) == data
    network_printer.paper = 0x1E
    assert transport.status().paper == "near-end"
    network_printer.paper = 0x72
    network_printer.cover = 0x16
    status = transport.status()
    assert (status.paper, status.cover_open, status.can_print) == ("out", True, False)


def test_network_transport_with_nobody_listening_is_offline() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = printer_escpos.network("127.0.0.1", port, 1, "TM-T88V")
    status = transport.status()
    assert not status.online
    assert "not reachable" in status.detail


# --- the durable job queue ----------------------------------------------------------------


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[tuple[PrintQueue, SimulatedPrinter, EventBus]]:
    store = Store(tmp_path / "k.db")
    store.open()
    bus = EventBus()
    bus.start()
    printer = SimulatedPrinter(tmp_path / "out")
    printer.plug_in()
    key = DataKey.load_or_create(tmp_path / "keys" / "data.key")
    try:
        yield PrintQueue(printer, store=store, key=key, bus=bus), printer, bus
    finally:
        bus.stop()
        store.close()


def test_failed_job_is_kept_and_reprinted_when_the_printer_returns(queue, tmp_path: Path) -> None:
    q, printer, bus = queue
    printer.set_sensors(paper="out")
    outcome = q.submit("receipt", "Biên nhận", b"\x1b@slip-1")
    assert not outcome.printed
    assert outcome.error == "printer is out of paper"
    (job,) = q.jobs(status="failed")
    assert job["id"] == outcome.job_id and job["title"] == "Biên nhận"
    assert list((tmp_path / "out").glob("*.bin")) == []
    printer.set_sensors(paper="ok")
    again = q.reprint(outcome.job_id, actor="cli")
    assert again.printed
    (out,) = (tmp_path / "out").glob("*.bin")
    assert out.read_bytes() == b"\x1b@slip-1"
    assert q.jobs()[0]["status"] == "printed" and q.jobs()[0]["attempts"] == 2
    bus.drain()
    kinds = [e.kind for e in bus.recent("printer.")]
    assert kinds == ["printer.job_failed", "printer.job_printed"]


def test_printer_condition_changes_become_events(queue) -> None:
    q, printer, bus = queue
    q.status()
    printer.set_sensors(paper="near-end")
    q.status()
    printer.set_sensors(paper="out", cover_open=True)
    q.status()
    printer.output_dir.rename(printer.output_dir.with_name("gone"))
    q.status()
    bus.drain()
    assert [e.kind for e in bus.recent("printer.")] == [
        "printer.paper_near_end",
        "printer.paper_out",
        "printer.cover_open",
        "printer.offline",
    ]


def test_pulled_printer_keeps_the_job(queue, tmp_path: Path) -> None:
    q, _, _ = queue
    (tmp_path / "out").rename(tmp_path / "unplugged")
    outcome = q.submit("ticket", "Số thứ tự", b"\x1b@ticket")
    assert not outcome.printed and "offline" in outcome.error
    (tmp_path / "unplugged").rename(tmp_path / "out")
    assert q.reprint(outcome.job_id, actor="cli").printed


def test_job_bytes_are_sealed_at_rest(queue, tmp_path: Path) -> None:
    q, _, _ = queue
    q.submit("receipt", "Biên nhận", b"NGUYEN VAN MAU 001099012345")
    raw = (tmp_path / "k.db").read_bytes() + (tmp_path / "k.db-wal").read_bytes()
    assert b"001099012345" not in raw


# --- how long slips are kept (issue 21, item 3) ------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[tuple[PrintQueue, SimulatedPrinter, Clock]]:
    """A queue with the default [printer] windows (10 min personal, 24 h at most) and a clock."""
    config = cfg.Config.model_validate(
        {"kiosk": {"id": "TEST-01"}, "printer": {"type": "simulated"}}
    )
    store = Store(tmp_path / "k.db")
    store.open()
    printer = SimulatedPrinter(tmp_path / "out")
    printer.plug_in()
    key = DataKey.load_or_create(tmp_path / "keys" / "data.key")
    clock = Clock()
    try:
        yield (
            PrintQueue.from_config(
                printer, config, store=store, key=key, bus=EventBus(), clock=clock
            ),
            printer,
            clock,
        )
    finally:
        store.close()


def on_disk(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("k.db*"))


def test_personal_slips_are_erased_minutes_after_printing_others_within_a_day(
    timed, tmp_path: Path
) -> None:
    q, printer, clock = timed
    slip = b"\x1b@NGUYEN VAN MAU 12 HANG BAC" + bytes(range(256)) * 24  # raster: several pages
    post = q.submit("post", "Gửi kết quả qua bưu điện R-1", slip)
    ticket = q.submit("ticket", "Số thứ tự B-027", b"\x1b@B-027")
    printer.set_sensors(paper="out")
    receipt = q.submit("receipt", "Biên nhận bản sao K1-1", b"\x1b@receipt K1-1")
    assert post.printed and ticket.printed and not receipt.printed
    sealed = q.store.query("SELECT payload FROM print_jobs WHERE id = ?", (post.job_id,))[0][0]
    q.store.query("PRAGMA wal_checkpoint(TRUNCATE)")  # into the database file, as after a restart
    pieces = (sealed[:48], sealed[-48:])  # a large value spans pages: its two ends
    assert all(p in on_disk(tmp_path) for p in pieces)

    clock.now += 9 * 60 + 59  # still within its 10 minutes: kept, reprintable
    assert q.purge() == 0 and q.job(post.job_id)["kept"]
    clock.now += 2
    assert not q.job(post.job_id)["kept"]  # due: no longer offered, even before the purge ran
    assert q.purge() == 1
    assert not any(p in on_disk(tmp_path) for p in pieces)  # overwritten, not only unlinked
    printed = len(list((tmp_path / "out").glob("*.bin")))
    with pytest.raises(JobPurged, match="no longer kept"):
        q.reprint(post.job_id, actor="cli")
    assert len(list((tmp_path / "out").glob("*.bin"))) == printed
    assert q.job(post.job_id)["title"] == "Gửi kết quả qua bưu điện R-1"  # the row stays

    # The slip that did not print waits for the printer (hours), then gets its 10 minutes.
    clock.now += 23 * 3600
    assert q.purge() == 0
    printer.set_sensors(paper="ok")
    assert q.reprint(receipt.job_id, actor="lan").printed
    clock.now += 10 * 60
    assert q.purge() == 1 and not q.job(receipt.job_id)["kept"]
    assert q.job(ticket.job_id)["kept"]  # no personal data: kept for the day
    clock.now += 3600
    assert q.purge() == 1 and not q.job(ticket.job_id)["kept"]
    with pytest.raises(JobPurged):
        q.reprint(ticket.job_id, actor="cli")


def test_every_reprint_is_audited_with_who_and_which_job(timed) -> None:
    q, _, clock = timed
    job = q.submit("receipt", "Biên nhận bản sao K1-2", b"\x1b@receipt K1-2")
    clock.now += 60
    assert q.reprint(job.job_id, actor="lan.nguyen").printed
    (row,) = recent(q.store)
    assert (row["actor"], row["action"], row["subject"], row["kind"], row["at"]) == (
        "lan.nguyen",
        "print.reprint",
        job.job_id,
        "receipt",
        clock.now,
    )
