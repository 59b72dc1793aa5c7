"""Central's half of bank-transfer payments, end to end over real parts: a real Mosquitto, the
real fleet console with its real web server on the loopback, a raw paho client acting as the
kiosk (it publishes payment-request and fee-receipt records in the record/1 envelope and listens
on its res/payment), and tests/fakebank.py posting payOS-format notifications over HTTP. On
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import logging
import re
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleet.config import PaymentsSection
from fleet.console import Console, build_console
from fleet.operators import create_operator
from fleet.payments import signature
from fleet.store.schema import bank_notifications, fee_receipts
from fleet.web import create_app
from tests import fakebank
from tests.fleet_console_helpers import Postgres, database_url, running_postgres
from tests.mqtt_broker import Broker, FleetPki, Peer, assert_valid, wait_until
from tests.test_fleet_console import console_config
from web_ui.server import WebServer

KIOSK = "HN-TAYHO-31"
ACCOUNT = "0011001932418"
KEY = "a3f0c1d2e4b5968778695a4b3c2d1e0f" * 2  # the channel's checksum key in the tests
PASSWORD = "mật-khẩu-dài-1"
PAYER = "Nguyễn Thị Hồng Nhung"
UTC = dt.UTC


def iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_the_signature_is_payos_own_on_its_published_sample() -> None:
    # The sample of payos.vn/docs/tich-hop-webhook/kiem-tra-du-lieu-voi-signature, its key and
    # its signature as published there.
    data = {
        "orderCode": 123,
        "amount": 3000,
        "description": "VQRIO123",
        "accountNumber": "12345678",
        "reference": "TF230204212323",
        "transactionDateTime": "2023-02-04 18:25:00",
        "currency": "VND",
        "paymentLinkId": "124c33293c43417ab7879e14c8d9eb18",
        "code": "00",
        "desc": "Thành công",
        "counterAccountBankId": "",
        "counterAccountBankName": "",
        "counterAccountName": "",
        "counterAccountNumber": "",
        "virtualAccountName": "",
        "virtualAccountNumber": "",
    }
    key = "1a54716c8f0efb2744fb28b6e38b25da7f67a925d98bc1c18bd8faaecadd7675"
    assert (
        signature(data, key) == "412e915d2871504ed31be63c8f62a149a4410d34c4c42affc9006ef9917eaa03"
    )
    # payOS's rule for nulls: written as empty strings.
    assert signature({**data, "counterAccountName": None}, key) == signature(data, key)
    assert signature({**data, "amount": 3001}, key) != signature(data, key)
    assert fakebank.sign(data, key) == signature(data, key)


# --- the running parts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@dataclass
class Central:
    console: Console
    base: str
    kiosk: Peer
    seq: int = 0

    @property
    def webhook(self) -> str:
        return self.base + "/bank/payos"

    def record(self, kind: str, record_id: str, data: dict[str, Any]) -> None:
        self.seq += 1
        envelope = {
            "schema": "record/1",
            "kiosk_id": KIOSK,
            "kind": kind,
            "time": iso(dt.datetime.now(UTC)),
            "data": data,
            "id": record_id,
            "seq": self.seq,
            "queued_at": iso(dt.datetime.now(UTC)),
        }
        assert_valid(envelope, "record")
        assert_valid(data, f"{kind}-record")
        self.kiosk.publish(f"kiosk/v1/{KIOSK}/records/{kind}", json.dumps(envelope))

    def confirmations(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.kiosk.received(f"kiosk/v1/{KIOSK}/res/payment")]

    def confirmed(self, reference: str) -> list[dict[str, Any]]:
        return [c for c in self.confirmations() if c["reference"] == reference]

    def status(self, bank_reference: str) -> str | None:
        for n in self.console.store.bank_notifications():
            if n["bank_reference"] == bank_reference:
                return str(n["status"])
        return None

    def count(self, table: sa.Table) -> int:
        with self.console.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def start_central(
    tmp_path: Path, broker: Broker, pki: FleetPki, *, url: str | None, key: str | None
) -> tuple[Console, WebServer]:
    config = console_config(tmp_path, broker, pki, url=url)
    key_file = None
    if key is not None:
        key_file = tmp_path / "payos.key"
        key_file.write_text(key + "\n", encoding="utf-8")
    config = config.model_copy(update={"payments": PaymentsSection(checksum_key_file=key_file)})
    console = build_console(config)
    console.start()
    web = WebServer(create_app(console), host="127.0.0.1", port=0, threads=4)
    web.start()
    return console, web


@pytest.fixture(params=["sqlite", "postgresql"])
def central(
    request: pytest.FixtureRequest, tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> Iterator[Central]:
    url = database_url(request, tmp_path)
    console, web = start_central(tmp_path, broker, fleet_pki, url=url, key=KEY)
    kiosk = Peer(broker, fleet_pki.client(KIOSK)).connect()
    try:
        assert console.ingest.wait_connected(10), "console did not connect"
        assert console.store.dialect == request.param
        kiosk.subscribe(f"kiosk/v1/{KIOSK}/res/payment")
        yield Central(console, f"http://127.0.0.1:{web.port}", kiosk)
    finally:
        kiosk.close()
        web.stop()
        console.stop()


def payment_request(
    reference: str, amount: int, *, minutes_left: float = 15, account: str = ACCOUNT
) -> dict[str, Any]:
    now = dt.datetime.now(UTC)
    return {
        "reference": reference,
        "amount_vnd": amount,
        "fee_name": "Phí chứng thực bản sao từ bản chính",
        "rule_id": "copy-cert-2.000815",
        "legal_basis": "Thông tư 226/2016/TT-BTC",
        "bank_bin": "970415",
        "account": account,
        "transfer_text": f"LEPHI {reference}",
        "procedure": "2.000815",
        "pages": 3,
        "created_at": iso(now - dt.timedelta(minutes=30)),
        "expires_at": iso(now + dt.timedelta(minutes=minutes_left)),
    }


def fee_receipt(number: str, reference: str, amount: int, bank_reference: str) -> dict[str, Any]:
    return {
        "number": number,
        "reference": reference,
        "method": "bank_transfer",
        "amount_vnd": amount,
        "fee_vnd": amount,
        "fee_name": "Phí chứng thực bản sao từ bản chính",
        "kind": "phí",
        "rule_id": "copy-cert-2.000815",
        "legal_basis": "Thông tư 226/2016/TT-BTC",
        "payer_name": PAYER,
        "procedure": "2.000815",
        "pages": 3,
        "bank_reference": bank_reference,
        "collected_at": iso(dt.datetime.now(UTC)),
    }


def ref() -> str:
    return uuid.uuid4().hex[:8].upper()


# --- the tests --------------------------------------------------------------------------------


def test_the_bank_notification_confirms_once_and_only_what_matches(
    central: Central, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = central.console.store
    good, other, late, early = ref(), ref(), ref(), ref()
    central.record("payment-request", f"payreq-{good}", payment_request(good, 12000))
    central.record("payment-request", f"payreq-{other}", payment_request(other, 6000))
    central.record(
        "payment-request", f"payreq-{late}", payment_request(late, 2000, minutes_left=-5)
    )
    wait_until(lambda: all(store.payment_request(r) for r in (good, other, late)), 10, "requests")

    # A good transfer: the bank's text upper-cased, spaces gone, its own words around it.
    status, body = fakebank.notify(
        central.webhook,
        KEY,
        reference=good,
        amount=12000,
        account=ACCOUNT,
        bank_reference="FT26340912345",
        description=f"MBVCB.1234.LEPHI{good.lower()}.CT tu 0011001234567",
    )
    assert (status, body) == (200, {"success": True})
    confirmation = central.kiosk.wait_for(f"kiosk/v1/{KIOSK}/res/payment").json()
    assert_valid(confirmation, "payment-confirmation")
    assert confirmation["reference"] == good
    assert confirmation["amount_vnd"] == 12000
    assert confirmation["bank_reference"] == "FT26340912345"
    assert confirmation["method"] == "bank_transfer"
    assert central.status("FT26340912345") == "confirmed"

    # The same notification again (payOS retries): 2xx, nothing more.
    for _ in range(2):
        assert (
            fakebank.notify(
                central.webhook,
                KEY,
                reference=good,
                amount=12000,
                account=ACCOUNT,
                bank_reference="FT26340912345",
            )[0]
            == 200
        )

    # Wrong amount, another account, an unknown reference, after the request expired: kept
    # for attention, never confirmed.
    cases = {
        "FT26340900001": (other, 5000, ACCOUNT),
        "FT26340900002": (other, 6000, "9999999999"),
        "FT26340900003": ("0BADF00D", 6000, ACCOUNT),
        "FT26340900004": (late, 2000, ACCOUNT),
    }
    for bank_reference, (reference, amount, account) in cases.items():
        status, _ = fakebank.notify(
            central.webhook,
            KEY,
            reference=reference,
            amount=amount,
            account=account,
            bank_reference=bank_reference,
        )
        assert status == 200
    assert [central.status(b) for b in cases] == [
        "wrong_amount",
        "wrong_account",
        "unmatched",
        "late",
    ]

    # Forged and unsigned: 401, nothing stored.
    stored = central.count(bank_notifications)
    for forge, signed in ((True, True), (False, False)):
        status, _ = fakebank.notify(
            central.webhook,
            KEY,
            reference=other,
            amount=6000,
            account=ACCOUNT,
            bank_reference="FT26340900009",
            forge=forge,
            signed=signed,
        )
        assert status == 401
    assert central.count(bank_notifications) == stored
    assert central.status("FT26340900009") is None
    # A signed body with a changed amount is a forgery too.
    tampered = fakebank.notification(
        KEY, reference=other, amount=6000, account=ACCOUNT, bank_reference="FT26340900010"
    )
    tampered["data"]["amount"] = 600000
    assert fakebank.post(central.webhook, json.dumps(tampered).encode())[0] == 401
    assert central.count(bank_notifications) == stored

    # The transfer before the kiosk's record: confirmed when the record arrives.
    assert (
        fakebank.notify(
            central.webhook,
            KEY,
            reference=early,
            amount=4000,
            account=ACCOUNT,
            bank_reference="FT26340900005",
        )[0]
        == 200
    )
    assert central.status("FT26340900005") == "unmatched"
    assert central.confirmed(early) == []
    central.record("payment-request", f"payreq-{early}", payment_request(early, 4000))
    early_confirmation = central.kiosk.wait_for(
        f"kiosk/v1/{KIOSK}/res/payment", lambda m: m.json()["reference"] == early
    ).json()
    assert_valid(early_confirmation, "payment-confirmation")
    assert early_confirmation["bank_reference"] == "FT26340900005"
    assert central.status("FT26340900005") == "confirmed"

    # The kiosk's record again (it did not get the confirmation): the same one again.
    central.record("payment-request", f"payreq-{good}", payment_request(good, 12000))
    wait_until(lambda: len(central.confirmed(good)) == 2, 10, "the confirmation sent again")
    assert central.confirmed(good)[1] == confirmation

    # Finally the right transfer for `other`: its confirmation is the last message, so every
    # notification before it has been handled, and counted, by now.
    assert (
        fakebank.notify(
            central.webhook,
            KEY,
            reference=other,
            amount=6000,
            account=ACCOUNT,
            bank_reference="FT26340900006",
        )[0]
        == 200
    )
    central.kiosk.wait_for(
        f"kiosk/v1/{KIOSK}/res/payment", lambda m: m.json()["reference"] == other
    )
    by_reference = {r: len(central.confirmed(r)) for r in (good, other, late, early)}
    assert by_reference == {good: 2, other: 1, late: 0, early: 1}
    assert len(central.confirmations()) == 4
    for c in central.confirmations():
        assert_valid(c, "payment-confirmation")

    # The console's list of what needs attention.
    attention = {n["bank_reference"]: n["status"] for n in store.bank_notifications(attention=True)}
    assert attention == {
        "FT26340900001": "wrong_amount",
        "FT26340900002": "wrong_account",
        "FT26340900003": "unmatched",
        "FT26340900004": "late",
    }
    # The payer's account and name are sealed: kept for a refund, not in any plain column.
    with store.engine.connect() as conn:
        plain = json.dumps(
            [
                list(r)
                for r in conn.execute(
                    sa.select(
                        bank_notifications.c.bank_reference,
                        bank_notifications.c.account,
                        bank_notifications.c.status,
                    )
                )
            ]
        )
    assert "NGUYEN VAN AN" not in plain
    kept = store.bank_notification_data("FT26340900001")
    assert kept is not None and kept["counterAccountName"] == "NGUYEN VAN AN"
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "NGUYEN VAN AN" not in logged and "0011001234567" not in logged
    assert KEY not in logged

    # A fee receipt: stored with its payer sealed, and on the console page.
    number = f"{KIOSK}-{dt.datetime.now(UTC):%Y%m%d}-0001"
    central.record(
        "fee-receipt", f"receipt-{number}", fee_receipt(number, good, 12000, "FT26340912345")
    )
    wait_until(lambda: store.fee_receipts(kiosk_id=KIOSK), 10, "the fee receipt stored")
    central.record(
        "fee-receipt", f"receipt-{number}", fee_receipt(number, good, 12000, "FT26340912345")
    )  # replayed: still one
    assert store.fee_receipt_payer(number) == PAYER
    with store.engine.connect() as conn:
        sealed = conn.execute(sa.select(fee_receipts.c.payer)).scalar_one()
    assert PAYER.encode() not in sealed
    page = operator_page(central, "/payments")
    assert number in page
    assert "12.000 đ" in page  # the day's total for the kiosk
    for bank_reference in ("FT26340900001", "FT26340900002", "FT26340900003", "FT26340900004"):
        assert bank_reference in page
    assert "Sai số tiền" in page and "Sai tài khoản nhận" in page and "Chuyển sau hạn" in page
    assert PAYER not in page
    assert central.count(fee_receipts) == 1
    day_page = operator_page(central, "/payments?day=2001-01-01")
    assert number not in day_page


def operator_page(central: Central, path: str) -> str:
    """Log in over HTTP as a real browser would (session cookie, CSRF token) and GET path."""
    if central.console.store.operator("tran.thi.thu") is None:
        create_operator(central.console.store, "tran.thi.thu", "Trần Thị Thu", PASSWORD)
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    # Without a login: the login page, not the payments.
    with opener.open(central.base + path) as r:
        login = r.read().decode()
        assert "/login" in r.url
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login)
    assert token is not None
    form = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "operator": "tran.thi.thu", "password": PASSWORD}
    ).encode()
    with opener.open(central.base + "/login?next=" + urllib.parse.quote(path), form) as r:
        assert r.status == 200
    with opener.open(central.base + path) as r:
        assert r.url.endswith(path)
        return r.read().decode()


def test_without_a_checksum_key_the_webhook_answers_503_and_says_so_once(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, caplog: pytest.LogCaptureFixture
) -> None:
    console, web = start_central(tmp_path, broker, fleet_pki, url=None, key=None)
    try:
        url = f"http://127.0.0.1:{web.port}/bank/payos"
        for _ in range(3):
            status, _ = fakebank.notify(
                url, KEY, reference="0A0B0C0D", amount=1000, account=ACCOUNT
            )
            assert status == 503
        said = [r for r in caplog.records if "no checksum key" in r.getMessage()]
        assert len(said) == 1
        assert console.store.bank_notifications() == []
        # Too large a body is refused before anything is read into memory.
        status, _ = fakebank.post(url, b"{" + b" " * 20000 + b"}")
        assert status == 413
        # Not a POST: no such page for a GET.
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 405
    finally:
        web.stop()
        console.stop()
