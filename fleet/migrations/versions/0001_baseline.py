"""Baseline: the console's tables as `metadata.create_all` made them before migrations.

A database made that way has no alembic_version table: fleet.migrations.upgrade() checks that its
tables are these and stamps it at this revision. Column defaults are the models' (Python side),
so none is in the database.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The surrogate keys: BIGSERIAL on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite.
ROW = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "kiosks",
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=128), nullable=False),
        sa.Column("site_fixed", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", sa.Float(), nullable=False),
        sa.Column("offline_reason", sa.String(length=32), nullable=True),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("telemetry", sa.JSON(), nullable=True),
        sa.Column("telemetry_at", sa.Float(), nullable=True),
        sa.Column("cpu_temp_c", sa.Float(), nullable=True),
        sa.Column("disk_used_pct", sa.Float(), nullable=True),
        sa.Column("outbox_depth", sa.Integer(), nullable=True),
        sa.Column("paper", sa.String(length=16), nullable=True),
        sa.Column("printer_online", sa.Boolean(), nullable=True),
        sa.Column("camera_ok", sa.Boolean(), nullable=True),
        sa.Column("door", sa.String(length=16), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("last_error_at", sa.Float(), nullable=True),
        sa.Column("cert_not_after", sa.Float(), nullable=True),
        sa.Column("max_seq", sa.BigInteger(), nullable=False),
        sa.Column("seq_gaps", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kiosk_id"),
    )
    op.create_table(
        "telemetry",
        sa.Column("row", ROW, nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("cpu_temp_c", sa.Float(), nullable=True),
        sa.Column("disk_used_pct", sa.Float(), nullable=True),
        sa.Column("outbox_depth", sa.Integer(), nullable=True),
        sa.Column("load1", sa.Float(), nullable=True),
        sa.Column("memory_used_pct", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("row"),
    )
    op.create_index("telemetry_kiosk_at", "telemetry", ["kiosk_id", "at"])
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("events_kiosk_at", "events", ["kiosk_id", "at"])
    op.create_table(
        "records",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("records_kiosk_seq", "records", ["kiosk_id", "seq"])
    op.create_table(
        "commands",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("result_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("commands_sent", "commands", ["sent_at"])
    op.create_table(
        "alerts",
        sa.Column("row", ROW, nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.Float(), nullable=False),
        sa.Column("cleared_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("row"),
    )
    op.create_index("alerts_open", "alerts", ["kiosk_id", "rule", "cleared_at"])
    op.create_table(
        "operators",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("login_throttle_since", "login_throttle", ["since"])
    op.create_table(
        "dossiers",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "claims",
        sa.Column("claim_id", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=128), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("used_by", sa.String(length=64), nullable=True),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("cert_serial", sa.String(length=64), nullable=True),
        sa.Column("account_removed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("claim_id"),
    )
    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("not_after", sa.Float(), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_table(
        "queue_stats",
        sa.Column("site", sa.String(length=128), nullable=False),
        sa.Column("area", sa.String(length=1), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("serving", sa.Integer(), nullable=False),
        sa.Column("avg_service_s", sa.Float(), nullable=True),
        sa.Column("counters_open", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("site", "area"),
    )
    op.create_table(
        "revocations",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=False),
        sa.Column("effective_from", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )


def downgrade() -> None:
    op.drop_table("revocations")
    op.drop_table("queue_stats")
    op.drop_table("certificates")
    op.drop_table("claims")
    op.drop_table("dossiers")
    op.drop_index("login_throttle_since", table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_table("operators")
    op.drop_index("alerts_open", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("commands_sent", table_name="commands")
    op.drop_table("commands")
    op.drop_index("records_kiosk_seq", table_name="records")
    op.drop_table("records")
    op.drop_index("events_kiosk_at", table_name="events")
    op.drop_table("events")
    op.drop_index("telemetry_kiosk_at", table_name="telemetry")
    op.drop_table("telemetry")
    op.drop_table("kiosks")
