"""live work indexes: partial indexes on pending inbox rows and outbox actions

Claims look only for pending work. An index over every row's status drags the done ones
along (each row flips ``pending → done`` once and leaves a dead entry behind on
PostgreSQL until a vacuum); a partial index holds the live rows alone, so a claim costs the
same however many messages and actions are stored.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_inbox_status_lane", table_name="inbox")
    op.create_index("ix_inbox_lane", "inbox", ["lane", "id"])
    op.create_index(
        "ix_inbox_pending_lane", "inbox", ["lane", "id"],
        sqlite_where=PENDING, postgresql_where=PENDING,
    )
    op.drop_index("ix_outbox_status_due", table_name="outbox")
    op.create_index(
        "ix_outbox_pending_seq", "outbox", ["seq"], sqlite_where=PENDING, postgresql_where=PENDING
    )
    op.create_index(
        "ix_outbox_pending_thread", "outbox", ["thread_id", "seq"],
        sqlite_where=PENDING, postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_thread", table_name="outbox")
    op.drop_index("ix_outbox_pending_seq", table_name="outbox")
    op.create_index("ix_outbox_status_due", "outbox", ["status", "next_attempt_at"])
    op.drop_index("ix_inbox_pending_lane", table_name="inbox")
    op.drop_index("ix_inbox_lane", table_name="inbox")
    op.create_index("ix_inbox_status_lane", "inbox", ["status", "lane"])
