"""dashboard indexes on kiosks; queue tickets as the kiosks report them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("kiosks_site", "kiosks", ["site", "kiosk_id"])
    op.create_index("kiosks_state", "kiosks", ["state", "state_since"])
    op.create_index("kiosks_version", "kiosks", ["version"])
    op.create_table(
        "queue_tickets",
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("area", sa.String(length=1), nullable=False),
        sa.Column("series", sa.String(length=2), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("called_at", sa.Float(), nullable=True),
        sa.Column("called_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("kiosk_id", "day", "area", "series", "seq"),
    )
    op.create_index("queue_tickets_day_area", "queue_tickets", ["day", "area", "called_at"])


def downgrade() -> None:
    op.drop_index("queue_tickets_day_area", table_name="queue_tickets")
    op.drop_table("queue_tickets")
    op.drop_index("kiosks_version", table_name="kiosks")
    op.drop_index("kiosks_state", table_name="kiosks")
    op.drop_index("kiosks_site", table_name="kiosks")
