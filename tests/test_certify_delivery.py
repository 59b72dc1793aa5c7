"""E-mail delivery of approved copies (fleet/certify/delivery.py) to a real SMTP server on
loopback (aiosmtpd): the copy arrives with its signed PDF; an SMTP server down at approval
loses nothing; e-wallet is listed, not sent; the address is in no log."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from fleet.certify.config import MailConfig
from fleet.certify.delivery import BACKOFF_S, MailSender
from fleet.store import FleetStore
from protocol.crypto import DataKey
from tests.certify_helpers import (
    TestSigner,
    add_officer,
    certifier_for_tests,
    package,
    page_jpeg,
    request_row,
)
from tests.fleet_console_helpers import Postgres, database_url, running_postgres
from tests.mqtt_broker import wait_until
from tests.softhsm import PIN

OFFICER = "tran.thi.binh"
ADDRESS = "nguyen.van.an@example.vn"


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_port() -> int:
    return free_port()


def smtp_server(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("signer"))


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetStore]:
    url = database_url(request, tmp_path)
    s = FleetStore(url, data_key=DataKey.load_or_create(tmp_path / "k")).create()
    add_officer(s)
    yield s
    s.close()


def approve(
    store: FleetStore, signer: TestSigner, code: str, delivery: dict[str, Any]
) -> dict[str, Any]:
    """A request whose package carries `delivery`, approved; the kiosk's "approved" answer."""
    jpeg = page_jpeg(size=(620, 877))
    pkg = {**package(code, jpeg), "delivery": delivery}
    assert store.cert_add_request(
        request_row(code, received_at=time.time()), package=json.dumps(pkg).encode()
    )
    published: list[tuple[str, dict[str, Any]]] = []
    certifier_for_tests(store, signer, published=published).approve(
        code, OFFICER, pin=PIN, remote_addr="127.0.0.1"
    )
    [answer] = [m for _t, m in published if m.get("status") == "approved"]
    return answer


def mail_config(port: int) -> MailConfig:
    return MailConfig(host="127.0.0.1", port=port, sender="chungthuc@badinh.example.vn",
                      timeout_s=5)  # fmt: skip


def no_address_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Every record but the test SMTP server's own (aiosmtpd logs the envelope at debug).
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert ours, "nothing was logged: the check below would prove nothing"
    for r in ours:
        assert ADDRESS not in repr(r.__dict__), r.name


def test_an_approved_copy_goes_by_email_with_its_signed_pdf(
    store: FleetStore, signer: TestSigner, smtp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = "HN-K1-261205-000001-X"
    controller, inbox = smtp_server(smtp_port)
    sender = MailSender(store, mail_config(smtp_port), interval_s=0.2)
    try:
        answer = approve(store, signer, code, {"channel": "email", "address": ADDRESS})
        sender.start()
        wait_until(lambda: inbox.messages, timeout=30)
        wait_until(lambda: (store.cert_delivery(code) or {}).get("status") == "sent", timeout=10)
    finally:
        sender.stop()
        controller.stop()
    assert len(inbox.messages) == 1
    rcpt, raw = inbox.messages[0]
    assert rcpt == [ADDRESS]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == f"Bản sao chứng thực {code}"
    assert msg["To"] == ADDRESS
    body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert f"Số chứng thực: {answer['number']}" in body
    assert f"Quyển số: {answer['book']}" in body
    assert answer["qr"] in body  # the verification URL
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == f"{code}.pdf"
    assert attachment.get_content_type() == "application/pdf"
    stored = store.cert_copy(code)["book"]["pdf"]  # type: ignore[index]
    assert attachment.get_content() == stored
    row = store.cert_delivery(code)
    assert row is not None and row["tries"] == 1 and row["sent_at"] is not None
    no_address_logged(caplog)


def test_smtp_down_at_approval_then_delivered_once_it_is_up(
    store: FleetStore, signer: TestSigner, smtp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = "HN-K1-261205-000002-X"
    answer = approve(store, signer, code, {"channel": "email", "address": ADDRESS})
    now = [time.time()]
    sender = MailSender(store, mail_config(smtp_port), clock=lambda: now[0])
    assert answer["number"] == 1  # approved although no SMTP server listens
    assert store.cert_copy(code)["request"]["status"] == "approved"  # type: ignore[index]
    assert sender.send_due() == 0  # connection refused
    row = store.cert_delivery(code)
    assert row is not None and row["status"] == "pending" and row["tries"] == 1
    assert row["last_error"] == "ConnectionRefusedError"
    assert row["next_try_at"] == pytest.approx(now[0] + BACKOFF_S[0])

    controller, inbox = smtp_server(smtp_port)
    try:
        assert sender.send_due() == 0  # not due yet: the backoff holds
        assert inbox.messages == []
        now[0] += BACKOFF_S[0] + 1
        # A new sender, as after central restarts: the queue is in the database.
        restarted = MailSender(store, mail_config(smtp_port), clock=lambda: now[0])
        assert restarted.send_due() == 1
    finally:
        controller.stop()
    assert [rcpt for rcpt, _ in inbox.messages] == [[ADDRESS]]
    row = store.cert_delivery(code)
    assert row is not None and row["status"] == "sent" and row["tries"] == 2
    no_address_logged(caplog)


def test_ten_failures_mark_the_delivery_failed(
    store: FleetStore, signer: TestSigner, smtp_port: int
) -> None:
    code = "HN-K1-261205-000003-X"
    now = [time.time()]
    sender = MailSender(store, mail_config(smtp_port), clock=lambda: now[0])
    approve(store, signer, code, {"channel": "email", "address": ADDRESS})
    for _ in range(10):
        now[0] += 3600
        sender.send_due()
    row = store.cert_delivery(code)
    assert row is not None and row["status"] == "failed" and row["tries"] == 10
    now[0] += 3600
    assert store.cert_deliveries_due(now[0]) == []


@pytest.mark.parametrize("channel", ["ewallet", "post"])
def test_ewallet_and_post_are_listed_unsupported_and_not_sent(
    store: FleetStore,
    signer: TestSigner,
    smtp_port: int,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    code = "HN-K1-261205-000004-X"
    controller, inbox = smtp_server(smtp_port)
    try:
        approve(store, signer, code, {"channel": channel, "address": ADDRESS})
        assert MailSender(store, mail_config(smtp_port)).send_due() == 0
    finally:
        controller.stop()
    assert inbox.messages == []
    row = store.cert_delivery(code)
    assert row is not None and row["status"] == "unsupported" and row["channel"] == channel
    assert any(
        getattr(r, "request", None) == code and getattr(r, "channel", None) == channel
        for r in caplog.records
    )  # logged for staff
    no_address_logged(caplog)


def test_a_kiosk_delivery_gets_no_row(store: FleetStore, signer: TestSigner) -> None:
    code = "HN-K1-261205-000005-X"
    approve(store, signer, code, {"channel": "kiosk"})
    assert store.cert_delivery(code) is None


def test_the_console_runs_the_sender_only_when_a_mail_host_is_set(
    tmp_path: Path, signer: TestSigner, smtp_port: int
) -> None:
    from fleet.config import FleetConfig, StoreSection
    from fleet.console import build_console
    from fleet.responders import CertifyMail

    def config(mail: MailConfig) -> FleetConfig:
        return FleetConfig(
            store=StoreSection(url=f"sqlite:///{tmp_path / 'fleet.db'}",
                               data_key_file=tmp_path / "data.key"),
            certify=signer.config(mail=mail),
        )  # fmt: skip

    assert not any(isinstance(s, CertifyMail) for s in build_console(config(MailConfig())).services)
    console = build_console(config(mail_config(smtp_port)))
    assert any(isinstance(s, CertifyMail) for s in console.services)
    code = "HN-K1-261205-000006-X"
    controller, inbox = smtp_server(smtp_port)
    console.start(mqtt=False)
    try:
        add_officer(console.store)
        jpeg = page_jpeg(size=(620, 877))
        pkg = {**package(code, jpeg), "delivery": {"channel": "email", "address": ADDRESS}}
        assert console.store.cert_add_request(
            request_row(code, received_at=time.time()), package=json.dumps(pkg).encode()
        )
        console.certifier.approve(code, OFFICER, pin=PIN, remote_addr="127.0.0.1")
        started = time.monotonic()
        wait_until(lambda: inbox.messages, timeout=30)
        # Woken by the approval, not at its next 15 s round.
        assert time.monotonic() - started < 5
    finally:
        console.stop()
        controller.stop()
    assert [rcpt for rcpt, _ in inbox.messages] == [[ADDRESS]]
