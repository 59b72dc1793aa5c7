"""Ingest: a batch of broker messages stored in one transaction, each in its own savepoint."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleet.store.base import StoreBase
from fleet.store.schema import commands, queue_tickets, telemetry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from the broker, parsed; `mid` is kept to acknowledge it after commit."""

    topic: str
    kiosk_id: str
    kind: str  # state | telemetry | event | record | result
    payload: dict[str, Any]
    received_at: float
    record_kind: str = ""


@dataclass(slots=True)
class BatchOutcome:
    new_records: int = 0
    duplicate_records: int = 0
    new_events: int = 0
    duplicate_events: int = 0
    telemetry: int = 0
    states: int = 0
    results: int = 0
    command_results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rejected: int = 0
    # kiosk id -> record ids stored (new or before)
    acked: dict[str, list[str]] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)  # kiosks whose state changed


def parse_time(value: Any, default: float) -> float:
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return default
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return default


def _dict(value: Any) -> dict[str, Any]:
    """A payload member that should be an object: itself, or {} when it is anything else."""
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# Event kinds that change what the dashboard shows between two telemetry samples.
_EVENT_EFFECTS: dict[str, dict[str, Any]] = {
    "printer.paper_out": {"paper": "out"},
    "printer.paper_near_end": {"paper": "near-end"},
    "printer.offline": {"printer_online": False},
    "printer.online": {"printer_online": True},
    "camera.lost": {"camera_ok": False},
    "camera.recovered": {"camera_ok": True},
    "tamper.opened": {"door": "open"},
    "tamper.closed": {"door": "closed"},
}


class Ingest(StoreBase):
    def apply(self, batch: Iterable[Incoming]) -> BatchOutcome:
        """Store a batch in one transaction (the caller acknowledges to the broker after)."""
        out = BatchOutcome(acked={}, touched=set())
        batch = list(batch)
        with self.begin() as conn:
            first_seen: dict[str, float] = {}
            for msg in batch:
                first_seen.setdefault(msg.kiosk_id, msg.received_at)
            if first_seen:
                conn.execute(
                    self._kiosk_new,
                    [self._new_kiosk_row(k, at) for k, at in first_seen.items()],
                )
            for msg in batch:
                try:
                    with conn.begin_nested():
                        self._apply_one(conn, msg, out)
                except (sa.exc.DataError, sa.exc.IntegrityError, ValueError, TypeError) as err:
                    out.rejected += 1
                    logger.warning(
                        "message not stored",
                        extra={"topic": msg.topic, "error": type(err).__name__},
                    )
        return out

    def _apply_one(self, conn: Connection, msg: Incoming, out: BatchOutcome) -> None:
        now = msg.received_at
        p = msg.payload
        seq = p.get("seq") if isinstance(p.get("seq"), int) else 0
        changes: dict[str, Any] = {"last_seen": now}
        if msg.kind == "state":
            out.states += 1
            changes.update(self._state_changes(conn, msg))
        elif msg.kind == "telemetry":
            out.telemetry += 1
            changes.update(self._telemetry(conn, msg))
        elif msg.kind == "event":
            if self._event(conn, msg):
                out.new_events += 1
                changes.update(_EVENT_EFFECTS.get(str(p.get("kind")), {}))
                detail = _dict(p.get("detail"))
                if p.get("kind") == "certificate.expiring" and isinstance(
                    detail.get("not_after"), str
                ):
                    changes["cert_not_after"] = parse_time(detail["not_after"], 0.0) or None
                if p.get("severity") in ("error", "critical"):
                    changes.update(
                        last_error=str(p.get("kind"))[:200],
                        last_error_at=parse_time(p.get("time"), now),
                    )
            else:
                out.duplicate_events += 1
        elif msg.kind == "record":
            if self._record(conn, msg):
                out.new_records += 1
                changes.update(self._provisioning_facts(conn, msg))
                self._queue_ticket(conn, msg)
            else:
                out.duplicate_records += 1
            out.acked.setdefault(msg.kiosk_id, []).append(str(p["id"]))
        elif msg.kind == "result":
            out.results += 1
            out.command_results.append((msg.kiosk_id, p))
            changes.update(self._result(conn, msg))
        conn.execute(self._kiosk_touch, {"_kid": msg.kiosk_id, "_seq": seq, **changes})
        out.touched.add(msg.kiosk_id)

    def _state_changes(self, conn: Connection, msg: Incoming) -> dict[str, Any]:
        p = msg.payload
        state = p.get("state")
        if state not in ("online", "offline"):
            raise ValueError("state must be online or offline")
        row = conn.execute(self._kiosk_row, {"_kid": msg.kiosk_id}).one()
        changes: dict[str, Any] = {"state": state}
        if row.state != state:
            changes["state_since"] = msg.received_at
        if state == "online":
            status = _dict(p.get("status"))
            changes.update(
                offline_reason=None,
                version=str(p.get("version", ""))[:64],
                protocol=str(p.get("protocol", ""))[:8],
                capabilities=[str(c) for c in p.get("capabilities", []) or []][:32],
                status=status,
            )
            if isinstance(status.get("locked"), bool):
                changes["locked"] = status["locked"]
            site = status.get("site")
            if isinstance(site, str) and site and not row.site_fixed:
                changes["site"] = site[:128]
        else:
            changes["offline_reason"] = str(p.get("reason", ""))[:32]
        return changes

    def _telemetry(self, conn: Connection, msg: Incoming) -> dict[str, Any]:
        p = msg.payload
        at = parse_time(p.get("time"), msg.received_at)
        system = _dict(p.get("system"))
        disk = _dict(system.get("disk"))
        memory = _dict(system.get("memory"))
        load = system.get("load")
        outbox = _dict(p.get("outbox"))
        depth = sum(int(v) for v in outbox.values() if isinstance(v, int))
        cpu = _number(system.get("cpu_temp_c"))
        disk_pct = _number(disk.get("used_pct"))
        if disk_pct is None and _number(disk.get("total_mb")) and _number(disk.get("free_mb")):
            disk_pct = round(100.0 * (1 - disk["free_mb"] / disk["total_mb"]), 1)
        row = {
            "kiosk_id": msg.kiosk_id,
            "at": at,
            "cpu_temp_c": cpu,
            "disk_used_pct": disk_pct,
            "outbox_depth": depth,
            "load1": _number(load[0]) if isinstance(load, list) and load else None,
            "memory_used_pct": _number(memory.get("used_pct")),
        }
        conn.execute(telemetry.insert(), row)
        changes: dict[str, Any] = {
            "telemetry": p,
            "telemetry_at": at,
            "cpu_temp_c": cpu,
            "disk_used_pct": disk_pct,
            "outbox_depth": depth,
        }
        printer = _dict(p.get("printer"))
        if isinstance(printer.get("paper"), str):
            changes["paper"] = printer["paper"][:16]
        if isinstance(printer.get("online"), bool):
            changes["printer_online"] = printer["online"]
        camera = _dict(p.get("camera"))
        if isinstance(camera.get("ok"), bool):
            changes["camera_ok"] = camera["ok"]
        if isinstance(p.get("door"), str):
            changes["door"] = p["door"][:16]
        if isinstance(p.get("locked"), bool):
            changes["locked"] = p["locked"]
        versions = _dict(p.get("versions"))
        if isinstance(versions.get("software"), str):
            changes["version"] = versions["software"][:64]
        certificate = _dict(p.get("certificate"))
        if isinstance(certificate.get("not_after"), str):
            changes["cert_not_after"] = parse_time(certificate["not_after"], 0.0) or None
        changes.update(self._site_change(conn, msg.kiosk_id, p.get("site")))
        return changes

    def _provisioning_facts(self, conn: Connection, msg: Incoming) -> dict[str, Any]:
        """records/provisioning (docs/provisioning.md, step 6): the kiosk's site and its
        certificate's expiry, also for kiosks enrolled offline."""
        data = msg.payload.get("data")
        if msg.payload.get("kind", msg.record_kind) != "provisioning" or not isinstance(data, dict):
            return {}
        changes: dict[str, Any] = {}
        if isinstance(data.get("certificate_not_after"), str):
            changes["cert_not_after"] = parse_time(data["certificate_not_after"], 0.0) or None
        changes.update(self._site_change(conn, msg.kiosk_id, data.get("site")))
        return changes

    def _queue_ticket(self, conn: Connection, msg: Incoming) -> None:
        """records/ticket (ticket-record/1): one queue_tickets row, for the queue figures."""
        data = msg.payload.get("data")
        if msg.payload.get("kind", msg.record_kind) != "ticket" or not isinstance(data, dict):
            return
        area, day, seq = data.get("area"), data.get("day"), data.get("seq")
        if not (
            isinstance(area, str)
            and len(area) == 1
            and "A" <= area <= "Z"
            and isinstance(day, str)
            and len(day) == 10
            and isinstance(seq, int)
            and not isinstance(seq, bool)
            and seq >= 1
        ):
            logger.warning(
                "ticket record without area, day or seq", extra={"id": msg.payload["id"]}
            )
            return
        row = {
            "kiosk_id": msg.kiosk_id,
            "day": day,
            "area": area,
            "series": "UT" if data.get("priority") is True else "",
            "seq": seq,
            "issued_at": parse_time(data.get("issued_at"), msg.received_at),
        }
        conn.execute(
            self._insert(queue_tickets)
            .values(row)
            .on_conflict_do_nothing(index_elements=["kiosk_id", "day", "area", "series", "seq"])
        )

    def _site_change(self, conn: Connection, kiosk_id: str, site: Any) -> dict[str, Any]:
        """The site a kiosk reports, unless an operator has fixed it at central."""
        if not isinstance(site, str) or not site:
            return {}
        if conn.execute(self._kiosk_row, {"_kid": kiosk_id}).one().site_fixed:
            return {}
        return {"site": site[:128]}

    def _event(self, conn: Connection, msg: Incoming) -> bool:
        p = msg.payload
        row: dict[str, Any] = dict(
            id=str(p["id"]),
            kiosk_id=msg.kiosk_id,
            seq=p.get("seq") if isinstance(p.get("seq"), int) else None,
            kind=str(p.get("kind", "unspecified"))[:64],
            severity=str(p.get("severity", "info"))[:16],
            at=parse_time(p.get("time"), msg.received_at),
            received_at=msg.received_at,
            detail=_dict(p.get("detail")),
        )
        return conn.execute(self._event_new, row).first() is not None

    def _record(self, conn: Connection, msg: Incoming) -> bool:
        p = msg.payload
        row = dict(
            id=str(p["id"]),
            kiosk_id=msg.kiosk_id,
            seq=p.get("seq") if isinstance(p.get("seq"), int) else None,
            kind=str(p.get("kind") or msg.record_kind)[:64],
            at=parse_time(p.get("time"), msg.received_at),
            received_at=msg.received_at,
            deliveries=1,
            sealed=self._seal(str(p["id"]), _dict(p.get("data"))),
        )
        if conn.execute(self._record_new, row).first() is not None:
            return True
        conn.execute(self._record_again, {"_id": row["id"]})
        return False

    def _result(self, conn: Connection, msg: Incoming) -> dict[str, Any]:
        p = msg.payload
        command_id = p.get("id")
        if not isinstance(command_id, str):
            return {}
        status = p.get("status") if p.get("status") in ("ok", "refused", "error") else "error"
        result = _dict(p.get("result"))
        conn.execute(
            commands.update()
            .where(commands.c.id == command_id, commands.c.kiosk_id == msg.kiosk_id)
            .values(
                status=status,
                reason=p.get("reason") if isinstance(p.get("reason"), str) else None,
                message=str(p.get("message", ""))[:2000],
                result=result,
                result_at=msg.received_at,
            )
        )
        changes: dict[str, Any] = {}
        if p.get("name") in ("lock", "unlock") and isinstance(result.get("locked"), bool):
            changes["locked"] = result["locked"]
        if p.get("name") == "rotate-certificate" and isinstance(result.get("not_after"), str):
            changes["cert_not_after"] = parse_time(result["not_after"], 0.0) or None
        return changes
