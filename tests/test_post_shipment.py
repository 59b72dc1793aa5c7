"""Results by post: central sends the Vietnam Post shipment reference (post-shipment/1) over a
real Mosquitto from the real fleet console; the kiosk keeps it on its post request, and the
dossier's status answer carries it. References are UPU S10 with their check digit."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.services.post import PostService
from edge.store.outbox import Outbox
from fleet import dossiers as central
from fleet.console import Console, build_console
from protocol.errors import BadInput
from protocol.post import s10_valid
from tests.conftest import REPO
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


@pytest.fixture
def kiosk_post(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> Iterator[tuple[Kiosk, PostService]]:
    """A kiosk on the broker with its post service listening for post-shipment/1; a request
    it takes is queued for central at once."""
    kiosk = Kiosk(tmp_path / "kiosks", broker, fleet_pki, KIOSK, dossier_timeout_s=5.0)
    try:
        post = PostService(
            store=kiosk.store,
            key=kiosk.key,
            outbox=Outbox(kiosk.store, kiosk.key),
            kiosk_id=KIOSK,
            clock=lambda: dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC),
            on_queued=kiosk.fleet.kick,
        )
        kiosk.fleet.listen("res/post-shipment", post.shipments.on_message)
        wait_until(lambda: kiosk.fleet.subscribed, 10, "subscribed")
        yield kiosk, post
    finally:
        kiosk.close()


def test_central_sends_the_reference_the_kiosk_keeps_it_and_the_status_shows_it(
    kiosk_post: tuple[Kiosk, PostService],
    console: Console,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    kiosk, post = kiosk_post
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


OPERATOR, PASSWORD = "thu.le", "mat-khau-du-dai-1"
OTHER_REFERENCE = "RR473124829VN"


def logged_in_console_client(console: Console) -> Any:
    import re

    from fleet.operators import create_operator
    from fleet.web import create_app

    create_operator(console.store, OPERATOR, "Lê Thị Thu", PASSWORD)
    client = create_app(console).test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]* value="([^"]+)"', page).group(1)
    answer = client.post(
        "/login", data={"csrf_token": token, "operator": OPERATOR, "password": PASSWORD}
    )
    assert answer.status_code == 302
    page = client.get("/shipments").get_data(as_text=True)
    client.token = re.search(r'name="csrf_token"[^>]* value="([^"]+)"', page).group(1)
    return client


def test_an_operator_records_the_reference_on_the_console_and_with_the_cli(
    tmp_path: Path,
    kiosk_post: tuple[Kiosk, PostService],
    console: Console,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The console's form (operator login, CSRF, audited with the operator's name) and
    `kiosk-fleet dossier ship` (another process, the same store) reach a real kiosk service
    through the real broker; a wrong check digit is refused with the reason, nothing sent."""
    caplog.set_level(logging.INFO)
    _, post = kiosk_post
    request = post.submit(**{**GOOD, "subject_code": DOSSIER})
    # The request reaches central as records/post-request over the broker.
    wait_until(lambda: console.store.post_request(request.id) is not None, 15, "record")
    printed = request.id[:8].upper()  # what the citizen's confirmation shows
    client = logged_in_console_client(console)

    def form(reference: str, status: str = "accepted", **extra: str) -> Any:
        data = {"csrf_token": client.token, "request_code": printed}
        return client.post(
            "/shipments", data={**data, "reference": reference, "status": status, **extra}
        )

    # A wrong check digit: refused with the digit it should have, nothing recorded or sent.
    wrong = form("EE473124820VN")
    assert wrong.status_code == 400
    assert "sai chữ số kiểm tra (chữ số thứ 11 phải là 9)" in wrong.get_data(as_text=True)
    assert form("EE4731248VN").status_code == 400  # not S10 at all
    unknown = client.post(
        "/shipments",
        data={"csrf_token": client.token, "request_code": "0badc0de", "reference": REFERENCE,
              "status": "accepted"},
    )  # fmt: skip
    assert unknown.status_code == 400 and "không có yêu cầu" in unknown.get_data(as_text=True)
    no_token = client.post(
        "/shipments",
        data={"request_code": printed, "reference": REFERENCE, "status": "accepted"},
    )
    assert no_token.status_code == 400
    assert console.store.shipment_log() == []
    # The right one: recorded with the operator, sent to the kiosk that took the request.
    done = form(REFERENCE.lower())
    assert done.status_code == 302, done.get_data(as_text=True)[:400]
    wait_until(lambda: post.shipments.shipment(request.id) is not None, 10, "shipment kept")
    assert post.shipments.shipment(request.id)["reference"] == REFERENCE
    (line,) = [x for x in console.store.shipment_log() if x["action"] == "post_shipment"]
    assert (line["officer"], line["request_id"]) == (OPERATOR, request.id)
    assert line["detail"] == {
        "kiosk": KIOSK,
        "reference": REFERENCE,
        "status": "accepted",
        "dossier": DOSSIER,
        "by_name": "Lê Thị Thu",
    }
    assert console.store.dossier(DOSSIER)["data"]["shipment"]["reference"] == REFERENCE
    wait_until(lambda: central.pending_shipments(console.store) == [], 10, "marked sent")
    page = client.get("/shipments").get_data(as_text=True)
    assert "Lê Thị Thu (thu.le)" in page and REFERENCE in page and printed in page

    # The CLI, as another process on the same store: a wrong digit first, then a move.
    config = tmp_path / "fleet.toml"
    url = console.config.store.url
    config.write_text(
        f'[store]\nurl = "{url}"\ndata_key_file = "{console.config.store.data_key_file}"\n',
        encoding="utf-8",
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet.cli", "-c", str(config), "dossier", "ship", *args],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    bad = cli(printed, "RR473124820VN")
    assert bad.returncode == 2, bad.stderr
    assert "sai chữ số kiểm tra (chữ số thứ 11 phải là 9)" in bad.stderr
    good = cli(request.id, OTHER_REFERENCE, "--status", "in_transit", "--by", "kho.buu.dien")
    assert good.returncode == 0, good.stderr[-2000:]
    assert f"the running console sends it to {KIOSK}" in good.stdout
    wait_until(
        lambda: post.shipments.shipment(request.id)["reference"] == OTHER_REFERENCE,
        15,
        "the CLI's shipment reached the kiosk",
    )
    assert post.shipments.shipment(request.id)["status"] == "in_transit"
    lines = [x for x in console.store.shipment_log() if x["action"] == "post_shipment"]
    assert [x["officer"] for x in lines] == ["kho.buu.dien", OPERATOR]
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert GOOD["recipient_name"] not in logged and "0912345678" not in logged
