"""Results by post: central sends the Vietnam Post shipment reference (post-shipment/1) over a
real Mosquitto from the real fleet console; the kiosk keeps it on its post request, and the
dossier's status answer carries it. References are UPU S10 with their check digit."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.services.post import PostService, s10_valid
from edge.store.outbox import Outbox
from fleet import dossiers as central
from fleet.console import Console, build_console
from protocol.errors import BadInput
from tests.mqtt_broker import Broker, FleetPki, wait_until
from tests.test_dossier import Kiosk
from tests.test_fleet_console import console_config
from tests.test_post import GOOD

KIOSK = "HN-TAYHO-72"
DOSSIER = "000.00.17.H26-261120-0001"  # a sample dossier the console seeds
REFERENCE = "EE473124829VN"  # serial 47312482: S = 200, C = 11 - 200 mod 11 = 9


@pytest.mark.parametrize(
    ("reference", "valid"),
    [
        (REFERENCE, True),
        ("RR473124829VN", True),
        ("EE473124820VN", False),  # wrong check digit
        ("EE47312482VN", False),  # 8 digits only
        ("ee473124829vn", False),
        ("EE000000005VN", True),  # S = 0: C = 11 -> 5
    ],
)
def test_s10_check_digit(reference: str, valid: bool) -> None:
    assert s10_valid(reference) is valid


@pytest.fixture
def console(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Iterator[Console]:
    (tmp_path / "central").mkdir()
    c = build_console(console_config(tmp_path / "central", broker, fleet_pki))
    c.start()
    try:
        assert c.ingest.wait_connected(10), "console did not connect"
        yield c
    finally:
        c.stop()


def test_central_sends_the_reference_the_kiosk_keeps_it_and_the_status_shows_it(
    tmp_path: Path,
    broker: Broker,
    fleet_pki: FleetPki,
    console: Console,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    kiosk = Kiosk(tmp_path / "kiosks", broker, fleet_pki, KIOSK, dossier_timeout_s=5.0)
    try:
        post = PostService(
            store=kiosk.store,
            key=kiosk.key,
            outbox=Outbox(kiosk.store, kiosk.key),
            kiosk_id=KIOSK,
            clock=lambda: dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC),
        )
        kiosk.fleet.listen("res/post-shipment", post.shipments.on_message)
        wait_until(lambda: kiosk.fleet.subscribed, 10, "subscribed")
        request = post.submit(**{**GOOD, "subject_code": DOSSIER})
        assert post.shipments.shipment(request.id) is None
        # A reference that breaks the contract never leaves central.
        with pytest.raises(BadInput):
            central.send_shipment(console, KIOSK, request.id, "EE473124820XX")
        central.send_shipment(console, KIOSK, request.id, REFERENCE, dossier_code=DOSSIER)
        wait_until(lambda: post.shipments.shipment(request.id) is not None, 10, "shipment kept")
        assert post.shipments.shipment(request.id)["reference"] == REFERENCE
        # A later state replaces it; an older one does not.
        later = central.send_shipment(console, KIOSK, request.id, REFERENCE, "delivered", at=2e9)
        wait_until(
            lambda: post.shipments.shipment(request.id)["status"] == "delivered", 10, "delivered"
        )
        assert post.shipments.shipment(request.id)["at"] == later["at"]
        assert not post.shipments.record(
            central.shipment_message(request.id, REFERENCE, "in_transit", at=1.9e9)
        )
        assert post.shipments.shipment(request.id)["status"] == "delivered"
        # A wrong check digit or another kiosk's request is dropped, not stored.
        bad = {**central.shipment_message(request.id, REFERENCE, "returned", at=2.1e9)}
        assert not post.shipments.record({**bad, "reference": "EE473124820VN"})
        assert not post.shipments.record({**bad, "request_id": "0" * 32})
        # The dossier's status answer carries it (shown on the status screen).
        status = kiosk.dossiers.lookup(DOSSIER)
        assert status.shipment == {
            "carrier": "vnpost",
            "reference": REFERENCE,
            "status": "accepted",
        }
        logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
        assert GOOD["recipient_name"] not in logged and "0912345678" not in logged
    finally:
        kiosk.close()
