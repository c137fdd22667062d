"""person_messages: what a person wrote to the customer through the operator API

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "person_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("thread_id", sa.String(length=40), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_person_messages_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_messages")),
    )
    with op.batch_alter_table("person_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_person_messages_thread_created", ["thread_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("person_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_person_messages_thread_created")
    op.drop_table("person_messages")
