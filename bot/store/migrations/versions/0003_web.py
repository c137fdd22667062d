"""web channel: conversations, claim-on-login aliases, stored attachments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("thread_id", sa.String(length=40), nullable=False),
        sa.Column("smith_id", sa.String(length=40), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("deleted_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["smith_id"], ["smiths.id"], name=op.f("fk_conversations_smith_id_smiths")
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_conversations_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint("thread_id", name=op.f("uq_conversations_thread_id")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversations_smith_created", ["smith_id", "created_at"], unique=False
        )

    op.create_table(
        "smith_aliases",
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("smith_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_smith_aliases_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["smith_id"], ["smiths.id"], name=op.f("fk_smith_aliases_smith_id_smiths")
        ),
        sa.PrimaryKeyConstraint("agent_id", "external_id", name=op.f("pk_smith_aliases")),
    )
    with op.batch_alter_table("smith_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_smith_aliases_smith_id"), ["smith_id"], unique=False)

    op.create_table(
        "files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("smith_id", sa.String(length=40), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["smith_id"], ["smiths.id"], name=op.f("fk_files_smith_id_smiths")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_files_smith_id"), ["smith_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_smith_id"))
    op.drop_table("files")
    with op.batch_alter_table("smith_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smith_aliases_smith_id"))
    op.drop_table("smith_aliases")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_smith_created")
    op.drop_table("conversations")
