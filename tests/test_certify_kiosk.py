"""The kiosk side of certification (issue 16), on real parts: pages scanned by the kiosk's own
pipeline from photographed documents, the capture package signed with the kiosk's fleet mTLS
device key and queued in the SQLite outbox with its row, a real Mosquitto with mTLS and the
shipped ACL carrying the package to central and central's answers back, the e-copy session
waiting for the officer, printing the receipt or the request slip on the simulated printer."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509

from edge.adapters.a4printer_sim import FolderA4Printer
from edge.adapters.printer_sim import SimulatedPrinter
from edge.certify.requests import (
    MAX_PACKAGE_BYTES,
    PICKUP_TRIES,
    RECORD_TOPIC,
    CertRequests,
    CollectRefused,
    Original,
    RequestRefused,
    device_signer,
    pickup_code,
)
from edge.copies.code import CopySequence, parse_code
from edge.events import EventBus
from edge.fees import Fee
from edge.fleet import FleetClient
from edge.fleet.inbox import Malformed, parse_cert_result
from edge.printing import PrintQueue
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from edge.vision.page import scan
from protocol import certify
from protocol.schemas import validator
from tests import pages as docs
from tests.copies_helpers import write_config
from tests.mqtt_broker import Broker, FleetPki, Peer, assert_valid, kiosk_client, wait_until

KIOSK = "HCM-Q1-007"
CITIZEN = {"id_number": "079123456789", "name": "Nguyễn Thị Hoa"}
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
# A Monday at 10:00 in Ho Chi Minh City: office open, the copy due at 17:00 the same day.
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZONE).timestamp()


def scanned(seed: int, kind: str = "birth_certificate") -> Any:
    """A page as the kiosk takes it: photographed at the camera's resolution, then scanned."""
    return scan(docs.photographed(seed, kind).image)


@pytest.fixture(scope="module")
def pages3() -> list[Any]:
    return [scanned(seed) for seed in (11, 12, 13)]


class Clock:
    def __init__(self, at: float = MONDAY_10) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


class KioskSide:
    """A kiosk's store, outbox and certification requests, signing with its fleet identity."""

    def __init__(
        self, root: Path, pki: FleetPki, *, check: Callable[..., Any] | None = None
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.store = Store(root / "kiosk.db")
        self.store.open()
        self.key = DataKey.load_or_create(root / "keys" / "data.key")
        self.outbox = Outbox(self.store, self.key)
        self.identity = pki.client(KIOSK)
        self.clock = Clock()
        self.sequence = CopySequence(self.store, root / "seq.floor", block=1)
        self.queued = 0

        def kicked() -> None:
            self.queued += 1

        self.certify = CertRequests(
            store=self.store,
            key=self.key,
            outbox=self.outbox,
            kiosk_id=KIOSK,
            reserve=self.sequence.reserve,
            signer=lambda: device_signer(self.identity.key, self.identity.cert),
            camera={"type": "picamera2", "width": 2304, "height": 1296},
            check_original=check,
            on_queued=kicked,
            clock=self.clock,
        )
        self.fleet: FleetClient | None = None

    def connect(self, broker: Broker, pki: FleetPki) -> None:
        self.fleet = kiosk_client(
            broker,
            pki,
            self.identity,
            kiosk_id=KIOSK,
            store=self.store,
            outbox=self.outbox,
        )
        self.fleet.listen(certify.RESULT_SUFFIX, self.certify.on_result)
        self.fleet.start()
        wait_until(lambda: self.fleet.subscribed, 10, "kiosk connected and subscribed")

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        self.store.close()


@pytest.fixture
def kiosk_side(tmp_path: Path, fleet_pki: FleetPki) -> Iterator[KioskSide]:
    side = KioskSide(tmp_path / "kiosk", fleet_pki)
    yield side
    side.close()


def fee(pages: int) -> Fee:
    amount = min(2 * 2000 + max(0, pages - 2) * 1000, 200_000) if pages > 2 else pages * 2000
    return Fee(pages, amount, amount, False)


def result(code: str, status: str, **extra: Any) -> dict[str, Any]:
    """A cert-result/1 as central's Certifier sends it (protocol/schemas/cert-result.json)."""
    now = dt.datetime.now(dt.UTC)
    if status == "queued":
        extra = {
            "expected_wait_s": 0,
            "deadline": (now + dt.timedelta(hours=4)).isoformat(),
        } | extra
    if status == "refused" and extra.get("reason_code") in certify.REFUSAL_REASONS:
        vi, en = certify.REFUSAL_REASONS[extra["reason_code"]]
        extra = {"reason_vi": vi, "reason_en": en} | extra
    return {
        "schema": certify.CERT_RESULT,
        "kiosk_id": KIOSK,
        "request_id": code,
        "status": status,
        "time": now.isoformat(),
        **extra,
    }


def certified_pdf(code: str) -> bytes:
    """A real PDF standing for the copy central's officer signed (the signing is central's)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (200, 280), "white").save(out, format="PDF")
    return out.getvalue()


def approved(code: str) -> dict[str, Any]:
    pdf = certified_pdf(code)
    return result(
        code,
        "approved",
        number=123,
        book="01/2026-SCTĐT/BS",
        copy_code=code,
        certified_at=dt.datetime.now(dt.UTC).isoformat(),
        qr=f"HTTPS://CHUNGTHUC.EXAMPLE.VN/V/{code}",
        officer_name="Nguyễn Văn An",
        pdf=base64.b64encode(pdf).decode(),
        sha256=hashlib.sha256(pdf).hexdigest(),
    )


# --- the package -------------------------------------------------------------------------


def test_each_original_is_one_signed_request_queued_with_its_row(
    kiosk_side: KioskSide, fleet_pki: FleetPki, pages3: list[Any]
) -> None:
    seen: list[tuple[int, str]] = []

    def check(pages: Any, text: str) -> list[dict[str, Any]]:
        seen.append((len(pages), text))
        return [{"check": "photocopy", "status": "pass", "score": 0.02}]

    kiosk_side.certify.check_original = check
    originals = [
        Original(
            pages3[:2], "birth_certificate", "GIẤY KHAI SINH\nHọ tên", {"name": "A"}, [88, 90]
        ),
        Original(pages3[2:], "birth_certificate", "GIẤY KHAI SINH", {}, [91]),
    ]
    codes = kiosk_side.certify.submit(
        originals,
        CITIZEN,
        fees=[fee(2), fee(1)],
        delivery={"channel": "email", "address": "hoa@example.vn"},
        paid=True,
        reference="AB12CD34",
    )
    assert len(codes) == 2 and codes[0] != codes[1]
    assert all(parse_code(c).kiosk_id == KIOSK for c in codes)
    assert seen == [(2, "GIẤY KHAI SINH\nHọ tên"), (1, "GIẤY KHAI SINH")]
    assert kiosk_side.queued == 1  # the fleet is kicked once the requests are in the outbox
    queued = kiosk_side.outbox.pending()
    assert [m.id for m in queued] == [f"cert-{c}" for c in codes]
    issuers = [x509.load_pem_x509_certificate(fleet_pki.ca_file.read_bytes())]
    for message, code, n_pages, amount in zip(queued, codes, (2, 1), (4000, 2000), strict=True):
        assert message.topic == RECORD_TOPIC and message.kind == "record"
        record = message.payload
        assert (record["schema"], record["kind"], record["kiosk_id"]) == (
            "record/1",
            "cert-request",
            KIOSK,
        )
        package = record["data"]
        assert not list(validator("cert-request").iter_errors(package))
        signer = certify.verify_package(package, issuers, KIOSK)
        assert signer.subject.rfc4514_string() == f"CN={KIOSK}"
        assert package["code"] == code and package["originals"] == 2
        assert len(package["pages"]) == n_pages and package["fee"]["fee_vnd"] == amount
        assert package["citizen"] == CITIZEN and package["checks"][0]["check"] == "photocopy"
        assert package["capture"]["camera"]["type"] == "picamera2"
        assert package["due_at"].startswith("2026-11-23T17:00:00+07:00")
        page = package["pages"][0]
        jpeg = base64.b64decode(page["jpeg_base64"])
        assert jpeg[:2] == b"\xff\xd8" and hashlib.sha256(jpeg).hexdigest() == page["sha256"]
        assert page["dpi"] == 200 and page["width"] > 1500 and len(page["quad"]) == 4
        assert "sharpness" in page["quality"]
        # A changed byte breaks the signature.
        tampered = json.loads(json.dumps(package))
        tampered["citizen"]["name"] = "Người khác"
        with pytest.raises(certify.PackageInvalid):
            certify.verify_package(tampered, issuers, KIOSK)
    # The kiosk's own rows; the citizen sealed at rest: no name or ID number in the file.
    states = kiosk_side.certify.states(codes)
    assert [(s.original, s.pages, s.status, s.channel) for s in states] == [
        (1, 2, "sent", "email"),
        (2, 1, "sent", "email"),
    ]
    kiosk_side.store.close()
    raw = (kiosk_side.store.path).read_bytes()
    assert CITIZEN["id_number"].encode() not in raw
    assert CITIZEN["name"].encode() not in raw and b"hoa@example.vn" not in raw
    kiosk_side.store.open()


def test_three_a4_pages_fit_far_below_the_broker_limit(
    kiosk_side: KioskSide, pages3: list[Any]
) -> None:
    codes = kiosk_side.certify.submit(
        [Original(pages3, "birth_certificate", "x")],
        CITIZEN,
        fees=[fee(3)],
        delivery={"channel": "kiosk"},
    )
    (message,) = kiosk_side.outbox.pending()
    size = len(json.dumps(message.payload, ensure_ascii=False).encode())
    print(f"\ncert-request record, 3 A4 pages at 200 dpi: {size} bytes ({size / 2**20:.2f} MiB)")
    assert 100_000 < size < MAX_PACKAGE_BYTES / 4
    assert kiosk_side.certify.get(codes[0]).pages == 3


def test_nothing_is_queued_when_the_device_key_is_missing(
    kiosk_side: KioskSide, tmp_path: Path, pages3: list[Any]
) -> None:
    kiosk_side.certify.signer = lambda: device_signer(tmp_path / "no.key", tmp_path / "no.crt")
    with pytest.raises(RequestRefused):
        kiosk_side.certify.submit(
            [Original(pages3[:1])], CITIZEN, fees=[fee(1)], delivery={"channel": "kiosk"}
        )
    with pytest.raises(RequestRefused):
        kiosk_side.certify.submit(
            [Original(pages3[:1])], CITIZEN, fees=[fee(1)], delivery={"channel": "fax"}
        )
    assert kiosk_side.outbox.pending() == []
    assert kiosk_side.store.query("SELECT COUNT(*) FROM cert_requests")[0][0] == 0


def test_art7_due_time_and_office_hours(kiosk_side: KioskSide) -> None:
    c = kiosk_side.certify
    friday_16 = dt.datetime(2026, 11, 27, 16, 0, tzinfo=ZONE)
    assert c.due(friday_16) == dt.datetime(2026, 11, 30, 17, 0, tzinfo=ZONE)  # next Monday
    assert c.office_open(dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZONE))
    assert not c.office_open(dt.datetime(2026, 11, 23, 18, 0, tzinfo=ZONE))
    assert not c.office_open(dt.datetime(2026, 11, 29, 10, 0, tzinfo=ZONE))  # Sunday


def test_configured_holidays_move_the_due_time_and_close_the_office(tmp_path: Path) -> None:
    """[certify] holidays reach the kiosk's requests (from_config): Art. 7 skips them."""
    from edge import config as cfg
    from edge.certify.requests import from_config

    path = write_config(tmp_path)
    with path.open("a", encoding="utf-8") as f:
        f.write("\n[certify]\nholidays = [2026-11-30]\n")  # a Monday off
    config = cfg.load(path)
    config.storage.state_dir.mkdir(parents=True, mode=0o700)
    store = Store(config.storage.db_path)
    store.open()
    try:
        key = DataKey.load_or_create(config.storage.data_key_path)
        c = from_config(config, store=store, key=key, outbox=Outbox(store, key), reserve=lambda: 1)
        friday_16 = dt.datetime(2026, 11, 27, 16, 0, tzinfo=ZONE)
        assert c.due(friday_16) == dt.datetime(2026, 12, 1, 17, 0, tzinfo=ZONE)  # Tuesday
        assert not c.office_open(dt.datetime(2026, 11, 30, 10, 0, tzinfo=ZONE))
    finally:
        store.close()


# --- central's answers over a real Mosquitto ----------------------------------------------


def test_the_package_reaches_central_and_answers_come_back(
    kiosk_side: KioskSide,
    broker: Broker,
    fleet_pki: FleetPki,
    central: Peer,
    pages3: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kiosk_side.connect(broker, fleet_pki)
    codes = kiosk_side.certify.submit(
        [Original(pages3[:1], "birth_certificate"), Original(pages3[1:2]), Original(pages3[2:])],
        CITIZEN,
        fees=[fee(1)] * 3,
        delivery={"channel": "post"},
    )
    kiosk_side.fleet.kick()
    topic = f"kiosk/v1/{KIOSK}/{RECORD_TOPIC}"
    for code in codes:
        got = central.wait_for(topic, lambda m, c=code: m.json()["data"]["code"] == c, timeout=20)
        issuers = [x509.load_pem_x509_certificate(fleet_pki.ca_file.read_bytes())]
        certify.verify_package(got.json()["data"], issuers, KIOSK)
    wait_until(lambda: kiosk_side.outbox.pending() == [], 10, "outbox drained on PUBACK")

    answers = certify.result_topic("kiosk/v1", KIOSK)
    a, r, s = codes
    central.publish(answers, json.dumps(result(a, "queued", position=3, expected_wait_s=240)))
    wait_until(lambda: kiosk_side.certify.get(a).status == "queued", 10, "queued")
    assert (kiosk_side.certify.get(a).position, kiosk_side.certify.get(a).wait_min) == (3, 4)

    caplog.set_level(logging.INFO)
    central.publish(answers, b"{not json")
    central.publish(answers, json.dumps(result(b"x".decode(), "approved")))  # no PDF: malformed
    central.publish(answers, json.dumps(result("HCM-Q1-007-261123-999999-X", "queued", position=1)))
    central.publish(answers, json.dumps(approved(a)))
    wait_until(lambda: kiosk_side.certify.get(a).status == "approved", 10, "approved")
    state = kiosk_side.certify.get(a)
    assert (state.number, state.book) == ("123", "01/2026-SCTĐT/BS")
    assert state.qr == f"HTTPS://CHUNGTHUC.EXAMPLE.VN/V/{a}"
    assert kiosk_side.certify.pdf(a) == certified_pdf(a)
    logged = caplog.text
    assert "certification result ignored" in logged and "unknown request" in logged
    assert CITIZEN["name"] not in logged and CITIZEN["id_number"] not in logged

    central.publish(answers, json.dumps(result(r, "refused", reason_code="not_original")))
    central.publish(answers, json.dumps(result(s, "see_staff", reason_text="Mời gặp cán bộ")))
    wait_until(lambda: kiosk_side.certify.get(s).status == "see_staff", 10, "see_staff")
    refused = kiosk_side.certify.get(r)
    assert (
        refused.status == "refused"
        and refused.reason_text == certify.REFUSAL_REASONS["not_original"]
    )
    # A late or repeated answer does not undo the officer's decision.
    central.publish(answers, json.dumps(result(a, "queued", position=1)))
    central.publish(answers, json.dumps(result(r, "refused", reason_code="not_original")))
    wait_until(lambda: "after the answer" in caplog.text, 10, "late answer logged")
    assert kiosk_side.certify.get(a).status == "approved"


def test_another_kiosk_cannot_answer_for_central(
    kiosk_side: KioskSide, broker: Broker, fleet_pki: FleetPki, central: Peer, pages3: list[Any]
) -> None:
    """The ACL: only central writes <prefix>/<kiosk>/cert; another kiosk cannot."""
    kiosk_side.connect(broker, fleet_pki)
    (code,) = kiosk_side.certify.submit(
        [Original(pages3[:1])], CITIZEN, fees=[fee(1)], delivery={"channel": "kiosk"}
    )
    answers = certify.result_topic("kiosk/v1", KIOSK)
    rogue = Peer(broker, fleet_pki.client("HCM-Q1-008")).connect()
    try:
        rogue.subscribe(answers)  # granted, but every delivery is filtered
        reason = rogue.publish(answers, json.dumps(result(code, "refused", reason_code="other")))
        assert str(reason) == "Not authorized"
        central.publish(
            answers, json.dumps(result(code, "queued", position=1, expected_wait_s=120))
        )
        wait_until(lambda: kiosk_side.certify.get(code).status != "sent", 10, "central's answer")
        assert kiosk_side.certify.get(code).status == "queued"  # the forged refusal never came
        assert [m.topic for m in rogue.received()] == []  # nor does the rogue hear the answer
    finally:
        rogue.close()


def test_results_are_checked_before_use() -> None:
    good = approved("HCM-Q1-007-261123-000001-X")
    assert parse_cert_result(json.dumps(good).encode(), KIOSK)["status"] == "approved"
    for bad in (
        {**good, "kiosk_id": "HN-01"},
        {**good, "status": "maybe"},
        {**good, "pdf": base64.b64encode(b"not a pdf").decode()},
        {k: v for k, v in good.items() if k != "number"},
        result("C", "refused"),  # no reason
        result("C", "refused", reason_code="i-do-not-like-it"),
    ):
        with pytest.raises(Malformed):
            parse_cert_result(json.dumps(bad).encode(), KIOSK)


# --- the A4 printer port -----------------------------------------------------------------


def test_the_simulated_a4_printer_writes_each_copy_as_a_pdf(tmp_path: Path) -> None:
    from edge.ports.a4printer import A4PrintFailed

    printer = FolderA4Printer(tmp_path / "a4")
    job = printer.print_pdf("Bản sao", certified_pdf("X"))
    assert (tmp_path / "a4" / f"{job}.pdf").read_bytes() == certified_pdf("X")
    with pytest.raises(A4PrintFailed):
        printer.print_pdf("x", b"not a pdf")
    printer.connected = False
    with pytest.raises(A4PrintFailed):
        printer.print_pdf("x", certified_pdf("X"))


def test_the_cups_adapter_hands_the_pdf_to_lp(tmp_path: Path) -> None:
    """`lp` faked at the lowest port: a script that records its arguments and input."""
    from edge.adapters.a4printer_cups import CupsA4Printer
    from edge.ports.a4printer import A4PrintFailed

    lp = tmp_path / "lp"
    lp.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/job.pdf\n'
        "echo 'request id is A4-42 (1 file(s))'\n"
    )
    lp.chmod(0o755)
    job = CupsA4Printer("A4-office", lp=str(lp)).print_pdf("Bản sao", certified_pdf("X"))
    assert job == "A4-42"
    assert (tmp_path / "job.pdf").read_bytes() == certified_pdf("X")
    assert "-d A4-office" in (tmp_path / "args").read_text()
    with pytest.raises(A4PrintFailed):
        CupsA4Printer(lp=str(tmp_path / "missing")).print_pdf("x", certified_pdf("X"))


# --- the session: waiting, the result, the slip ---------------------------------------------


@pytest.fixture(scope="module")
def verifier() -> Any:
    from edge.vision.face import FaceVerifier

    return FaceVerifier()


@pytest.fixture
def session_kiosk(
    kiosk_side: KioskSide, tmp_path: Path, verifier: Any
) -> Iterator[tuple[Any, ...]]:
    """An e-copy session whose citizen is identified and has two originals captured."""
    from edge.adapters.payment_sim import SimulatedPayment
    from edge.services.ecopy import EcopySession
    from tests.test_ecopy_session import card_scene, identify_by_staff, place

    bus = EventBus()
    bus.start()
    transport = SimulatedPrinter(tmp_path / "printer")
    transport.plug_in()
    printer = PrintQueue(transport, store=kiosk_side.store, key=kiosk_side.key, bus=bus)
    a4 = FolderA4Printer(tmp_path / "a4")

    class Quotes:
        def quote(self, pages: int) -> Fee:
            from edge.config import CopiesSection
            from edge.fees import quote

            return quote(pages, CopiesSection(fee_channel="at-kiosk"), KIOSK)

    up = {"central": True}
    shot1 = docs.photographed(2, "birth_certificate", size=docs.PREVIEW)
    frame, _ = card_scene(shot1.doc.fields["name"])
    from edge.services.consent import ConsentStore
    from edge.services.identify import VerificationSession

    identity = VerificationSession(
        consents=ConsentStore(kiosk_side.store, kiosk_side.key, kiosk_id=KIOSK),
        verifier=verifier,
        new_challenge=lambda: None,
        bus=bus,
    )
    s = EcopySession(
        identity,
        copies=Quotes(),
        payment=SimulatedPayment(qr=lambda fee, ref: None),
        bus=bus,
        clock=kiosk_side.clock,
        certify=kiosk_side.certify,
        wait_s=180,
        central_up=lambda: up["central"],
        printer=printer,
        a4printer=a4,
        print_copy=True,
        slip_options={"site": "UBND Phường Bến Nghé"},
    )
    identify_by_staff(s, frame)
    assert not s.new_original()  # no page yet: nothing to close
    place(s, shot1.image)
    assert s.new_original()
    place(s, docs.photographed(5, "other", size=docs.PREVIEW).image)
    assert s.originals() == [[1], [2]]
    assert s.read_pages() is None
    try:
        yield s, bus, up, tmp_path
    finally:
        s.close()
        bus.stop()


def test_a_session_sends_one_request_per_original_and_prints_the_receipt(
    session_kiosk: tuple[Any, ...], kiosk_side: KioskSide
) -> None:
    s, _, _, tmp_path = session_kiosk
    fees = s.quotes()
    assert [f.fee_vnd for f in fees] == [2000, 2000]  # a fee per original
    assert s.quote().fee_vnd == 4000 and [o["n"] for o in s.fee_screen()["originals"]] == [1, 2]
    assert s.issue() == "fee"  # not paid
    s.payment.confirm(s.reference)
    assert s.give_contact("", "kiosk") == "issue"
    assert s.issue() == "wait" and len(s.codes) == 2
    assert s.pages == [] and s.issue() == "wait"  # the scans go; a second press sends nothing
    assert len(kiosk_side.outbox.pending()) == 2
    state = s.wait_state()
    assert state["next"] == "wait" and [r["status"] for r in state["requests"]] == ["sent"] * 2
    assert state["requests"][0]["status_text"].vi == "Đã gửi, đang chờ xếp hàng"
    a, b = s.codes
    kiosk_side.certify.apply(parse_cert_result(json.dumps(approved(a)).encode(), KIOSK))
    kiosk_side.clock.at += 30
    state = s.wait_state()
    assert state["next"] == "wait" and state["left_s"] == 150
    assert state["requests"][0]["status_text"].vi == "Đã chứng thực"
    receipts = sorted((tmp_path / "printer").glob("*.bin"))
    assert len(receipts) == 1  # the approved original's receipt, once
    assert list((tmp_path / "a4").glob("*.pdf"))  # and its copy on the A4 printer
    s.wait_state()
    assert len(sorted((tmp_path / "printer").glob("*.bin"))) == 1
    kiosk_side.certify.apply(result(b, "refused", reason_code="damaged"))
    state = s.wait_state()
    assert state["next"] == "result"
    refused = state["requests"][1]
    assert refused["reason"].vi == "Bản chính bị hư hỏng, cũ nát, không xác định được nội dung"
    assert refused["advice"].vi.startswith("Vui lòng mang bản gốc đến quầy")


def test_see_staff_calls_staff(session_kiosk: tuple[Any, ...], kiosk_side: KioskSide) -> None:
    s, bus, _, _ = session_kiosk
    s.payment.confirm(s.reference)
    s.give_contact("hoa@example.vn")
    assert s.issue() == "wait"
    bus.drain()
    kiosk_side.certify.apply(result(s.codes[0], "see_staff"))
    s.wait_state()
    s.wait_state()
    bus.drain()
    # Once, from the certification step (the identity step's own call is not this one).
    calls = [e for e in bus.recent("help.") if e.source == "certify"]
    assert [e.kind for e in calls] == ["help.requested"]


@pytest.mark.parametrize("why", ["timeout", "central_down", "office_closed"])
def test_no_answer_in_time_gives_a_request_slip(
    session_kiosk: tuple[Any, ...], kiosk_side: KioskSide, why: str
) -> None:
    s, _, up, tmp_path = session_kiosk
    s.payment.confirm(s.reference)
    s.give_contact("", "post")
    assert s.issue() == "wait"
    assert s.wait_state()["next"] == "wait"
    if why == "timeout":
        kiosk_side.clock.at += 179
        assert s.wait_state()["next"] == "wait"
        kiosk_side.clock.at += 1
    elif why == "central_down":
        up["central"] = False
    else:
        kiosk_side.clock.at += 8 * 3600  # 18:00
    state = s.wait_state()
    assert state["next"] == "slip"
    due = state["requests"][0]["due_at"]
    assert (
        due == dt.datetime(2026, 11, 23, 17, 0, tzinfo=ZONE)
        and state["requests"][0]["channel"] == "post"
    )
    assert s.print_slip() and s.print_slip()
    (slip,) = sorted((tmp_path / "printer").glob("*.bin"))  # printed once
    assert slip.stat().st_size > 1000
    assert all(st.printed for st in kiosk_side.certify.states(s.codes))


# --- the screens, through the kiosk's Flask app (in process, simulated kiosk) --------------------


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
    """The daemon in process; a test-only route hands the client an e-copy session that has
    sent two originals (as /a/issue leaves it), so the screens after it can be driven."""
    from tests.copies_helpers import page_image
    from tests.ecopy_helpers import ecopy_session, plant_route
    from tests.web_ui_helpers import in_process_kiosk

    planted: dict[str, Any] = {"central": True}
    with in_process_kiosk(tmp_path_factory.mktemp("ui")) as app:
        app.certify.clock = Clock()  # a Monday, 10:00: the officers are at work
        flask_app = app.web.app

        def plant_session() -> Any:
            work = ecopy_session(
                app,
                wait_s=planted.get("wait_s", 180),
                central_up=lambda: planted["central"],
                printer=app.printer,
                slip_options={"site": "UBND Phường Bến Nghé"},
            )
            page = SimpleNamespace(image=page_image(1, width=827, height=1170), dpi=100)
            work.pickup = pickup_code()
            work.codes = app.certify.submit(
                [Original([page]), Original([page, page])],
                CITIZEN,
                fees=[fee(1), fee(2)],
                delivery={"channel": "kiosk"},
                pickup=work.pickup,
            )
            planted["pickup"] = work.pickup
            work.submitted_at = work.clock()
            planted["codes"] = work.codes
            return work

        plant_route(flask_app, "/test/plant", plant_session)
        yield app, flask_app, planted


def ui_client(ui: tuple[Any, Any, dict[str, Any]]) -> Any:
    from tests.ecopy_helpers import planted_client

    return planted_client(ui[1], "/test/plant")


def headline_of(response: Any) -> str:
    import html
    import re

    found = re.search(r'<h1 id="headline"[^>]*>(.*?)</h1>', response.get_data(as_text=True), re.S)
    assert found is not None
    return html.unescape(found.group(1)).strip()


def text_of(response: Any) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def test_waiting_screen_shows_each_original_then_the_refusal(ui: Any) -> None:
    app, _, planted = ui
    planted["central"] = True
    client = ui_client(ui)
    a, b = planted["codes"]
    page = client.get("/a/wait")
    assert page.status_code == 200
    shown = " ".join(text_of(page).split())
    assert "Đang chờ cán bộ chứng thực…" in shown
    assert "Bản gốc 1" in shown and "Bản gốc 2" in shown and a in shown and b in shown
    app.certify.apply(result(a, "queued", position=2, expected_wait_s=300))
    poll = client.post("/a/wait/poll").get_json()
    assert "next" not in poll and f"{a}:queued:2:5" in poll["version"]
    assert poll["message"].startswith("Còn khoảng")
    shown = " ".join(text_of(client.get("/a/wait")).split())
    assert "Đang xếp hàng" in shown and "khoảng 5 phút" in shown
    app.certify.apply(result(a, "refused", reason_code="not_legalised"))
    app.certify.apply(result(b, "see_staff"))
    poll = client.post("/a/wait/poll").get_json()
    assert poll["next"].endswith("/a/result")
    assert client.get("/a/wait").headers["Location"].endswith("/a/result")
    shown = " ".join(text_of(client.get("/a/result")).split())
    assert headline_of(client.get("/a/result")) == "Cán bộ chứng thực đã trả lời"
    assert "Giấy tờ do nước ngoài cấp chưa được hợp pháp hóa lãnh sự" in shown
    assert "Vui lòng mang bản gốc đến quầy tiếp nhận" in shown
    assert "Cán bộ đề nghị bạn gặp nhân viên" in shown
    app.bus.drain()
    # Staff called for the see_staff original (by the certification step, not the identity's).
    (call,) = [e for e in app.bus.recent("help.requested") if e.source == "certify"]
    assert (call.detail["screen"], call.detail["reason"]) == ("ecopy.result", "see_staff")
    # The result screen then waits for them: no idle wipe, its poll keeps the session.
    html = client.get("/a/result").get_data(as_text=True)
    assert 'data-idle-free="true"' in html and 'id="staff-called"' in html
    assert (
        client.post("/help/poll").get_json()["message"] == "Đã gọi nhân viên. Vui lòng ở lại ki-ốt."
    )


def test_no_answer_in_time_leaves_with_the_slip_and_its_due_time(ui: Any) -> None:
    app, _, planted = ui
    planted["central"] = False  # central unreachable
    client = ui_client(ui)
    a, b = planted["codes"]
    assert client.get("/a/wait").headers["Location"].endswith("/a/slip")
    page = client.get("/a/slip")
    assert page.status_code == 200
    shown = " ".join(text_of(page).split())
    assert "Yêu cầu của bạn đã được tiếp nhận" in shown
    assert a in shown and b in shown and "17:00 23/11/2026" in shown  # Art. 7, same day
    assert "Nhận tại ki-ốt này" in shown
    assert "Vui lòng lấy phiếu hẹn ở máy in" in shown
    slips = [j for j in app.printer.jobs() if j["kind"] == "slip"]
    assert len(slips) == 1 and slips[0]["status"] == "printed"
    assert all(s.printed for s in app.certify.states([a, b]))
    client.get("/a/slip")  # a reload prints nothing more
    assert len([j for j in app.printer.jobs() if j["kind"] == "slip"]) == 1
    # The result screen after the slip says what really happened, original by original.
    assert headline_of(client.get("/a/result")) == (
        "Bản gốc của bạn vẫn đang chờ cán bộ chứng thực"
    )
    app.certify.apply(approved(a))
    assert headline_of(client.get("/a/result")) == (
        "Cán bộ chứng thực đã trả lời một số bản gốc; các bản gốc còn lại vẫn đang chờ"
    )


def test_collect_later_with_the_code_and_the_one_time_code(
    kiosk_side: KioskSide, pages3: list[Any]
) -> None:
    c = kiosk_side.certify
    a, b = c.submit(
        [Original(pages3[:1]), Original(pages3[1:2])],
        CITIZEN,
        fees=[fee(1), fee(1)],
        delivery={"channel": "kiosk"},
        pickup="246810",
    )
    raw = kiosk_side.store.query("SELECT pickup_hash FROM cert_requests WHERE code = ?", (a,))
    assert raw[0][0] and "246810" not in raw[0][0]  # only its hash is kept
    with pytest.raises(CollectRefused) as refused:
        c.collect(a, "246810")
    assert refused.value.why == "waiting"  # right codes, not certified yet
    c.apply(approved(a))
    c.apply(result(b, "refused", reason_code="secret"))
    with pytest.raises(CollectRefused) as refused:
        c.collect(b, "246810")
    assert refused.value.why == "refused"
    for wrong in ("000000", "24681", ""):
        with pytest.raises(CollectRefused) as refused:
            c.collect(a, wrong)
        assert refused.value.why == "unknown"
    with pytest.raises(CollectRefused) as refused:
        c.collect("HCM-Q1-007-261123-424242-Z", "246810")
    assert refused.value.why == "unknown"  # an unknown code says the same as a wrong one
    state = c.collect(a.lower(), " 246810 ")  # typed in lower case, with spaces
    assert state.code == a and state.number == "123"
    with pytest.raises(CollectRefused) as refused:
        c.collect(a, "246810")  # one time only
    assert refused.value.why == "unknown"


def test_collect_locks_after_wrong_codes(kiosk_side: KioskSide, pages3: list[Any]) -> None:
    c = kiosk_side.certify
    (a,) = c.submit(
        [Original(pages3[:1])], CITIZEN, fees=[fee(1)], delivery={"channel": "kiosk"},
        pickup="135790",
    )  # fmt: skip
    c.apply(approved(a))
    for _ in range(PICKUP_TRIES):
        with pytest.raises(CollectRefused):
            c.collect(a, "000000")
    with pytest.raises(CollectRefused) as refused:
        c.collect(a, "135790")  # even the right code, while locked
    assert refused.value.why == "locked"
    kiosk_side.clock.at += 15 * 60 + 1
    assert c.collect(a, "135790").code == a


def test_collect_screen_hands_over_the_approved_copy(ui: Any) -> None:
    app, _, planted = ui
    planted["central"] = True
    client = ui_client(ui)
    a, _ = planted["codes"]
    page = client.get("/a/collect")
    assert "Nhập mã yêu cầu và mã nhận một lần in trên phiếu hẹn." in text_of(page)
    shown = text_of(client.post("/a/collect", data={"code": a, "pickup": "999999x"}))
    assert "Mã yêu cầu hoặc mã nhận một lần không đúng." in shown
    shown = text_of(client.post("/a/collect", data={"code": a, "pickup": planted["pickup"]}))
    assert "Cán bộ chưa chứng thực bản sao này." in shown
    app.certify.apply(approved(a))
    before = len(app.printer.jobs())
    shown = " ".join(text_of(
        client.post("/a/collect", data={"code": a, "pickup": planted["pickup"]})
    ).split())  # fmt: skip
    assert "Bản sao chứng thực của bạn" in shown and a in shown and "123" in shown
    jobs = app.printer.jobs()
    assert len(jobs) == before + 1 and jobs[0]["kind"] == "receipt"
    shown = text_of(client.post("/a/collect", data={"code": a, "pickup": planted["pickup"]}))
    assert "Mã yêu cầu hoặc mã nhận một lần không đúng." in shown  # used


# --- the printouts, read back from the printer's own language --------------------------------


def test_the_slip_and_the_receipt_carry_the_codes_as_qr(
    kiosk_side: KioskSide, pages3: list[Any], tmp_path: Path
) -> None:
    from edge.services.printouts import cert_receipt, cert_slip
    from tests.escpos_readback import native_qr_payloads, paper

    c = kiosk_side.certify
    a, b = c.submit(
        [Original(pages3[:1]), Original(pages3[1:])],
        CITIZEN,
        fees=[fee(1), fee(2)],
        delivery={"channel": "ewallet", "address": "MoMo:0912345678"},
    )
    slip = cert_slip(c.states([a, b]), site="UBND Phường Bến Nghé", pickup="246810")
    assert native_qr_payloads(slip) == [a, b]
    sheet = paper(slip)
    sheet.save(tmp_path / "slip.png")
    assert sheet.height > 500  # two requests with their texts (the QR codes are native)
    c.apply(approved(a))
    receipt = cert_receipt(c.get(a), site="UBND Phường Bến Nghé")
    assert native_qr_payloads(receipt) == [f"HTTPS://CHUNGTHUC.EXAMPLE.VN/V/{a}"]
    paper(receipt).save(tmp_path / "receipt.png")
    # 58 mm paper and a printer without native QR: the QR is drawn, and zbar reads it.
    from pyzbar.pyzbar import decode

    small = cert_slip(c.states([b]), site="", paper_width_mm=58, native_qr=False)
    drawn = paper(small)
    assert native_qr_payloads(small) == []
    assert [q.data.decode() for q in decode(drawn)] == [b]


# --- the daemon: its own device identity signs, its fleet client hears the answers -----------


def test_the_daemon_signs_with_its_fleet_identity_and_hears_central(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, central: Peer, pages3: list[Any]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from edge import config as cfg
    from edge.app import App
    from tests.test_daemon_fleet import BASE, fleet_config
    from tests.test_daemon_fleet import KIOSK as DAEMON_KIOSK

    path = fleet_config(tmp_path, broker, fleet_pki, ec.generate_private_key(ec.SECP256R1()))
    app = App(cfg.load(path), config_path=path)
    app.start()
    try:
        wait_until(lambda: app.fleet is not None and app.fleet.subscribed, 30, "daemon online")
        (code,) = app.certify.submit(
            [Original(pages3[:1], "birth_certificate")],
            CITIZEN,
            fees=[fee(1)],
            delivery={"channel": "kiosk"},
        )
        got = central.wait_for(f"{BASE}/{RECORD_TOPIC}", timeout=20).json()
        assert_valid(got, "record")  # the envelope central checks, then the package
        assert_valid(got["data"], "cert-request")
        issuers = [x509.load_pem_x509_certificate(fleet_pki.ca_file.read_bytes())]
        certify.verify_package(got["data"], issuers, DAEMON_KIOSK)  # the mTLS device key
        answer = approved(code) | {"kiosk_id": DAEMON_KIOSK}
        central.publish(certify.result_topic("kiosk/v1", DAEMON_KIOSK), json.dumps(answer))
        wait_until(lambda: app.certify.get(code).status == "approved", 10, "approved")
        assert app.certify.pdf(code) == certified_pdf(code)
    finally:
        app.stop()
