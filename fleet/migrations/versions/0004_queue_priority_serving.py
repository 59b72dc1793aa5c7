"""queue figures: the priority series' number being served

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows already stored (and counters that do not count the priority series
    # apart) keep NULL, which the document leaves out ("serving" covers it).
    with op.batch_alter_table("queue_stats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority_serving", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queue_stats", schema=None) as batch_op:
        batch_op.drop_column("priority_serving")
