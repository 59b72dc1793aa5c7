"""The console's store: SQLAlchemy Core, the same SQL on SQLite (default) and PostgreSQL.

Times are POSIX seconds (float) everywhere; JSON columns hold what the kiosks sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from fleet import migrations
from protocol.crypto import DataKey

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

kiosks = sa.Table(
    "kiosks",
    metadata,
    sa.Column("kiosk_id", sa.String(64), primary_key=True),
    sa.Column("site", sa.String(128), nullable=False, default=""),
    sa.Column("site_fixed", sa.Boolean, nullable=False, default=False),  # set by an operator
    sa.Column("state", sa.String(16), nullable=False, default="unknown"),
    sa.Column("state_since", sa.Float, nullable=False),
    sa.Column("offline_reason", sa.String(32)),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("version", sa.String(64), nullable=False, default=""),
    sa.Column("protocol", sa.String(8), nullable=False, default=""),
    sa.Column("capabilities", sa.JSON, nullable=False, default=list),
    sa.Column("status", sa.JSON, nullable=False, default=dict),
    sa.Column("telemetry", sa.JSON),  # the last sample, as sent
    sa.Column("telemetry_at", sa.Float),
    sa.Column("cpu_temp_c", sa.Float),
    sa.Column("disk_used_pct", sa.Float),
    sa.Column("outbox_depth", sa.Integer),
    sa.Column("paper", sa.String(16)),  # ok | near-end | out | unknown
    sa.Column("printer_online", sa.Boolean),
    sa.Column("camera_ok", sa.Boolean),
    sa.Column("door", sa.String(16)),  # open | closed
    sa.Column("locked", sa.Boolean),
    sa.Column("last_error", sa.String(200)),
    sa.Column("last_error_at", sa.Float),
    sa.Column("cert_not_after", sa.Float),
    sa.Column("max_seq", sa.BigInteger, nullable=False, default=0),
    # Sequence numbers skipped (first arrivals come in seq order: docs/fleet.md), e.g.
    # telemetry shed on a full disk or a row refused by the broker.
    sa.Column("seq_gaps", sa.BigInteger, nullable=False, default=0),
    sa.Column("messages", sa.BigInteger, nullable=False, default=0),
)

telemetry = sa.Table(
    "telemetry",
    metadata,
    sa.Column("row", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("cpu_temp_c", sa.Float),
    sa.Column("disk_used_pct", sa.Float),
    sa.Column("outbox_depth", sa.Integer),
    sa.Column("load1", sa.Float),
    sa.Column("memory_used_pct", sa.Float),
    sa.Index("telemetry_kiosk_at", "kiosk_id", "at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),  # the kiosk's message id
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),  # kiosk wall clock
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False, default=dict),
    sa.Index("events_kiosk_at", "kiosk_id", "at"),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),  # the kiosk's message id
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False, default=1),
    # The record's data (a copy's citizen and PDF, a delivery address ...): personal data,
    # sealed with the console's data key (AES-GCM, the record id as associated data).
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Index("records_kiosk_seq", "kiosk_id", "seq"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("args", sa.JSON, nullable=False, default=dict),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="sent"),  # sent|ok|refused|error
    sa.Column("reason", sa.String(32)),
    sa.Column("message", sa.Text),
    sa.Column("result", sa.JSON),
    sa.Column("result_at", sa.Float),
    sa.Index("commands_sent", "sent_at"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("row", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raised_at", sa.Float, nullable=False),
    sa.Column("cleared_at", sa.Float),
    sa.Index("alerts_open", "kiosk_id", "rule", "cleared_at"),
)

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("private_key", sa.Text, nullable=False),  # PEM, encrypted with the password
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

# Login throttling (fleet.operators.KeyRing): attempts counted per (operator, address) and
# per address, in a window that starts with the first attempt. Keys are sha256 hex digests,
# so the table holds no operator ids or addresses.
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("since", sa.Float, nullable=False),
    sa.Index("login_throttle_since", "since"),
)

dossiers = sa.Table(
    "dossiers",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

claims = sa.Table(
    "claims",
    metadata,
    sa.Column("claim_id", sa.String(16), primary_key=True),  # c + 12 base32 (docs/provisioning.md)
    sa.Column("secret", sa.Text, nullable=False),  # sealed (AES-GCM): the HMAC key of the proofs
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("site", sa.String(128), nullable=False, default=""),
    sa.Column("serial", sa.String(64), nullable=False, default=""),  # device allowlist, "" = any
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float),
    sa.Column("used_by", sa.String(64)),  # sha256 of the CSR's public key (DER) it was used for
    sa.Column("certificate", sa.Text),  # PEM, sent again to a repeat with the same key
    sa.Column("cert_serial", sa.String(64)),
    sa.Column("account_removed", sa.Boolean, nullable=False, default=False),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("serial", sa.String(64), primary_key=True),  # hex
    sa.Column("kiosk_id", sa.String(64), nullable=False),
    sa.Column("not_after", sa.Float, nullable=False),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)

queue_stats = sa.Table(
    "queue_stats",
    metadata,
    sa.Column("site", sa.String(128), primary_key=True),
    sa.Column("area", sa.String(1), primary_key=True),
    sa.Column("day", sa.String(10), nullable=False),  # Asia/Ho_Chi_Minh date
    sa.Column("serving", sa.Integer, nullable=False),
    sa.Column("avg_service_s", sa.Float),
    sa.Column("counters_open", sa.Integer),
    sa.Column("updated_by", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

revocations = sa.Table(
    "revocations",
    metadata,
    # An e-copy code, or (kind "certificate") a signing certificate's serial in hex.
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False, default="code"),
    sa.Column("reason", sa.String(200), nullable=False, default=""),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=False),
    # certificate: copies it signed from this time on are revoked (null: all of them)
    sa.Column("effective_from", sa.Float),
)


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
    acked: dict[str, list[str]] | None = None  # kiosk id -> record ids stored (new or before)
    touched: set[str] | None = None  # kiosks whose state changed


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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def default_site(kiosk_id: str) -> str:
    """Until an operator or the kiosk says otherwise: the id without its last part."""
    head, _, _ = kiosk_id.rpartition("-")
    return head or kiosk_id


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


class FleetStore:
    """One engine; every method is a short transaction; safe from several threads."""

    def __init__(self, url: str, *, data_key: DataKey | Path, echo: bool = False) -> None:
        """data_key: the key sealing records' data, or its file (read or made by create())."""
        self.url = url
        self._data_key = data_key
        self.engine: Engine = _engine(url, echo=echo)
        self.dialect = self.engine.dialect.name
        self._lock = threading.Lock() if self.dialect == "sqlite" else None
        # Ingest statements built once, values bound at execution: SQLAlchemy caches their
        # compiled form (building a statement per message cost more than running it).
        seq = sa.bindparam("_seq", type_=sa.BigInteger)
        self._kiosk_new = self._insert(kiosks).on_conflict_do_nothing(index_elements=["kiosk_id"])
        self._kiosk_touch = (
            kiosks.update()
            .where(kiosks.c.kiosk_id == sa.bindparam("_kid"))
            .values(
                messages=kiosks.c.messages + 1,
                max_seq=sa.case((kiosks.c.max_seq < seq, seq), else_=kiosks.c.max_seq),
                seq_gaps=kiosks.c.seq_gaps
                + sa.case(
                    (
                        sa.and_(kiosks.c.max_seq > 0, seq > kiosks.c.max_seq + 1),
                        seq - kiosks.c.max_seq - 1,
                    ),
                    else_=0,
                ),
            )
        )
        self._kiosk_row = sa.select(kiosks.c.state, kiosks.c.site_fixed).where(
            kiosks.c.kiosk_id == sa.bindparam("_kid")
        )
        self._event_new = (
            self._insert(events)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(events.c.id)
        )
        self._record_new = (
            self._insert(records)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(records.c.id)
        )
        self._record_again = (
            records.update()
            .where(records.c.id == sa.bindparam("_id"))
            .values(deliveries=records.c.deliveries + 1)
        )

    def create(self) -> FleetStore:
        """Open for use: the data key loaded (made on first use), the schema migrated to the
        newest revision (fleet/migrations/)."""
        if isinstance(self._data_key, Path):
            self._data_key = DataKey.load_or_create(self._data_key)
        migrations.upgrade(self.engine)
        return self

    def revision(self) -> str | None:
        """The schema's migration revision (fleet/migrations/versions/)."""
        with self.engine.connect() as conn:
            return migrations.current(conn)

    @property
    def data_key(self) -> DataKey:
        if not isinstance(self._data_key, DataKey):
            raise RuntimeError("FleetStore.create() was not called")
        return self._data_key

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        # SQLite has one writer; serialising here avoids "database is locked" retries.
        if self._lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._lock, self.engine.begin() as conn:
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql if self.dialect == "postgresql" else sqlite).insert(table)

    # --- ingest ---------------------------------------------------------------------------

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
                detail = p.get("detail") if isinstance(p.get("detail"), dict) else {}
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
            else:
                out.duplicate_records += 1
            out.acked.setdefault(msg.kiosk_id, []).append(str(p["id"]))
        elif msg.kind == "result":
            out.results += 1
            out.command_results.append((msg.kiosk_id, p))
            changes.update(self._result(conn, msg))
        conn.execute(self._kiosk_touch, {"_kid": msg.kiosk_id, "_seq": seq, **changes})
        out.touched.add(msg.kiosk_id)

    @staticmethod
    def _new_kiosk_row(kiosk_id: str, now: float) -> dict[str, Any]:
        return dict(
            kiosk_id=kiosk_id,
            site=default_site(kiosk_id),
            site_fixed=False,
            state="unknown",
            state_since=now,
            last_seen=now,
            version="",
            protocol="",
            capabilities=[],
            status={},
            max_seq=0,
            seq_gaps=0,
            messages=0,
        )

    def _ensure_kiosk(self, conn: Connection, kiosk_id: str, now: float) -> None:
        conn.execute(self._kiosk_new, self._new_kiosk_row(kiosk_id, now))

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
            status = p.get("status") if isinstance(p.get("status"), dict) else {}
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
        system = p.get("system") if isinstance(p.get("system"), dict) else {}
        disk = system.get("disk") if isinstance(system.get("disk"), dict) else {}
        memory = system.get("memory") if isinstance(system.get("memory"), dict) else {}
        load = system.get("load")
        outbox = p.get("outbox") if isinstance(p.get("outbox"), dict) else {}
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
        printer = p.get("printer") if isinstance(p.get("printer"), dict) else {}
        if isinstance(printer.get("paper"), str):
            changes["paper"] = printer["paper"][:16]
        if isinstance(printer.get("online"), bool):
            changes["printer_online"] = printer["online"]
        camera = p.get("camera") if isinstance(p.get("camera"), dict) else {}
        if isinstance(camera.get("ok"), bool):
            changes["camera_ok"] = camera["ok"]
        if isinstance(p.get("door"), str):
            changes["door"] = p["door"][:16]
        if isinstance(p.get("locked"), bool):
            changes["locked"] = p["locked"]
        versions = p.get("versions") if isinstance(p.get("versions"), dict) else {}
        if isinstance(versions.get("software"), str):
            changes["version"] = versions["software"][:64]
        certificate = p.get("certificate") if isinstance(p.get("certificate"), dict) else {}
        if isinstance(certificate.get("not_after"), str):
            changes["cert_not_after"] = parse_time(certificate["not_after"], 0.0) or None
        site = p.get("site")
        if (
            isinstance(site, str)
            and site
            and not conn.execute(self._kiosk_row, {"_kid": msg.kiosk_id}).one().site_fixed
        ):
            changes["site"] = site[:128]
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
        site = data.get("site")
        if (
            isinstance(site, str)
            and site
            and not conn.execute(self._kiosk_row, {"_kid": msg.kiosk_id}).one().site_fixed
        ):
            changes["site"] = site[:128]
        return changes

    def _event(self, conn: Connection, msg: Incoming) -> bool:
        p = msg.payload
        row = dict(
            id=str(p["id"]),
            kiosk_id=msg.kiosk_id,
            seq=p.get("seq") if isinstance(p.get("seq"), int) else None,
            kind=str(p.get("kind", "unspecified"))[:64],
            severity=str(p.get("severity", "info"))[:16],
            at=parse_time(p.get("time"), msg.received_at),
            received_at=msg.received_at,
            detail=p.get("detail") if isinstance(p.get("detail"), dict) else {},
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
            sealed=self._seal(
                str(p["id"]), p.get("data") if isinstance(p.get("data"), dict) else {}
            ),
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
        result = p.get("result") if isinstance(p.get("result"), dict) else {}
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

    # --- reading for the dashboard --------------------------------------------------------

    def kiosks(self, *, site: str | None = None, full: bool = False) -> list[dict[str, Any]]:
        """Every kiosk (of a site); without `full`, the last telemetry sample is left out."""
        columns = list(kiosks.c) if full else [c for c in kiosks.c if c.name != "telemetry"]
        query = sa.select(*columns).order_by(kiosks.c.site, kiosks.c.kiosk_id)
        if site:
            query = query.where(kiosks.c.site == site)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def kiosk(self, kiosk_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(kiosks).where(kiosks.c.kiosk_id == kiosk_id)).first()
        return dict(row._mapping) if row else None

    def state_counts(self) -> dict[str, int]:
        query = sa.select(kiosks.c.state, sa.func.count().label("n")).group_by(kiosks.c.state)
        with self.engine.connect() as conn:
            return {r.state: r.n for r in conn.execute(query)}

    def sites(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(kiosks.c.site).distinct().order_by(kiosks.c.site))
            return [r.site for r in rows]

    def set_site(self, kiosk_id: str, site: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.begin() as conn:
            self._ensure_kiosk(conn, kiosk_id, now)
            conn.execute(
                kiosks.update()
                .where(kiosks.c.kiosk_id == kiosk_id)
                .values(site=site[:128], site_fixed=True)
            )

    def telemetry_series(self, kiosk_id: str, since: float) -> list[dict[str, Any]]:
        query = (
            sa.select(telemetry)
            .where(telemetry.c.kiosk_id == kiosk_id, telemetry.c.at >= since)
            .order_by(telemetry.c.at)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def events(
        self, *, kiosk_id: str | None = None, kind: str | None = None, since: float = 0, limit=100
    ) -> list[dict[str, Any]]:
        query = sa.select(events).where(events.c.at >= since)
        if kiosk_id:
            query = query.where(events.c.kiosk_id == kiosk_id)
        if kind:
            query = query.where(events.c.kind == kind)
        query = query.order_by(events.c.at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def count_events(self, kiosk_id: str, kind: str, since: float) -> int:
        query = sa.select(sa.func.count()).where(
            events.c.kiosk_id == kiosk_id, events.c.kind == kind, events.c.at >= since
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def event_counts(self, kind: str, since: float) -> dict[str, int]:
        """Events of one kind since a time, per kiosk."""
        query = (
            sa.select(events.c.kiosk_id, sa.func.count().label("n"))
            .where(events.c.kind == kind, events.c.at >= since)
            .group_by(events.c.kiosk_id)
        )
        with self.engine.connect() as conn:
            return {r.kiosk_id: r.n for r in conn.execute(query)}

    def records(
        self, *, kiosk_id: str | None = None, limit: int = 100, with_data: bool = False
    ) -> list[dict[str, Any]]:
        """Newest first; `with_data` unseals each record's data (personal data: only for
        whoever needs it, never for a listing)."""
        query = sa.select(records)
        if kiosk_id:
            query = query.where(records.c.kiosk_id == kiosk_id)
        query = query.order_by(records.c.received_at.desc(), records.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            sealed = row.pop("sealed")
            if with_data:
                row["data"] = self._unseal(row["id"], sealed)
        return rows

    def _seal(self, record_id: str, data: dict[str, Any]) -> str:
        blob = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return base64.b64encode(self.data_key.encrypt(blob, aad=record_id.encode())).decode()

    def _unseal(self, record_id: str, sealed: str) -> dict[str, Any]:
        blob = self.data_key.decrypt(base64.b64decode(sealed), aad=record_id.encode())
        return json.loads(blob)

    def count_records(self) -> int:
        return self.count(records)

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

    # --- commands -------------------------------------------------------------------------

    def log_command(self, envelope: dict[str, Any], *, kiosk_id: str, now: float) -> None:
        with self.begin() as conn:
            conn.execute(
                commands.insert().values(
                    id=envelope["id"],
                    kiosk_id=kiosk_id,
                    name=envelope["name"],
                    args=envelope["args"],
                    operator=envelope["operator"],
                    sent_at=now,
                    expires_at=parse_time(envelope["expires_at"], now),
                    status="sent",
                )
            )

    def command(self, command_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(commands).where(commands.c.id == command_id)).first()
        return dict(row._mapping) if row else None

    def commands(self, *, kiosk_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(commands)
        if kiosk_id:
            query = query.where(commands.c.kiosk_id == kiosk_id)
        query = query.order_by(commands.c.sent_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # --- alerts ---------------------------------------------------------------------------

    def open_alerts(self, *, kiosk_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(alerts).where(alerts.c.cleared_at.is_(None))
        if kiosk_id:
            query = query.where(alerts.c.kiosk_id == kiosk_id)
        query = query.order_by(alerts.c.raised_at.desc())
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def alert_history(self, *, limit: int = 200) -> list[dict[str, Any]]:
        query = sa.select(alerts).order_by(alerts.c.raised_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def sync_alerts(
        self, wanted: dict[tuple[str, str], tuple[str, str]], *, now: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Make the open alerts equal `wanted` ((kiosk, rule) -> (severity, message)).

        Returns (raised, cleared) rows, for the webhook.
        """
        raised: list[dict[str, Any]] = []
        cleared: list[dict[str, Any]] = []
        with self.begin() as conn:
            open_rows = {
                (r.kiosk_id, r.rule): dict(r._mapping)
                for r in conn.execute(sa.select(alerts).where(alerts.c.cleared_at.is_(None)))
            }
            for key, row in open_rows.items():
                if key not in wanted:
                    conn.execute(
                        alerts.update().where(alerts.c.row == row["row"]).values(cleared_at=now)
                    )
                    cleared.append({**row, "cleared_at": now})
            for (kiosk_id, rule), (severity, message) in wanted.items():
                if (kiosk_id, rule) in open_rows:
                    continue
                values = {
                    "kiosk_id": kiosk_id,
                    "rule": rule,
                    "severity": severity,
                    "message": message,
                    "raised_at": now,
                }
                conn.execute(alerts.insert().values(values))
                raised.append(values)
        return raised, cleared

    # --- operators ------------------------------------------------------------------------

    def add_operator(self, row: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(operators.insert().values(row))

    def update_operator(self, operator_id: str, **values: Any) -> None:
        with self.begin() as conn:
            conn.execute(operators.update().where(operators.c.id == operator_id).values(values))

    def operator(self, operator_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(operators).where(operators.c.id == operator_id)).first()
        return dict(row._mapping) if row else None

    def operators(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(operators).order_by(operators.c.id))
            return [dict(r._mapping) for r in rows]

    # --- login throttling -----------------------------------------------------------------

    def take_login_attempt(
        self, limits: list[tuple[str, int]], *, now: float, window_s: float
    ) -> bool:
        """Count one attempt against every (key, limit), all or none: False (nothing counted)
        when any key has had `limit` attempts in its window already.

        Check and count are one statement per key (INSERT .. ON CONFLICT DO UPDATE ..
        RETURNING): PostgreSQL holds the row lock to the commit and SQLite has one writer, so
        simultaneous logins, in one console process or several, cannot all pass the check
        before one is counted. Keys are locked in the caller's order (no deadlock).
        """
        t = login_throttle
        expired = t.c.since <= now - window_s
        stale = sa.select(t.c.key).where(expired).limit(100).with_for_update(skip_locked=True)
        try:
            with self.begin() as conn:
                conn.execute(t.delete().where(t.c.key.in_(stale.scalar_subquery())))
                for key, limit in limits:
                    stmt = self._insert(t).values(key=key, count=1, since=now)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["key"],
                        set_={
                            "count": sa.case((expired, 1), else_=t.c.count + 1),
                            "since": sa.case((expired, now), else_=t.c.since),
                        },
                    ).returning(t.c.count)
                    if conn.execute(stmt).scalar_one() > limit:
                        raise _Refused
        except _Refused:
            return False
        return True

    def login_succeeded(self, *, refund: str, clear: str) -> None:
        """A good password: its attempt does not count against `refund` (the address) and
        the failures of `clear` (this operator from this address) are forgotten."""
        t = login_throttle
        with self.begin() as conn:
            conn.execute(
                t.update().where(t.c.key == refund, t.c.count > 0).values(count=t.c.count - 1)
            )
            conn.execute(t.delete().where(t.c.key == clear))

    # --- dossiers -------------------------------------------------------------------------

    def put_dossier(self, code: str, data: dict[str, Any], *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        stmt = self._insert(dossiers).values(code=code, data=data, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["code"], set_={"data": data, "updated_at": now}
        )
        with self.begin() as conn:
            conn.execute(stmt)

    def dossier(self, code: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(dossiers).where(dossiers.c.code == code)).first()
        return dict(row._mapping) if row else None

    def dossiers(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(dossiers).order_by(dossiers.c.code))
            return [dict(r._mapping) for r in rows]

    # --- provisioning ---------------------------------------------------------------------

    def add_claim(self, row: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(claims.insert().values(row))

    def claim(self, claim_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(claims).where(claims.c.claim_id == claim_id)).first()
        return dict(row._mapping) if row else None

    def claims(self, *, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(claims).order_by(claims.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def bind_claim(self, claim_id: str, used_by: str, *, now: float) -> bool:
        """Mark the claim used by this key, unless another key took it first.

        One conditional UPDATE: two requests racing with different keys cannot both win, on
        SQLite or PostgreSQL. True also when the claim is already bound to this very key.
        """
        with self.begin() as conn:
            conn.execute(
                claims.update()
                .where(claims.c.claim_id == claim_id, claims.c.used_by.is_(None))
                .values(used_by=used_by, used_at=now)
            )
            row = conn.execute(
                sa.select(claims.c.used_by).where(claims.c.claim_id == claim_id)
            ).first()
            return row is not None and row.used_by == used_by

    def claim_certificate(self, claim_id: str, certificate: str, serial: str) -> None:
        with self.begin() as conn:
            conn.execute(
                claims.update()
                .where(claims.c.claim_id == claim_id)
                .values(certificate=certificate, cert_serial=serial)
            )

    def claims_to_close(self, *, now: float) -> list[str]:
        """Claims whose broker account should go (docs/provisioning.md, 6): the kiosk has
        been heard on the mutual-TLS listener since it was enrolled, or the claim expired."""
        heard = (
            sa.select(kiosks.c.kiosk_id)
            .where(
                kiosks.c.kiosk_id == claims.c.kiosk_id,
                kiosks.c.last_seen > claims.c.used_at,
                kiosks.c.messages > 0,
            )
            .exists()
        )
        query = sa.select(claims.c.claim_id).where(
            claims.c.account_removed.is_(False),
            sa.or_(sa.and_(claims.c.certificate.is_not(None), heard), claims.c.expires_at <= now),
        )
        with self.engine.connect() as conn:
            return [r.claim_id for r in conn.execute(query)]

    def claim_account_removed(self, claim_id: str) -> None:
        with self.begin() as conn:
            conn.execute(
                claims.update().where(claims.c.claim_id == claim_id).values(account_removed=True)
            )

    def certificate_issued(
        self, *, serial: str, kiosk_id: str, site: str, not_after: float, now: float
    ) -> None:
        with self.begin() as conn:
            conn.execute(
                certificates.insert().values(
                    serial=serial, kiosk_id=kiosk_id, not_after=not_after, issued_at=now
                )
            )
            self._ensure_kiosk(conn, kiosk_id, now)
            values: dict[str, Any] = {"cert_not_after": not_after}
            if site:
                values.update(site=site[:128], site_fixed=True)
            conn.execute(kiosks.update().where(kiosks.c.kiosk_id == kiosk_id).values(values))

    # --- queue figures (what the counters report) ----------------------------------------

    def put_queue_stats(self, row: dict[str, Any]) -> None:
        keys = ("day", "serving", "avg_service_s", "counters_open", "updated_by", "updated_at")
        stmt = self._insert(queue_stats).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site", "area"], set_={k: row[k] for k in keys}
        )
        with self.begin() as conn:
            conn.execute(stmt)

    def queue_stats(self, *, site: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(queue_stats).order_by(queue_stats.c.site, queue_stats.c.area)
        if site is not None:
            query = query.where(queue_stats.c.site == site)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # --- e-copy revocations ---------------------------------------------------------------

    def revoke_copy(
        self,
        code: str,
        *,
        reason: str,
        operator: str,
        now: float,
        kind: str = "code",
        effective_from: float | None = None,
    ) -> bool:
        stmt = self._insert(revocations).values(
            code=code,
            kind=kind,
            reason=reason[:200],
            operator=operator,
            revoked_at=now,
            effective_from=effective_from,
        )
        with self.begin() as conn:
            return _inserted(
                conn, stmt.on_conflict_do_nothing(index_elements=["code"]), revocations.c.code
            )

    def revocations(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(revocations).order_by(revocations.c.revoked_at))
            return [dict(r._mapping) for r in rows]

    # --- housekeeping ---------------------------------------------------------------------

    def prune(self, *, now: float, telemetry_keep_s: float, events_keep_s: float) -> int:
        with self.begin() as conn:
            n = conn.execute(telemetry.delete().where(telemetry.c.at < now - telemetry_keep_s))
            m = conn.execute(events.delete().where(events.c.at < now - events_keep_s))
            return n.rowcount + m.rowcount


class _Refused(Exception):
    """Rolls back take_login_attempt's transaction."""


def _inserted(conn: Connection, stmt: Any, key: sa.Column) -> bool:
    """Whether an INSERT .. ON CONFLICT DO NOTHING wrote its row (RETURNING: portable, where
    rowcount is not)."""
    return conn.execute(stmt.returning(key)).first() is not None


def _engine(url: str, *, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 30})

        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT: take it over
        # (the recipe in SQLAlchemy's SQLite dialect documentation).
        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=8, max_overflow=8)
