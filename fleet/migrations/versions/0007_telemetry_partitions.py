"""telemetry in day partitions on PostgreSQL (fleet/store/partitions.py); SQLite unchanged

The table is rebuilt: the old one renamed, a partitioned one made in its place (same columns,
its key (row, at): a partitioned table's keys must include the partition column), a partition
made for each recent day the old rows have (older or future-dated rows land in the DEFAULT
partition), the rows copied, the old table dropped. The row numbers' sequence is kept. This
holds an exclusive lock on telemetry for the copy: run it with ingest stopped or let ingest wait.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 08:00:00.000000
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

import fleet.store.partitions as partitions

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    "kiosk_id VARCHAR(64) NOT NULL, at DOUBLE PRECISION NOT NULL, cpu_temp_c DOUBLE PRECISION, "
    "disk_used_pct DOUBLE PRECISION, outbox_depth INTEGER, load1 DOUBLE PRECISION, "
    "memory_used_pct DOUBLE PRECISION"
)
# Days of old rows given their own partition: at most the longest sensible keep time back.
RECENT_DAYS = 60


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    ex = conn.exec_driver_sql
    ex("LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE")
    ex("ALTER TABLE telemetry RENAME TO telemetry_flat")
    ex("ALTER TABLE telemetry_flat RENAME CONSTRAINT telemetry_pkey TO telemetry_flat_pkey")
    ex("ALTER INDEX telemetry_kiosk_at RENAME TO telemetry_flat_kiosk_at")
    ex("ALTER SEQUENCE telemetry_row_seq OWNED BY NONE")
    ex(
        "CREATE TABLE telemetry (row BIGINT NOT NULL DEFAULT nextval('telemetry_row_seq'), "
        f"{COLUMNS}, CONSTRAINT telemetry_pkey PRIMARY KEY (row, at)) PARTITION BY RANGE (at)"
    )
    ex("ALTER SEQUENCE telemetry_row_seq OWNED BY telemetry.row")
    ex("CREATE INDEX telemetry_kiosk_at ON telemetry (kiosk_id, at)")
    partitions.create_schema(conn)
    now = time.time()
    today = partitions.day_of(now)
    days = conn.execute(
        sa.text(
            "SELECT DISTINCT floor(at / :day)::int FROM telemetry_flat "
            "WHERE at >= :start AND at < :end"
        ),
        {
            "day": partitions.DAY_S,
            "start": (today - RECENT_DAYS) * partitions.DAY_S,
            "end": (today + partitions.AHEAD_DAYS + 1) * partitions.DAY_S,
        },
    ).scalars()
    partitions.ensure(conn, [*days, *range(today, today + partitions.AHEAD_DAYS + 1)])
    ex("INSERT INTO telemetry SELECT * FROM telemetry_flat")
    ex("DROP TABLE telemetry_flat")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    ex = conn.exec_driver_sql
    ex("LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE")
    ex(
        "CREATE TABLE telemetry_flat (row BIGINT NOT NULL DEFAULT nextval('telemetry_row_seq'), "
        f"{COLUMNS}, CONSTRAINT telemetry_flat_pkey PRIMARY KEY (row))"
    )
    ex("INSERT INTO telemetry_flat SELECT * FROM telemetry")
    ex("ALTER SEQUENCE telemetry_row_seq OWNED BY NONE")
    ex("DROP TABLE telemetry")  # and its partitions
    ex(f"DROP SCHEMA {partitions.SCHEMA}")
    ex("ALTER TABLE telemetry_flat RENAME TO telemetry")
    ex("ALTER TABLE telemetry RENAME CONSTRAINT telemetry_flat_pkey TO telemetry_pkey")
    ex("ALTER SEQUENCE telemetry_row_seq OWNED BY telemetry.row")
    ex("CREATE INDEX telemetry_kiosk_at ON telemetry (kiosk_id, at)")
