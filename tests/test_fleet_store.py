"""The console's store: the same tests on SQLite and on a real PostgreSQL the fixture starts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.store import FleetStore, Incoming
from protocol.crypto import DataKey
from tests.fleet_console_helpers import Postgres, database_url, running_postgres

KIOSK = "HN-TAYHO-01"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetStore]:
    s = FleetStore(
        database_url(request, tmp_path), data_key=DataKey.load_or_create(tmp_path / "data.key")
    ).create()
    assert s.dialect == request.param
    yield s
    s.close()


def msg(
    kind: str, payload: dict[str, Any], kiosk: str = KIOSK, at: float | None = None
) -> Incoming:
    return Incoming(
        topic=f"kiosk/v1/{kiosk}/{kind}",
        kiosk_id=kiosk,
        kind=kind,
        payload={"kiosk_id": kiosk, **payload},
        received_at=time.time() if at is None else at,
    )


def record(rid: str, seq: int, data: dict[str, Any] | None = None) -> Incoming:
    return msg(
        "record",
        {
            "schema": "record/1",
            "kind": "copy",
            "id": rid,
            "seq": seq,
            "time": "2026-11-23T09:00:00+00:00",
            "data": data or {"code": rid},
        },
    )


def test_records_are_stored_once_and_every_delivery_is_acknowledged(store: FleetStore) -> None:
    first = store.apply([record("r1", 1), record("r2", 2)])
    assert (first.new_records, first.duplicate_records) == (2, 0)
    again = store.apply([record("r2", 2), record("r1", 1), record("r3", 3)])
    assert (again.new_records, again.duplicate_records) == (1, 2)
    assert again.acked == {KIOSK: ["r2", "r1", "r3"]}  # duplicates are acknowledged too
    rows = {r["id"]: r for r in store.records(with_data=True)}
    assert sorted(rows) == ["r1", "r2", "r3"]
    assert rows["r1"]["deliveries"] == 2 and rows["r3"]["deliveries"] == 1
    assert rows["r2"]["data"] == {"code": "r2"}
    # Sealed at rest: the database holds no readable record data.
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT sealed FROM records WHERE id = 'r2'")).scalar_one()
    assert "r2" not in raw and "code" not in raw and "data" not in store.records()[0]
    assert store.kiosk(KIOSK)["max_seq"] == 3 and store.kiosk(KIOSK)["seq_gaps"] == 0
    store.apply([record("r6", 6), record("r7", 7)])  # 4 and 5 never came
    assert store.kiosk(KIOSK)["max_seq"] == 7 and store.kiosk(KIOSK)["seq_gaps"] == 2


def test_state_telemetry_and_events_make_the_kiosk_row(store: FleetStore) -> None:
    t0 = time.time()
    store.apply(
        [
            msg(
                "state",
                {
                    "schema": "state/1",
                    "state": "online",
                    "version": "0.2.0",
                    "protocol": "5",
                    "capabilities": ["printer"],
                    "status": {"locked": True},
                },
                at=t0,
            ),
            msg(
                "telemetry",
                {
                    "schema": "telemetry/1",
                    "id": "t1",
                    "seq": 1,
                    "time": "2026-11-23T09:00:00+00:00",
                    "system": {
                        "cpu_temp_c": 61.5,
                        "load": [0.5, 0.4, 0.3],
                        "disk": {"total_mb": 1000, "free_mb": 50},
                    },
                    "outbox": {"record": 4, "event": 1, "telemetry": 0},
                    "printer": {"online": True, "paper": "near-end"},
                    "camera": {"ok": True},
                    "door": "closed",
                    "certificate": {"not_after": "2027-01-01T00:00:00+00:00"},
                },
            ),
        ]
    )
    k = store.kiosk(KIOSK)
    assert k["state"] == "online" and k["version"] == "0.2.0" and k["locked"] is True
    assert k["cpu_temp_c"] == 61.5 and k["disk_used_pct"] == 95.0 and k["outbox_depth"] == 5
    assert k["paper"] == "near-end" and k["camera_ok"] is True and k["door"] == "closed"
    assert k["cert_not_after"] == pytest.approx(1798761600.0)
    assert k["site"] == "HN-TAYHO"  # from the id until an operator sets it
    event = {
        "schema": "event/1",
        "id": "e1",
        "seq": 2,
        "kind": "printer.paper_out",
        "severity": "error",
        "time": "2026-11-23T09:01:00+00:00",
        "detail": {},
    }
    out = store.apply([msg("event", event), msg("event", event)])
    assert (out.new_events, out.duplicate_events) == (1, 1)
    k = store.kiosk(KIOSK)
    assert k["paper"] == "out" and k["last_error"] == "printer.paper_out"
    store.apply(
        [
            msg(
                "state",
                {"schema": "state/1", "state": "offline", "reason": "connection_lost"},
                at=t0 + 5,
            )
        ]
    )
    k = store.kiosk(KIOSK)
    assert k["state"] == "offline" and k["state_since"] == pytest.approx(t0 + 5)
    assert k["offline_reason"] == "connection_lost"
    series = store.telemetry_series(KIOSK, since=0)
    assert [s["cpu_temp_c"] for s in series] == [61.5] and series[0]["load1"] == 0.5
    store.set_site(KIOSK, "Phường Tây Hồ")
    assert store.sites() == ["Phường Tây Hồ"]
    assert [k["kiosk_id"] for k in store.kiosks(site="Phường Tây Hồ")] == [KIOSK]


def test_a_bad_message_is_refused_alone(store: FleetStore) -> None:
    out = store.apply(
        [
            record("good-1", 1),
            msg("state", {"schema": "state/1", "state": "sleeping"}),
            record("good-2", 2),
        ]
    )
    assert out.rejected == 1 and out.new_records == 2
    assert store.count_events(KIOSK, "x", 0) == 0
    assert len(store.records()) == 2


def test_command_log_and_results(store: FleetStore) -> None:
    envelope = {
        "id": "c-1",
        "name": "lock",
        "args": {},
        "operator": "an",
        "expires_at": "2026-11-23T09:05:00+00:00",
    }
    store.log_command(envelope, kiosk_id=KIOSK, now=100.0)
    assert store.command("c-1")["status"] == "sent"
    store.apply(
        [
            msg(
                "result",
                {
                    "schema": "command-result/1",
                    "id": "c-1",
                    "name": "lock",
                    "status": "ok",
                    "reason": None,
                    "message": "",
                    "result": {"locked": True},
                },
            )
        ]
    )
    row = store.command("c-1")
    assert row["status"] == "ok" and row["result"] == {"locked": True}
    assert row["operator"] == "an" and store.kiosk(KIOSK)["locked"] is True
    # A result from another kiosk for the same id does not overwrite it.
    store.apply(
        [msg("result", {"id": "c-1", "name": "lock", "status": "refused"}, kiosk="HN-OTHER-02")]
    )
    assert store.command("c-1")["status"] == "ok"


def test_alerts_raise_once_and_clear(store: FleetStore) -> None:
    raised, cleared = store.sync_alerts({(KIOSK, "offline"): ("error", "offline")}, now=1.0)
    assert [r["rule"] for r in raised] == ["offline"] and cleared == []
    raised, cleared = store.sync_alerts({(KIOSK, "offline"): ("error", "offline")}, now=2.0)
    assert raised == [] and cleared == []
    raised, cleared = store.sync_alerts({(KIOSK, "paper_out"): ("error", "paper")}, now=3.0)
    assert [r["rule"] for r in raised] == ["paper_out"]
    assert [(c["rule"], c["cleared_at"]) for c in cleared] == [("offline", 3.0)]
    assert [a["rule"] for a in store.open_alerts()] == ["paper_out"]
    assert len(store.alert_history()) == 2


def test_a_claim_is_bound_to_one_key_even_when_raced(store: FleetStore) -> None:
    now = time.time()
    store.add_claim(
        {
            "claim_id": "cabcdefgh2345",
            "secret": "sealed",
            "kiosk_id": KIOSK,
            "site": "s",
            "serial": "",
            "created_by": "an",
            "created_at": now,
            "expires_at": now + 60,
            "account_removed": False,
        }
    )
    winners: list[str] = []
    barrier = threading.Barrier(4)

    def take(key: str) -> None:
        barrier.wait()
        if store.bind_claim("cabcdefgh2345", key, now=time.time()):
            winners.append(key)

    threads = [threading.Thread(target=take, args=(f"key-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert store.bind_claim("cabcdefgh2345", winners[0], now=now)  # the same key again: yes
    assert store.claims_to_close(now=now) == []
    store.claim_certificate("cabcdefgh2345", "PEM", "abc")
    assert store.claims_to_close(now=now) == []  # answered, but the kiosk not heard yet
    store.apply([msg("state", {"state": "online"}, at=time.time() + 1)])
    assert store.claims_to_close(now=now) == ["cabcdefgh2345"]
    store.claim_account_removed("cabcdefgh2345")
    assert store.claims_to_close(now=now + 100) == []


def test_dossiers_revocations_and_pruning(store: FleetStore) -> None:
    store.put_dossier("H01.1-241123-0001", {"status": "processing"})
    store.put_dossier("H01.1-241123-0001", {"status": "done"})
    assert store.dossier("H01.1-241123-0001")["data"] == {"status": "done"}
    assert store.revoke_copy("HN-A-1", reason="lỗi", operator="an", now=5.0)
    assert not store.revoke_copy("HN-A-1", reason="again", operator="an", now=6.0)
    assert [(r["code"], r["reason"]) for r in store.revocations()] == [("HN-A-1", "lỗi")]
    old = time.time() - 10 * 86400
    store.apply(
        [
            msg("telemetry", {"id": str(uuid.uuid4()), "time": "2000-01-01T00:00:00+00:00"}),
            msg(
                "event",
                {
                    "id": "old-e",
                    "kind": "x",
                    "severity": "info",
                    "time": "2000-01-01T00:00:00+00:00",
                },
            ),
        ]
    )
    assert store.prune(now=old + 10 * 86400, telemetry_keep_s=86400, events_keep_s=86400) == 2
    assert store.telemetry_series(KIOSK, since=0) == []


def test_provisioning_record_and_expiry_event_give_site_and_certificate_expiry(
    store: FleetStore,
) -> None:
    store.apply(
        [
            msg(
                "record",
                {
                    "schema": "record/1",
                    "kind": "provisioning",
                    "id": "prov-1",
                    "seq": 1,
                    "time": "2026-11-23T09:00:00+00:00",
                    "data": {
                        "site": "Phường Tây Hồ",
                        "enrolment": "offline",
                        "certificate_not_after": "2027-11-23T09:00:00+00:00",
                    },
                },
            )
        ]
    )
    k = store.kiosk(KIOSK)
    assert k["site"] == "Phường Tây Hồ"
    assert k["cert_not_after"] == pytest.approx(1826960400.0)
    store.apply(
        [
            msg(
                "event",
                {
                    "schema": "event/1",
                    "id": "ev-cert",
                    "seq": 2,
                    "kind": "certificate.expiring",
                    "severity": "warning",
                    "time": "2026-11-23T09:00:00+00:00",
                    "detail": {
                        "serial": "ab",
                        "not_after": "2026-12-01T00:00:00+00:00",
                        "days_left": 7,
                    },
                },
            )
        ]
    )
    assert store.kiosk(KIOSK)["cert_not_after"] == pytest.approx(1796083200.0)
