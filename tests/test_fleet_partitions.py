"""Telemetry in day partitions on a real PostgreSQL (fleet/store/partitions.py, revision 0007):
rows land in their day's partition, partitions are made ahead, dropping old days removes
exactly their rows, the migration converts a table with rows and back; SQLite is one table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet import migrations
from fleet.store import FleetStore, Incoming, partitions
from protocol.crypto import DataKey
from tests.fleet_console_helpers import Postgres, database_url, running_postgres

DAY = partitions.DAY_S
NOW = time.time()
TODAY = partitions.day_of(NOW)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


def open_store(url: str, tmp_path: Path) -> FleetStore:
    return FleetStore(url, data_key=DataKey.load_or_create(tmp_path / "data.key")).create()


def sample(kiosk: str, at: float) -> Incoming:
    return Incoming(
        topic=f"kiosk/v1/{kiosk}/telemetry",
        kiosk_id=kiosk,
        kind="telemetry",
        payload={
            "kiosk_id": kiosk,
            "id": str(uuid.uuid4()),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at)),
            "system": {"cpu_temp_c": 40.0 + at % 7},
        },
        received_at=NOW,
    )


def where(engine: sa.Engine) -> dict[float, str]:
    """Each telemetry row's time -> the partition (table) holding it."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT at, tableoid::regclass::text FROM telemetry"))
        return {at: table.rpartition(".")[2] for at, table in rows}


@pytest.fixture
def pg_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetStore]:
    store = open_store(database_url(request, tmp_path, "postgresql"), tmp_path)
    yield store
    store.close()


def test_start_makes_today_and_days_ahead(pg_store: FleetStore) -> None:
    days = [p.day for p in pg_store.telemetry_partitions()]
    assert days == list(range(TODAY, TODAY + partitions.AHEAD_DAYS + 1))
    with pg_store.engine.connect() as conn:
        assert partitions.is_partitioned(conn)
        # the partitions are not among the application's tables
        assert not [t for t in sa.inspect(conn).get_table_names() if t.startswith("telemetry_")]


def test_rows_land_in_their_days_partition(pg_store: FleetStore) -> None:
    times = [NOW, TODAY * DAY + 1.5, (TODAY + 1) * DAY + 60, (TODAY + 40) * DAY, 946684800.0]
    assert pg_store.apply([sample("HN-A-01", at) for at in times]).rejected == 0
    got = where(pg_store.engine)
    assert got[float(int(NOW))] == partitions.name_of(TODAY)  # ISO time has whole seconds
    assert got[TODAY * DAY + 1.0] == partitions.name_of(TODAY)
    assert got[(TODAY + 1) * DAY + 60.0] == partitions.name_of(TODAY + 1)
    # no partition for that day (yet) or any more: the DEFAULT partition holds them
    assert got[float((TODAY + 40) * DAY)] == partitions.DEFAULT
    assert got[946684800.0] == partitions.DEFAULT
    # and the readers see every row through the parent table
    series = pg_store.telemetry_series("HN-A-01", since=0)
    assert sorted(r["at"] for r in series) == sorted(got)


def test_housekeeping_makes_ahead_and_moves_waiting_rows_in(pg_store: FleetStore) -> None:
    later = (TODAY + 5) * DAY + 30.0
    pg_store.apply([sample("HN-A-01", later)])
    assert where(pg_store.engine)[later] == partitions.DEFAULT
    # two days on: the housekeeping makes the partitions up to five days ahead of today
    pg_store.prune(now=NOW + 2 * DAY, telemetry_keep_s=30 * DAY, events_keep_s=30 * DAY)
    days = [p.day for p in pg_store.telemetry_partitions()]
    assert days == list(range(TODAY, TODAY + 2 + partitions.AHEAD_DAYS + 1))
    assert where(pg_store.engine)[later] == partitions.name_of(TODAY + 5)


def test_dropping_old_days_removes_exactly_their_rows(pg_store: FleetStore) -> None:
    # five days of history, a sample every 6 hours, for two kiosks
    with pg_store.begin() as conn:
        partitions.ensure(conn, list(range(TODAY - 5, TODAY)))
    times = [(TODAY - 5) * DAY + h * 6 * 3600.0 for h in range(4 * 6)]
    pg_store.apply([sample(k, at) for k in ("HN-A-01", "HN-B-02") for at in times])
    pg_store.apply([sample("HN-A-01", 946684800.0)])  # far back: in DEFAULT
    keep = 2 * DAY
    cutoff = NOW - keep
    before = where(pg_store.engine)
    deleted = pg_store.prune(now=NOW, telemetry_keep_s=keep, events_keep_s=keep)
    after = where(pg_store.engine)
    # every partition wholly older than the cutoff is gone with its rows, nothing else is
    gone_days = {d for d in range(TODAY - 5, TODAY) if (d + 1) * DAY <= cutoff}
    assert gone_days == set(range(TODAY - 5, partitions.day_of(cutoff)))
    assert set(after) == {
        at for at in before if at >= cutoff or partitions.day_of(at) not in gone_days
    } - {946684800.0}
    assert pg_store.telemetry_partitions()[0].day == partitions.day_of(cutoff)
    assert deleted == 1  # the DEFAULT partition's old row, by DELETE
    # a partition straddling the cutoff is kept whole: at most a day more than asked
    assert min(after) < cutoff and min(after) >= cutoff - DAY
    with pg_store.engine.connect() as conn:
        grouped = sa.text("SELECT kiosk_id, count(*) FROM telemetry GROUP BY kiosk_id")
        counts = {kiosk: n for kiosk, n in conn.execute(grouped)}
    kept = sum(1 for at in times if partitions.day_of(at) not in gone_days)
    assert counts == {"HN-A-01": kept, "HN-B-02": kept}


def test_sqlite_keeps_one_table_pruned_by_delete(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}", tmp_path)
    try:
        store.apply([sample("HN-A-01", at) for at in (NOW - 3 * DAY, NOW - 1.5 * DAY, NOW)])
        assert store.telemetry_partitions() == []
        assert store.prune(now=NOW, telemetry_keep_s=DAY, events_keep_s=DAY) == 2
        assert [r["at"] for r in store.telemetry_series("HN-A-01", since=0)] == [float(int(NOW))]
    finally:
        store.close()


def test_migration_converts_a_table_with_rows_and_back(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    engine = sa.create_engine(database_url(request, tmp_path, "postgresql"))
    try:
        assert migrations.upgrade(engine, "0006") == "0006"
        times = [NOW - 3 * DAY, NOW - DAY, NOW, NOW + 90 * DAY]
        with engine.begin() as conn:
            for i, at in enumerate(times):
                conn.execute(
                    sa.text(
                        "INSERT INTO telemetry (kiosk_id, at, cpu_temp_c) VALUES (:k, :at, :c)"
                    ),
                    {"k": f"HN-A-{i:02d}", "at": at, "c": 40.0 + i},
                )
            flat = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM telemetry ORDER BY row"))]
        assert migrations.upgrade(engine) == migrations.head()
        got = where(engine)
        assert got[times[0]] == partitions.name_of(partitions.day_of(times[0]))
        assert got[times[1]] == partitions.name_of(partitions.day_of(times[1]))
        assert got[times[2]] == partitions.name_of(TODAY)
        assert got[times[3]] == partitions.DEFAULT
        with engine.begin() as conn:
            assert [
                tuple(r) for r in conn.execute(sa.text("SELECT * FROM telemetry ORDER BY row"))
            ] == flat
            # the row numbers go on from where they were
            conn.execute(
                sa.text("INSERT INTO telemetry (kiosk_id, at) VALUES ('HN-B-01', :at)"), {"at": NOW}
            )
            new_row = conn.execute(sa.text("SELECT max(row) FROM telemetry")).scalar_one()
        assert new_row == max(r[0] for r in flat) + 1
        assert migrations.downgrade(engine, "0006") == "0006"
        with engine.connect() as conn:
            assert not partitions.is_partitioned(conn)
            back = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM telemetry ORDER BY row"))]
            schemas = conn.execute(
                sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"),
                {"s": partitions.SCHEMA},
            ).scalar_one()
        assert back[:-1] == flat and back[-1][1] == "HN-B-01"
        assert schemas == 0
        assert migrations.upgrade(engine) == migrations.head()  # and up again
    finally:
        engine.dispose()
