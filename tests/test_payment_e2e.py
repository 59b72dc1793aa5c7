"""A fee-payable e-copy paid by bank transfer, end to end over real parts (issue 19, "Done
when"): the kiosk's real e-copy session, payment ledger and fleet client; a real Mosquitto; the
real fleet console with its web server on the loopback; tests/fakebank.py posting payOS-format
notifications over HTTP. The kiosk's payment-request record reaches central, the bank's
notification is verified and matched there, payment-confirmation/1 comes back, the copy is
issued and its fee receipt reaches central. Forged, wrong-amount and duplicate notifications
confirm nothing."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.adapters.payment_central import PAYMENT_SUFFIX, CentralPayment
from edge.payments import Payments
from tests import fakebank
from tests.mqtt_broker import Broker, FleetPki, kiosk_client, wait_until
from tests.test_payment_kiosk import _read_one_page
from tests.test_payments_central import KEY, start_central

KIOSK = "QN-HALONG-07"
BANK_BIN, ACCOUNT, PREFIX = "970436", "0011001234567", "PHI CHUNG THUC"


@pytest.fixture(scope="module")
def face_models() -> Any:
    from edge.vision.face import FaceVerifier

    return FaceVerifier()


@pytest.fixture
def central(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Iterator[Any]:
    (tmp_path / "central").mkdir()
    console, web = start_central(tmp_path / "central", broker, fleet_pki, url=None, key=KEY)
    try:
        assert console.ingest.wait_connected(10), "console did not connect"
        console.webhook = f"http://127.0.0.1:{web.port}/bank/payos"
        yield console
    finally:
        web.stop()
        console.stop()


@pytest.fixture
def kiosk(tmp_path: Path, broker: Broker, fleet_pki: FleetPki, face_models: Any) -> Iterator[Any]:
    """An e-copy session whose payments go through central: the copy service's own store and
    outbox, drained by the kiosk's real fleet client."""
    from edge.certify.requests import CertRequests, development_signer
    from edge.events import EventBus
    from edge.services.consent import ConsentStore
    from edge.services.ecopy import EcopySession
    from edge.services.identify import VerificationSession
    from edge.vision.liveness import LivenessChallenge
    from tests.copies_helpers import copy_service

    root = tmp_path / KIOSK
    vietqr = f'[copies.vietqr]\nbank_bin = "{BANK_BIN}"\naccount = "{ACCOUNT}"\n'
    bus = EventBus()
    bus.start()
    with copy_service(root, kiosk_id=KIOSK, extra=vietqr) as copies:
        identity = fleet_pki.client(KIOSK)
        fleet = kiosk_client(
            broker,
            fleet_pki,
            identity,
            kiosk_id=KIOSK,
            store=copies.store,
            outbox=copies.outbox,
        )
        payments = Payments(
            copies.store, copies.copies.key, copies.outbox, KIOSK, on_queued=fleet.kick
        )
        payment = CentralPayment(
            payments,
            qr=copies.payment_qr,
            bank_bin=BANK_BIN,
            account=ACCOUNT,
            purpose_prefix=PREFIX,
        )
        fleet.listen(PAYMENT_SUFFIX, payment.on_message)
        fleet.start()
        certify = CertRequests(
            store=copies.store,
            key=copies.copies.key,
            outbox=copies.outbox,
            kiosk_id=KIOSK,
            reserve=copies.sequence.reserve,
            signer=lambda: development_signer(root / "certify", KIOSK),
        )
        verification = VerificationSession(
            consents=ConsentStore(copies.store, copies.copies.key, kiosk_id=KIOSK),
            verifier=face_models,
            new_challenge=functools.partial(LivenessChallenge, "turn_right"),
            bus=bus,
        )
        session = EcopySession(
            verification,
            copies=copies,
            payment=payment,
            bus=bus,
            certify=certify,
            payments=payments,
        )
        try:
            wait_until(lambda: fleet.subscribed, 10, "kiosk connected and subscribed")
            yield session
        finally:
            session.close()
            fleet.stop()
            bus.stop()


def test_a_fee_payable_copy_is_paid_by_the_banks_notification_and_issued(
    kiosk: Any, central: Any
) -> None:
    store = central.store
    person = _read_one_page(kiosk)
    fee = kiosk.quote()
    assert fee.payable_vnd > 0 and not fee.exempt, "a copy at a kiosk outside any support rule"
    screen = kiosk.fee_screen()
    assert screen["qr_image"] is not None and not kiosk.paid
    reference = kiosk.reference
    wait_until(lambda: store.payment_request(reference), 15, "the payment request at central")
    assert kiosk.issue() == "fee"  # nothing is issued before the bank confirms

    def notify(**kw: Any) -> tuple[int, Any]:
        args = {
            "reference": reference,
            "amount": fee.payable_vnd,
            "account": ACCOUNT,
            "description": f"{PREFIX} {reference} chuyen tien",
        } | kw
        return fakebank.notify(central.webhook, KEY, **args)

    # A forged signature and a wrong amount confirm nothing.
    assert notify(bank_reference="FT-FORGED-1", forge=True)[0] == 401
    assert notify(bank_reference="FT-SHORT-1", amount=fee.payable_vnd - 1000)[0] == 200
    wait_until(
        lambda: any(n["bank_reference"] == "FT-SHORT-1" for n in store.bank_notifications()),
        10,
        "the short transfer kept for attention",
    )
    assert not kiosk.paid

    # The right transfer, then payOS's retry of it.
    assert notify(bank_reference="FT26340000001")[0] == 200
    wait_until(lambda: kiosk.paid, 15, "the kiosk learns the bank's confirmation")
    assert notify(bank_reference="FT26340000001")[0] == 200

    assert kiosk.give_contact("", "kiosk") == "issue"
    assert kiosk.issue() == "wait"
    method, number = kiosk.paid_note()
    assert method == "bank_transfer"

    def receipts() -> list[dict[str, Any]]:
        return [r for r in store.fee_receipts() if r["reference"] == reference]

    wait_until(lambda: receipts(), 15, "the fee receipt at central")
    (receipt,) = receipts()
    assert receipt["number"] == number and receipt["method"] == "bank_transfer"
    assert receipt["amount_vnd"] == fee.payable_vnd and receipt["kiosk_id"] == KIOSK
    statuses = {n["bank_reference"]: n["status"] for n in store.bank_notifications()}
    assert statuses == {"FT-SHORT-1": "wrong_amount", "FT26340000001": "confirmed"}
    confirmation = kiosk.payments.confirmation(reference)
    assert confirmation is not None and confirmation.bank_reference == "FT26340000001"
    assert person.name not in str(statuses)
