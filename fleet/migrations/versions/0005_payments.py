"""payments: payment requests, bank notifications, fee receipts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_requests",
        sa.Column("reference", sa.String(length=8), nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=160), nullable=False),
        sa.Column("amount_vnd", sa.BigInteger(), nullable=False),
        sa.Column("bank_bin", sa.String(length=6), nullable=False),
        sa.Column("account", sa.String(length=19), nullable=False),
        sa.Column("fee_name", sa.String(length=200), nullable=False),
        sa.Column("procedure", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bank_reference", sa.String(length=64), nullable=True),
        sa.Column("confirmation", sa.JSON(), nullable=True),
        sa.Column("confirmed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("reference"),
    )
    op.create_table(
        "bank_notifications",
        sa.Column("bank_reference", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("paid_at", sa.Float(), nullable=True),
        sa.Column("amount_vnd", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=8), nullable=True),
        sa.Column("kiosk_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("bank_reference"),
    )
    with op.batch_alter_table("bank_notifications", schema=None) as batch_op:
        batch_op.create_index("bank_notifications_status", ["status", "received_at"], unique=False)
    op.create_table(
        "fee_receipts",
        sa.Column("number", sa.String(length=48), nullable=False),
        sa.Column("kiosk_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=160), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("collected_at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("reference", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("amount_vnd", sa.BigInteger(), nullable=False),
        sa.Column("fee_vnd", sa.BigInteger(), nullable=False),
        sa.Column("fee_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("legal_basis", sa.String(length=300), nullable=False),
        sa.Column("support_id", sa.String(length=64), nullable=True),
        sa.Column("procedure", sa.String(length=8), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("bank_reference", sa.String(length=64), nullable=True),
        sa.Column("staff", sa.String(length=64), nullable=True),
        sa.Column("copy_code", sa.String(length=80), nullable=True),
        sa.Column("payer", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("fee_receipts", schema=None) as batch_op:
        batch_op.create_index("fee_receipts_day_kiosk", ["day", "kiosk_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fee_receipts", schema=None) as batch_op:
        batch_op.drop_index("fee_receipts_day_kiosk")
    op.drop_table("fee_receipts")
    with op.batch_alter_table("bank_notifications", schema=None) as batch_op:
        batch_op.drop_index("bank_notifications_status")
    op.drop_table("bank_notifications")
    op.drop_table("payment_requests")
