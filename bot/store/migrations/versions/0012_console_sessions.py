"""console_signouts: console sessions ended by sign-out, so a copied cookie is refused

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_signouts",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_console_signouts")),
    )
    with op.batch_alter_table("console_signouts", schema=None) as batch_op:
        batch_op.create_index("ix_console_signouts_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_signouts", schema=None) as batch_op:
        batch_op.drop_index("ix_console_signouts_expires")
    op.drop_table("console_signouts")
