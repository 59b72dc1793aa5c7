"""Dossier status against a real Mosquitto (config/mosquitto, mTLS, the shipped ACL) with a small
central responder: found, not found, timeout, offline with the cached answer and its age,
MQTT 3.1.1, refused answers, rate limits, code formats. Also the reference responder for
central's fleet console (docs/fleet.md, "Dossier status")."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import ServicesSection
from edge.services.dossier import (
    DossierService,
    DossierUnavailable,
    InvalidDossierCode,
    RateLimited,
    _Pending,
    age_text_vi,
    extract_code,
    normalize_code,
)
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from tests.central_responder import CentralResponder
from tests.mqtt_broker import Broker, FleetPki, Peer, assert_valid, kiosk_client, wait_until

KIOSK = "KIOSK-A"
OTHER = "KIOSK-B"
CODE = "000.00.13.H26-241120-0007"
TODAY = dt.date(2026, 11, 23)

REJECTED = {
    "procedure": "Đăng ký kết hôn",
    "agency": "UBND phường Tây Hồ",
    "status": "rejected",
    "received_at": "2024-11-20T08:10:00+07:00",
    "due_at": "2024-11-25T17:00:00+07:00",
    "completed_at": "2024-11-22T10:00:00+07:00",
    "on_time": True,
    "reason": "Thiếu giấy xác nhận tình trạng hôn nhân của bên nữ.",
    "pickup": None,
    "timeline": [
        {"at": "2024-11-20T08:10:00+07:00", "status": "received", "note": "Bộ phận Một cửa"},
        {"at": "2024-11-20T14:00:00+07:00", "status": "in_process"},
        {"at": "2024-11-22T10:00:00+07:00", "status": "rejected"},
    ],
}


class FakeClock:
    def __init__(self) -> None:
        self.at = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.at


class Kiosk:
    def __init__(self, root: Path, broker: Broker, pki: FleetPki, kiosk_id: str, **kw: Any):
        self.store = Store(root / kiosk_id / "kiosk.db")
        self.store.open()
        self.key = DataKey.load_or_create(root / kiosk_id / "keys" / "k")
        identity = pki.client(kiosk_id)
        protocol = kw.pop("protocol", "5")
        self.fleet = kiosk_client(
            broker,
            pki,
            identity,
            kiosk_id=kiosk_id,
            store=self.store,
            outbox=Outbox(self.store, self.key),
            protocol=protocol,
        )
        self.clock = FakeClock()
        self.reports: list[tuple[str, dict[str, Any]]] = []
        settings = {"dossier_timeout_s": 1.0, **kw}
        self.dossiers = DossierService(
            store=self.store,
            key=self.key,
            kiosk_id=kiosk_id,
            settings=ServicesSection(**settings),
            requester=self.fleet,
            clock=self.clock,
            report=lambda kind, detail: self.reports.append((kind, detail)),
        )
        self.fleet.start()
        wait_until(lambda: self.fleet.subscribed, 10, "kiosk connected and subscribed")

    def close(self) -> None:
        self.fleet.stop()
        self.store.close()


@pytest.fixture
def responder(broker: Broker, fleet_pki: FleetPki) -> Iterator[CentralResponder]:
    r = CentralResponder(broker, fleet_pki)
    yield r
    r.close()


@pytest.fixture
def make_kiosk(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> Iterator[Callable[..., Kiosk]]:
    made: list[Kiosk] = []

    def make(kiosk_id: str = KIOSK, **kw: Any) -> Kiosk:
        k = Kiosk(tmp_path / "kiosks", broker, fleet_pki, kiosk_id, **kw)
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()


# --- against the broker --------------------------------------------------------------------


def test_found_with_timeline_and_the_request_follows_the_contract(
    make_kiosk: Callable[..., Kiosk], responder: CentralResponder
) -> None:
    responder.dossiers[CODE] = REJECTED
    kiosk = make_kiosk()
    status = kiosk.dossiers.lookup(" 000.00.13.h26 – 241120 – 0007 ", session_id="s1")
    assert status.found and status.source == "central" and status.age_vi is None
    assert (status.status, status.status_vi) == ("rejected", "Bị từ chối")
    assert status.reason == REJECTED["reason"] and status.on_time_vi == "Đúng hạn"
    assert [s.status_vi for s in status.timeline] == [
        "Đã tiếp nhận",
        "Đang giải quyết",
        "Bị từ chối",
    ]
    assert status.due_at == dt.datetime.fromisoformat("2024-11-25T17:00:00+07:00")
    assert status.as_dict()["timeline"][0]["note"] == "Bộ phận Một cửa"

    ((topic, request, props),) = responder.requests
    assert topic == f"kiosk/v1/{KIOSK}/req/dossier-status"
    assert_valid(request, "dossier-status-request")
    assert request["code"] == CODE and request["reply_to"] == f"kiosk/v1/{KIOSK}/res/dossier-status"
    assert props.ResponseTopic == request["reply_to"]
    assert props.CorrelationData == request["request_id"].encode()
    assert 0 < props.MessageExpiryInterval <= 1


def test_not_found(make_kiosk: Callable[..., Kiosk], responder: CentralResponder) -> None:
    status = make_kiosk().dossiers.lookup("H26.22-250301-00012")
    assert not status.found and status.source == "central" and status.status is None


def test_timeout_without_cache_says_try_later(
    make_kiosk: Callable[..., Kiosk], responder: CentralResponder
) -> None:
    responder.silent.add(CODE)
    kiosk = make_kiosk()
    started = time.monotonic()
    with pytest.raises(DossierUnavailable) as err:
        kiosk.dossiers.lookup(CODE)
    assert 1.0 <= time.monotonic() - started < 3
    assert err.value.detail["reason"] == "timeout"
    assert err.value.message_vi.startswith("Hiện không kết nối được với hệ thống")


def test_offline_shows_the_cached_answer_with_its_age(
    make_kiosk: Callable[..., Kiosk], responder: CentralResponder, broker: Broker
) -> None:
    responder.dossiers[CODE] = REJECTED
    kiosk = make_kiosk()
    assert kiosk.dossiers.lookup(CODE).source == "central"
    # Sealed at rest: neither the code nor the reason is readable in the database file.
    kiosk.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = kiosk.store.path.read_bytes()
    assert CODE.encode() not in raw and "Thiếu giấy".encode() not in raw

    broker.stop()
    wait_until(lambda: not kiosk.fleet.connected, 10, "kiosk sees the broker gone")
    kiosk.clock.at += dt.timedelta(hours=2, minutes=5)
    started = time.monotonic()
    status = kiosk.dossiers.lookup(CODE)
    assert time.monotonic() - started < 0.5  # offline: no waiting for a timeout
    assert status.source == "cache" and status.stale_reason == "offline"
    assert round(status.age_s) == 7500 and status.age_vi == "cập nhật 2 giờ trước"
    assert status.reason == REJECTED["reason"]
    with pytest.raises(DossierUnavailable) as err:  # never asked: nothing cached
        kiosk.dossiers.lookup("H26.22-250301-00012")
    assert err.value.detail["reason"] == "offline"
    # Past dossier_cache_days the cached answer is not shown any more.
    kiosk.clock.at += dt.timedelta(days=31)
    with pytest.raises(DossierUnavailable):
        kiosk.dossiers.lookup(CODE)


def test_timeout_and_unavailable_fall_back_to_the_cache(
    make_kiosk: Callable[..., Kiosk], responder: CentralResponder
) -> None:
    responder.dossiers[CODE] = REJECTED
    kiosk = make_kiosk()
    kiosk.dossiers.lookup(CODE)
    responder.silent.add(CODE)
    assert kiosk.dossiers.lookup(CODE).stale_reason == "timeout"
    responder.silent.clear()
    responder.unavailable = True
    status = kiosk.dossiers.lookup(CODE)
    assert (status.source, status.stale_reason) == ("cache", "unavailable")
    # Central's operators hear that its responder failed: once, not per lookup.
    assert kiosk.reports == [("services.dossier_no_answer", {"since_last_report": 1})]


@pytest.mark.parametrize(
    "damage",
    [
        lambda a: {**a, "result": "maybe"},
        lambda a: {**a, "code": "H26-241120-0001"},
        lambda a: {**a, "dossier": {**REJECTED, "reason": None}},  # rejected needs a reason
        lambda a: {**a, "applicant_name": "Nguyễn Văn A"},  # no personal data, no extras
    ],
)
def test_an_answer_that_breaks_the_contract_counts_as_no_answer(
    make_kiosk: Callable[..., Kiosk], responder: CentralResponder, damage: Callable
) -> None:
    responder.dossiers[CODE] = REJECTED
    responder.override = damage
    kiosk = make_kiosk()
    with pytest.raises(DossierUnavailable) as err:
        kiosk.dossiers.lookup(CODE)
    assert err.value.detail["reason"] == "timeout"


def test_mqtt_311_uses_reply_to_and_request_id(
    make_kiosk: Callable[..., Kiosk], responder: CentralResponder
) -> None:
    responder.dossiers[CODE] = {**REJECTED, "status": "in_process", "reason": None}
    kiosk = make_kiosk(protocol="3.1.1")
    status = kiosk.dossiers.lookup(CODE)
    assert status.found and status.status_vi == "Đang giải quyết"
    ((_, request, props),) = responder.requests
    assert getattr(props, "ResponseTopic", None) is None  # 3.1.1 has no properties
    assert request["reply_to"] == f"kiosk/v1/{KIOSK}/res/dossier-status"


def test_rate_limited_per_session_without_sending(
    make_kiosk: Callable[..., Kiosk], responder: CentralResponder
) -> None:
    kiosk = make_kiosk(dossier_per_session_per_minute=2, dossier_per_kiosk_per_minute=3)
    kiosk.dossiers.lookup(CODE, session_id="s1")
    kiosk.dossiers.lookup(CODE, session_id="s1")
    with pytest.raises(RateLimited) as err:
        kiosk.dossiers.lookup(CODE, session_id="s1")
    assert 1 <= err.value.detail["retry_after_s"] <= 60
    assert "Vui lòng chờ" in err.value.message_vi
    kiosk.dossiers.lookup(CODE, session_id="s2")  # another citizen
    with pytest.raises(RateLimited):  # the kiosk as a whole
        kiosk.dossiers.lookup(CODE, session_id="s3")
    assert len(responder.requests) == 3


def test_a_kiosk_cannot_hear_another_kiosks_answers(
    make_kiosk: Callable[..., Kiosk],
    responder: CentralResponder,
    broker: Broker,
    fleet_pki: FleetPki,
) -> None:
    responder.dossiers[CODE] = REJECTED
    kiosk = make_kiosk()
    rogue = Peer(broker, fleet_pki.client(OTHER)).connect()
    try:
        rogue.subscribe(f"kiosk/v1/{KIOSK}/res/#")
        rogue.subscribe(f"kiosk/v1/{KIOSK}/req/#")
        assert kiosk.dossiers.lookup(CODE).found
        # And it cannot ask in the other kiosk's name (MQTT 5 PUBACK: not authorised).
        refused = rogue.publish(f"kiosk/v1/{KIOSK}/req/dossier-status", b"{}")
        assert refused is not None and refused.is_failure
        time.sleep(0.3)
        assert rogue.received() == []
    finally:
        rogue.close()


def test_without_fleet_reporting_only_the_cache_answers(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    store.open()
    try:
        service = DossierService(
            store=store,
            key=DataKey.load_or_create(tmp_path / "keys" / "k"),
            kiosk_id=KIOSK,
            settings=ServicesSection(),
            requester=None,
        )
        with pytest.raises(DossierUnavailable) as err:
            service.lookup(CODE)
        assert err.value.detail["reason"] == "offline"
    finally:
        store.close()


# --- codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("000.00.13.H26-241120-0007", CODE),
        ("000.00.13.h26-241120-0007", CODE),
        ("000.00.13.H26 - 241120 - 0007", CODE),
        ("000.00.13.H26–241120–0007", CODE),
        ("H26.22-250301-00012", "H26.22-250301-00012"),
        ("G22-261123-123456", "G22-261123-123456"),
    ],
)
def test_accepted_codes(typed: str, code: str) -> None:
    assert normalize_code(typed, today=TODAY) == code


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "0007",
        "000.00.13.H26-241120",  # no sequence
        "000.00.13.H26-241320-0007",  # month 13
        "000.00.13.H26-270101-0007",  # after today
        "000.00.13.H26-241120-0000",  # sequence zero
        "000.00.13.H26-241120-007",  # sequence too short
        "ÁBC-241120-0007",  # not ASCII after normalising
        "000..13.H26-241120-0007",
    ],
)
def test_refused_codes(typed: str) -> None:
    with pytest.raises(InvalidDossierCode) as err:
        normalize_code(typed, today=TODAY)
    assert err.value.message_vi.startswith("Mã hồ sơ không đúng định dạng")


@pytest.mark.parametrize(
    "scanned",
    [
        f"https://dichvucong.gov.vn/p/home/dvc-tra-cuu-ho-so.html?maHoSo={CODE}",
        f"https://dichvucong.hanoi.gov.vn/tra-cuu/{CODE}?lang=vi",
        f"Mã hồ sơ: {CODE}\nNgày hẹn trả: 25/11/2024",
        f"BIEN NHAN|{CODE}|Dang ky ket hon",
    ],
)
def test_code_found_in_a_scanned_qr(scanned: str) -> None:
    assert extract_code(scanned, today=TODAY) == CODE


def test_age_text() -> None:
    assert [age_text_vi(s) for s in (5, 125, 7300, 3 * 86400)] == [
        "vừa xong",
        "2 phút trước",
        "2 giờ trước",
        "3 ngày trước",
    ]


def test_response_schema_examples_from_the_docs_are_valid() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "fleet.md").read_text()
    section = text[text.index("## Dossier status") : text.index("## Records of citizen services")]
    blocks = [b.split("```", 1)[0] for b in section.split("```json\n")[1:]]
    request, answer = (json.loads(b) for b in blocks)
    assert_valid(request, "dossier-status-request")
    assert_valid(answer, "dossier-status-response")


# --- robustness: nothing typed, scanned or received can break the service ------------------


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text_is_a_valid_code_or_refused(text: str) -> None:
    try:
        code = extract_code(text, today=TODAY)
    except InvalidDossierCode:
        return
    assert_valid(
        {
            "schema": "dossier-status-request/1",
            "request_id": "0" * 32,
            "kiosk_id": KIOSK,
            "code": code,
            "time": "2026-11-23T02:00:00+00:00",
            "expires_at": "2026-11-23T02:00:08+00:00",
            "reply_to": f"kiosk/v1/{KIOSK}/res/dossier-status",
        },
        "dossier-status-request",
    )


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()), answer=JSON)
def test_fuzz_any_answer_is_dropped_or_refused_never_raises(
    tmp_path: Path, payload, answer
) -> None:
    store = Store(tmp_path / "fuzz.db")
    store.open()
    try:
        service = DossierService(
            store=store,
            key=DataKey.load_or_create(tmp_path / "keys" / "k"),
            kiosk_id=KIOSK,
            settings=ServicesSection(),
        )
        service._on_response("res/dossier-status", payload, None)  # no request waiting: dropped
        pending = _Pending(payload=json.dumps(answer).encode())
        assert service._valid_answer(pending, "0" * 32, CODE) is None  # never a valid answer
    finally:
        store.close()
