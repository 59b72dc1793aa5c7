"""The console's schema migrations (fleet/migrations/) on an empty SQLite and a real PostgreSQL:
head is the models, down and up again works, a database made by create_all is adopted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fleet import migrations
from fleet.store import FleetStore, kiosks, metadata, queue_stats
from protocol.crypto import DataKey
from protocol.errors import StoreError
from tests.fleet_console_helpers import Postgres, database_url, running_postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database."""
    engine = sa.create_engine(database_url(request, tmp_path))
    yield engine
    engine.dispose()


def differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_head_is_the_models(engine: sa.Engine) -> None:
    # This is also the check that every change to the models has a revision: a column, table
    # or index changed in fleet/store/schema.py without a new file in fleet/migrations/versions/
    # shows up here as a difference (docs/fleet-console.md, "Schema migrations").
    assert migrations.upgrade(engine) == migrations.head()
    assert differences(engine) == []
    assert tables(engine) == {*metadata.tables, "alembic_version"}
    assert migrations.upgrade(engine) == migrations.head()  # a second run changes nothing


def test_down_to_base_and_up_again(engine: sa.Engine) -> None:
    migrations.upgrade(engine)
    assert migrations.downgrade(engine, "base") is None
    assert tables(engine) == {"alembic_version"}
    assert migrations.upgrade(engine) == migrations.head()
    assert differences(engine) == []


# The tables of revision 0001, the last one a database made by create_all could have.
BASELINE = {
    "kiosks",
    "telemetry",
    "events",
    "records",
    "alerts",
    "commands",
    "operators",
    "login_throttle",
    "dossiers",
    "claims",
    "certificates",
    "queue_stats",
    "revocations",
}
# Columns later revisions added to those tables (0004: queue_stats.priority_serving), which a
# database made by create_all before migrations never had.
ADDED_SINCE_BASELINE = {"queue_stats": ["priority_serving"]}
# Indexes later revisions put on baseline tables (0006: the dashboard's).
INDEXES_SINCE_BASELINE = ["kiosks_site", "kiosks_state", "kiosks_version"]


def test_a_database_made_by_create_all_is_stamped_at_the_baseline(
    engine: sa.Engine, tmp_path: Path
) -> None:
    # What the console did before migrations: create_all of the baseline's tables (revision
    # 0002 added the certification tables, which such a database never had).
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables if t.name in BASELINE])
    with engine.begin() as conn:
        for table, columns in ADDED_SINCE_BASELINE.items():
            for column in columns:
                conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        for index in INDEXES_SINCE_BASELINE:
            conn.execute(sa.text(f"DROP INDEX {index}"))
        conn.execute(kiosks.insert().values(kiosk_id="HN-TAYHO-01", state_since=1.0, last_seen=2.0))
    store = FleetStore(
        engine.url.render_as_string(hide_password=False),
        data_key=DataKey.load_or_create(tmp_path / "data.key"),
    )
    try:
        store.create()
    finally:
        store.close()
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        assert conn.execute(sa.select(kiosks.c.kiosk_id)).scalars().all() == ["HN-TAYHO-01"]
    assert differences(engine) == []


def test_queue_figures_stored_before_0004_keep_their_row_without_a_priority_number(
    engine: sa.Engine,
) -> None:
    assert migrations.upgrade(engine, "0003") == "0003"
    row = {
        "site": "HN-TAYHO",
        "area": "B",
        "day": "2026-12-06",
        "serving": 21,
        "avg_service_s": 240.0,
        "counters_open": 2,
        "updated_by": "an",
        "updated_at": 1.0,
    }
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO queue_stats ({', '.join(row)}) "
                f"VALUES ({', '.join(':' + k for k in row)})"
            ),
            row,
        )
    assert migrations.upgrade(engine) == migrations.head()
    with engine.connect() as conn:
        (kept,) = [dict(r._mapping) for r in conn.execute(sa.select(queue_stats))]
    assert kept == {**row, "priority_serving": None}  # NULL: "serving" covers the series
    assert migrations.downgrade(engine, "0003") == "0003"
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("queue_stats")}
        assert "priority_serving" not in columns
        assert conn.execute(sa.text("SELECT serving FROM queue_stats")).scalar_one() == 21


def test_a_database_with_only_some_of_the_tables_is_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    metadata.create_all(engine, tables=[kiosks])
    with pytest.raises(StoreError, match="table telemetry missing"):
        migrations.upgrade(engine)
    assert tables(engine) == {"kiosks"}  # nothing stamped, nothing made
    engine.dispose()


def test_init_db_migrates_and_says_to_which_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleet.cli import main as fleet_cli

    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n'
        f'data_key_file = "{tmp_path / "fleet-data.key"}"\n'
        f'[provisioning]\nsecrets_key_file = "{tmp_path / "claims.key"}"\n'
    )
    for _ in range(2):  # a second run finds the database at head
        assert fleet_cli(["-c", str(config), "init-db"]) == 0
        out = capsys.readouterr().out
        assert f"schema revision {migrations.head()}" in out
