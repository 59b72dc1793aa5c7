"""The kiosk side of payments (docs/payments.md, "At the kiosk") over a real Mosquitto (the
shipped ACL, mTLS) with the kiosk's real fleet client: a payment-request record goes to central;
a peer with central's certificate answers payment-confirmation/1 on res/payment. Only the
confirmation that matches a request of this kiosk (reference and amount) confirms; each
confirmed payment, cash taken by a named staff account and each waiver makes exactly one
fee-receipt record, numbered by the day, across restarts."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.adapters.payment_central import PAYMENT_SUFFIX, CentralPayment
from edge.adapters.payment_sim import SimulatedPayment
from edge.config import CopiesSection
from edge.fees import Fee, quote
from edge.payments import Payments
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from edge.vietqr import payment_payload
from tests.mqtt_broker import Broker, FleetPki, Peer, assert_valid, kiosk_client, wait_until

KIOSK = "QN-HALONG-03"
OTHER = "QN-HALONG-04"
PAYER = "Nguyễn Thị Thu Hà"
BANK_BIN, ACCOUNT, PREFIX = "970436", "0011001234567", "PHI CHUNG THUC"
DAY = dt.date(2026, 12, 7)
NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC).timestamp()  # 19:00 in Vietnam


def fee(pages: int = 3, kiosk: str = KIOSK, channel: str = "at-kiosk") -> Fee:
    """The fee the shipped rules give (docs/fees.md): payable unless a support rule waives it."""
    return quote(pages, CopiesSection(), kiosk, on=DAY, channel=channel)


def qr(fee: Fee, reference: str) -> str | None:
    return payment_payload(
        bank_bin=BANK_BIN,
        account=ACCOUNT,
        amount_vnd=fee.payable_vnd,
        purpose=f"{PREFIX} {reference}",
    )


class PayingKiosk:
    """A kiosk's store, outbox, payment ledger and central adapter on its real fleet client."""

    def __init__(self, root: Path, broker: Broker, pki: FleetPki, kiosk_id: str = KIOSK) -> None:
        self.store = Store(root / kiosk_id / "kiosk.db")
        self.store.open()
        self.key = DataKey.load_or_create(root / kiosk_id / "keys" / "k")
        outbox = Outbox(self.store, self.key)
        identity = pki.client(kiosk_id)
        self.fleet = kiosk_client(
            broker,
            pki,
            identity,
            kiosk_id=kiosk_id,
            store=self.store,
            outbox=outbox,
        )
        self.payments = Payments(
            self.store, self.key, outbox, kiosk_id, on_queued=self.fleet.kick, clock=lambda: NOON
        )
        self.payment = CentralPayment(
            self.payments, qr=qr, bank_bin=BANK_BIN, account=ACCOUNT, purpose_prefix=PREFIX
        )
        self.fleet.listen(PAYMENT_SUFFIX, self.payment.on_message)
        self.fleet.start()
        wait_until(lambda: self.fleet.subscribed, 10, "kiosk connected and subscribed")

    def close(self) -> None:
        self.fleet.stop()
        self.store.close()


@pytest.fixture
def make_kiosk(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> Iterator[Callable[..., PayingKiosk]]:
    made: list[PayingKiosk] = []

    def make(kiosk_id: str = KIOSK) -> PayingKiosk:
        k = PayingKiosk(tmp_path / "kiosks", broker, fleet_pki, kiosk_id)
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()


def confirmation(reference: str, amount: int, bank_ref: str = "FT26341123456789") -> dict:
    return {
        "schema": "payment-confirmation/1",
        "reference": reference,
        "amount_vnd": amount,
        "method": "bank_transfer",
        "bank_reference": bank_ref,
        "paid_at": "2026-12-07T11:58:40+00:00",
        "confirmed_at": "2026-12-07T11:58:42+00:00",
    }


def send(central: Peer, message: Any, kiosk_id: str = KIOSK) -> None:
    payload = message if isinstance(message, bytes) else json.dumps(message)
    central.publish(f"kiosk/v1/{kiosk_id}/{PAYMENT_SUFFIX}", payload, qos=1)


def records(central: Peer, kind: str, kiosk_id: str = KIOSK) -> list[dict]:
    """The records central got, once per record id (unacknowledged records are sent again
    after a reconnect, under the same id: central deduplicates on it, docs/fleet.md)."""
    got: dict[str, dict] = {}
    for m in central.received(f"kiosk/v1/{kiosk_id}/records/{kind}"):
        got.setdefault(m.json()["id"], m.json())
    return list(got.values())


def settle(central: Peer, kiosk: PayingKiosk, reference: str, amount: int) -> None:
    """Messages on one topic from one publisher arrive in order (QoS 1): once a right
    confirmation sent after them is kept, every message before it has been handled."""
    kiosk.payments.open(reference, fee_of(amount), PAYER)
    assert kiosk.payment.request(fee_of(amount), reference) is not None
    send(central, confirmation(reference, amount, "FT-SENTINEL"))
    wait_until(lambda: kiosk.payment.paid(reference), 10, "the sentinel confirmation")


def fee_of(amount: int) -> Fee:
    return Fee(1, amount, amount, False, rule_id="r", basis_vi="Thông tư 226/2016/TT-BTC")


def test_only_the_matching_confirmation_pays_and_makes_one_receipt(
    make_kiosk: Callable[..., PayingKiosk], central: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    kiosk = make_kiosk()
    ref, price = "1A2B3C4D", fee(3)
    assert price.payable_vnd == 5000 and not price.exempt  # 2 pages at 2,000 then 1 at 1,000
    assert kiosk.payments.open(ref, price, PAYER)
    payload = kiosk.payment.request(price, ref)
    assert payload is not None and f"{PREFIX} {ref}" in payload
    assert kiosk.payment.request(price, ref) == payload  # asked again: no second record

    got = central.wait_for(f"kiosk/v1/{KIOSK}/records/payment-request")
    record = got.json()
    assert_valid(record, "record")
    assert_valid(record["data"], "payment-request-record")
    assert record["id"] == f"payreq-{ref}"
    assert record["data"]["amount_vnd"] == 5000 and record["data"]["account"] == ACCOUNT
    assert record["data"]["procedure"] == "2.000815"
    assert record["data"]["transfer_text"] == f"{PREFIX} {ref}"
    created = dt.datetime.fromisoformat(record["data"]["created_at"])
    expires = dt.datetime.fromisoformat(record["data"]["expires_at"])
    assert expires - created == dt.timedelta(minutes=30)
    assert PAYER not in got.payload.decode()  # no personal data in the request

    # None of these confirms: another amount, a reference this kiosk never asked, a message
    # that breaks the contract, one that is not JSON, and a right one on another kiosk's topic.
    send(central, confirmation(ref, 4000))
    send(central, confirmation("99999999", 5000))
    send(central, {**confirmation(ref, 5000), "method": "cash"})
    send(central, b"{not json")
    send(central, confirmation(ref, 5000), kiosk_id=OTHER)
    settle(central, kiosk, "0000000A", 2000)
    assert not kiosk.payment.paid(ref)
    assert kiosk.payments.confirmation(ref) is None

    # The right one confirms, once: a duplicate keeps it and makes no second receipt.
    send(central, confirmation(ref, 5000))
    wait_until(lambda: kiosk.payment.paid(ref), 10, "payment confirmed")
    send(central, confirmation(ref, 5000))
    settle(central, kiosk, "0000000B", 2000)
    found = kiosk.payments.confirmation(ref)
    assert found is not None
    assert (found.method, found.bank_reference, found.amount_vnd) == (
        "bank_transfer",
        "FT26341123456789",
        5000,
    )
    wait_until(lambda: len(records(central, "fee-receipt")) == 3, 10, "three receipts")
    receipts = {r["data"]["reference"]: r for r in records(central, "fee-receipt")}
    assert set(receipts) == {ref, "0000000A", "0000000B"}  # one each, the duplicate made none
    receipt = receipts[ref]
    assert_valid(receipt, "record")
    assert_valid(receipt["data"], "fee-receipt-record")
    data = receipt["data"]
    assert receipt["id"] == f"receipt-{data['number']}" == f"receipt-{found.receipt}"
    assert re.fullmatch(rf"{KIOSK}-20261207-000[1-3]", data["number"])  # the day in Vietnam
    assert (data["method"], data["amount_vnd"], data["fee_vnd"]) == ("bank_transfer", 5000, 5000)
    assert data["payer_name"] == PAYER and data["bank_reference"] == "FT26341123456789"
    assert data["rule_id"] == price.rule_id and data["kind"] == "phí"
    numbers = sorted(r["data"]["number"] for r in receipts.values())
    assert [n[-4:] for n in numbers] == ["0001", "0002", "0003"]

    # The payer's name is sealed at rest and gone once receipted; never in a log line.
    assert kiosk.store.query("SELECT payer FROM payments WHERE reference = ?", (ref,))[0][0] is None
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert PAYER not in logged and "ignored" in logged


def test_a_confirmation_before_a_restart_is_still_paid_after_it(
    make_kiosk: Callable[..., PayingKiosk], central: Peer
) -> None:
    kiosk = make_kiosk()
    ref, price = "C0FFEE01", fee(1)
    kiosk.payments.open(ref, price, PAYER)
    kiosk.payment.request(price, ref)
    central.wait_for(f"kiosk/v1/{KIOSK}/records/payment-request")
    send(central, confirmation(ref, price.payable_vnd))
    wait_until(lambda: kiosk.payment.paid(ref), 10, "confirmed")
    kiosk.close()

    again = make_kiosk()  # the daemon restarted: a new client, ledger and adapter, same store
    assert again.payment.paid(ref)
    # The day's sequence goes on from the store: cash at the counter is the next number.
    cash_ref = "C0FFEE02"
    again.payments.open(cash_ref, price, PAYER)
    assert again.payments.confirm(cash_ref, method="cash", amount_vnd=2000, staff="ana")
    assert not again.payments.confirm(cash_ref, method="cash", amount_vnd=2000, staff="ana")
    wait_until(lambda: len(records(central, "fee-receipt")) == 2, 10, "two receipts")
    (cash,) = [r["data"] for r in records(central, "fee-receipt") if r["data"]["method"] == "cash"]
    assert_valid(cash, "fee-receipt-record")
    assert cash["staff"] == "ana" and cash["number"].endswith("-0002")
    assert "bank_reference" not in cash


def test_a_waived_fee_is_not_asked_but_its_receipt_is_queued(
    make_kiosk: Callable[..., PayingKiosk], central: Peer
) -> None:
    kiosk = make_kiosk("HN-TAYHO-72")
    price = fee(2, kiosk="HN-TAYHO-72", channel="online")  # Hanoi's support, online
    assert price.exempt and price.payable_vnd == 0 and price.fee_vnd == 4000
    assert kiosk.payment.request(price, "5EED0001") is None  # nothing to pay, nothing asked
    number = kiosk.payments.waive("5EED0001", price, PAYER, copy_code="HN-TAYHO-72-000123")
    assert kiosk.payments.waive("5EED0001", price, PAYER) == number  # once per visit
    got = central.wait_for("kiosk/v1/HN-TAYHO-72/records/fee-receipt")
    assert_valid(got.json(), "record")
    data = got.json()["data"]
    assert_valid(data, "fee-receipt-record")
    assert (data["method"], data["amount_vnd"], data["fee_vnd"]) == ("waived", 0, 4000)
    assert data["support_id"] == price.support_id and data["copy_code"] == "HN-TAYHO-72-000123"
    assert data["number"] == number
    assert not central.received("kiosk/v1/HN-TAYHO-72/records/payment-request")
    later = "5EED0002"  # the outbox is FIFO: once its receipt is here, a second one would be
    kiosk.payments.waive(later, price, PAYER)
    central.wait_for(
        "kiosk/v1/HN-TAYHO-72/records/fee-receipt", lambda m: later in m.payload.decode()
    )
    got_refs = [r["data"]["reference"] for r in records(central, "fee-receipt", "HN-TAYHO-72")]
    assert got_refs == ["5EED0001", later]


# --- the e-copy session: a waived copy and cash at the counter --------------------------------


@pytest.fixture(scope="module")
def face_models() -> Any:
    from edge.vision.face import FaceVerifier

    return FaceVerifier()


@pytest.fixture
def session_kiosk(tmp_path: Path, face_models: Any):
    """make(kiosk_id, channel) opens an e-copy session with the real ledger on a copy service
    whose fee rules are the shipped ones; the outbox is what central would receive."""
    from edge.certify.requests import CertRequests, development_signer
    from edge.events import EventBus
    from edge.services.consent import ConsentStore
    from edge.services.ecopy import EcopySession
    from edge.services.identify import VerificationSession
    from edge.vision.liveness import LivenessChallenge
    from tests.copies_helpers import copy_service

    bus = EventBus()
    bus.start()
    made: list[EcopySession] = []
    services: list[Any] = []

    def make(kiosk_id: str, extra: str) -> tuple[EcopySession, Any]:
        root = tmp_path / kiosk_id
        context = copy_service(root, kiosk_id=kiosk_id, extra=extra)
        copies = context.__enter__()
        services.append(context)
        key = copies.copies.key
        payments = Payments(copies.store, key, copies.outbox, kiosk_id)
        certify = CertRequests(
            store=copies.store,
            key=key,
            outbox=copies.outbox,
            kiosk_id=kiosk_id,
            reserve=copies.sequence.reserve,
            signer=lambda: development_signer(root / "certify", kiosk_id),
        )
        identity = VerificationSession(
            consents=ConsentStore(copies.store, key, kiosk_id=kiosk_id),
            verifier=face_models,
            new_challenge=functools.partial(LivenessChallenge, "turn_right"),
            bus=bus,
        )
        payment = SimulatedPayment(qr=copies.payment_qr, payments=payments)
        session = EcopySession(
            identity,
            copies=copies,
            payment=payment,
            bus=bus,
            certify=certify,
            payments=payments,
        )
        made.append(session)
        return session, copies

    try:
        yield make
    finally:
        for s in made:
            s.close()
        for context in services:
            context.__exit__(None, None, None)
        bus.stop()


def _receipts(copies: Any) -> list[dict]:
    return [m.payload["data"] for m in copies.outbox.pending() if m.id.startswith("receipt-")]


def _read_one_page(session: Any) -> Any:
    from tests import pages as docs
    from tests.test_ecopy_session import card_scene, identify_by_staff, place

    shot = docs.photographed(2, "birth_certificate", size=docs.PREVIEW)
    frame, person = card_scene(shot.doc.fields["name"])
    identify_by_staff(session, frame)
    place(session, shot.image)
    assert session.read_pages() is None
    return person


def test_a_waived_copy_asks_nothing_and_queues_a_waived_receipt(session_kiosk) -> None:
    s, copies = session_kiosk("HN-TEST-01", 'fee_channel = "online"')  # Hanoi's support
    person = _read_one_page(s)
    fee = s.quote()
    assert fee.exempt and fee.payable_vnd == 0 and fee.fee_vnd == 2000
    assert s.payment_request(fee) is None and s.fee_screen()["qr_image"] is None
    assert s.give_contact("", "kiosk") == "issue" and s.issue() == "wait"
    (receipt,) = _receipts(copies)
    assert_valid(receipt, "fee-receipt-record")
    assert (receipt["method"], receipt["amount_vnd"], receipt["fee_vnd"]) == ("waived", 0, 2000)
    assert receipt["payer_name"] == person.name and receipt["copy_code"] == s.codes[0]
    assert receipt["support_id"] == fee.support_id
    assert s.paid_note() == ("waived", receipt["number"])
    assert s.issue() == "wait" and len(_receipts(copies)) == 1  # a second press: none more


def test_cash_confirmed_by_staff_pays_once_and_the_slip_says_so(session_kiosk) -> None:
    from edge.services.printouts import paid_text_vi

    s, copies = session_kiosk("TEST-01", "")
    person = _read_one_page(s)
    fee = s.quote()
    assert fee.payable_vnd == 2000 and not s.paid
    s.choose_cash()
    assert s.fee_screen()["cash"] and s.issue() == "fee"  # nothing goes before it is paid
    assert s.confirm_cash("ana") and s.paid
    assert s.confirm_cash("ana")  # confirmed twice (a double press): one payment, one receipt
    assert s.give_contact("", "kiosk") == "issue" and s.issue() == "wait"
    (receipt,) = _receipts(copies)
    assert_valid(receipt, "fee-receipt-record")
    assert (receipt["method"], receipt["amount_vnd"], receipt["staff"]) == ("cash", 2000, "ana")
    assert receipt["payer_name"] == person.name and receipt["reference"] == s.reference
    assert not [m for m in copies.outbox.pending() if m.id.startswith("payreq-")]  # no transfer
    method, number = s.paid_note()
    assert paid_text_vi(method, number) == f"Đã nộp phí: tiền mặt tại quầy\nSố biên lai: {number}"
    assert paid_text_vi("waived", "X-20261207-0001").startswith("Miễn phí\n")
