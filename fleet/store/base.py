"""The store's engine, transactions and sealing, which every aggregate's repository shares."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from fleet import migrations
from fleet.store.partitions import ensure_ahead, is_partitioned
from fleet.store.schema import events, kiosks, records
from protocol.crypto import DataKey


def default_site(kiosk_id: str) -> str:
    """Until an operator or the kiosk says otherwise: the id without its last part."""
    head, _, _ = kiosk_id.rpartition("-")
    return head or kiosk_id


class StoreBase:
    """The engine and its transactions, shared by the repositories FleetStore is made of."""

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

    def create(self) -> Self:
        """Open for use: the data key loaded (made on first use), the schema migrated to the
        newest revision (fleet/migrations/)."""
        if isinstance(self._data_key, Path):
            self._data_key = DataKey.load_or_create(self._data_key)
        migrations.upgrade(self.engine)
        if self.dialect == "postgresql":  # telemetry's partitions for today and days ahead
            with self.begin() as conn:
                if is_partitioned(conn):
                    ensure_ahead(conn, time.time())
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

    def _seal(self, record_id: str, data: dict[str, Any]) -> str:
        blob = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return base64.b64encode(self.data_key.encrypt(blob, aad=record_id.encode())).decode()

    def _unseal(self, record_id: str, sealed: str) -> dict[str, Any]:
        blob = self.data_key.decrypt(base64.b64decode(sealed), aad=record_id.encode())
        return json.loads(blob)


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
