"""raw deliveries: webhook deliveries stored before the acknowledgement, parsed after it

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.String(512), nullable=False),
        sa.Column("order_key", sa.String(512), nullable=False),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text()),
        sa.Column("lease_token", sa.String(40)),
        sa.Column("lease_expires_at", sa.Float()),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float()),
        sa.UniqueConstraint("channel", "dedup_key", name="uq_deliveries_channel_dedup"),
    )
    op.create_index(
        "ix_deliveries_pending",
        "deliveries",
        ["id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_deliveries_pending_order",
        "deliveries",
        ["channel", "order_key", "id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending_order", table_name="deliveries")
    op.drop_index("ix_deliveries_pending", table_name="deliveries")
    op.drop_table("deliveries")
