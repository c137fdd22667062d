"""lookup indexes at scale: every lookup a request or a sweep makes finds its rows by an index

At a million stored threads these read a table whole (``bench/performance.py --plans``): the
console inbox (threads needing a person), the analytics window (threads by start), retention
(closed threads by age: the state index alone walks every closed thread and sorts them, once
per page), erasure (deliveries answered by a run, or sent by the smith), the operator API's
newest runs and rating a reply from a reaction (an action by its remote message id). None is
on a turn's path; the turn's own statements were index lookups already.

- ``ix_threads_needing_person``: partial, the threads escalated or held by a person and not
  closed, by ``updated_at`` — what the console inbox lists, oldest first;
- ``ix_threads_state_updated`` (state, updated_at, id) replaces ``ix_threads_state``: retention's
  keyset pages over closed threads older than the cutoff are a range of it;
- ``ix_threads_created_at``: the analytics window;
- ``ix_runs_started_at`` (started_at, id): the operator API's newest runs;
- ``ix_inbox_run_id``: an erased thread's deliveries by the runs that answered them;
- ``ix_outbox_channel_remote_id``: the run a channel's message came from;
- ``ix_inbox_sender``: deliveries by who sent them (``payload``'s ``smith_external_id``, an
  expression index spelled per dialect) — erasing a smith, which retention does when it erases
  a smith's last thread, looked through every delivery for its own.

The price: ``threads.updated_at`` is indexed now, and a turn stamps it, so on PostgreSQL that
update is no longer HOT (it writes an entry in each of the thread's indexes: about 18 → 27
shared buffers per update at 100k threads). Retention paging over every closed thread once per
page, and a console page reading every thread, cost far more at a million.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SENDER = {
    "postgresql": "(payload ->> 'smith_external_id')",
    "sqlite": "json_extract(payload, '$.smith_external_id')",
}
NEEDING_PERSON = sa.text("state <> 'closed' AND (state = 'escalated' OR control = 'human')")


def upgrade() -> None:
    op.create_index(
        "ix_threads_needing_person",
        "threads",
        ["updated_at"],
        sqlite_where=NEEDING_PERSON,
        postgresql_where=NEEDING_PERSON,
    )
    op.create_index("ix_threads_state_updated", "threads", ["state", "updated_at", "id"])
    op.drop_index("ix_threads_state", table_name="threads")
    op.create_index("ix_threads_created_at", "threads", ["created_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at", "id"])
    op.create_index("ix_inbox_run_id", "inbox", ["run_id"])
    op.create_index("ix_outbox_channel_remote_id", "outbox", ["channel", "remote_id"])
    # The expression the erasure queries with (``bot.store.schema.SENDER_EXPRESSION``).
    sender = SENDER[op.get_bind().dialect.name]
    op.execute(f"CREATE INDEX ix_inbox_sender ON inbox ({sender})")


def downgrade() -> None:
    op.drop_index("ix_inbox_sender", table_name="inbox")
    op.drop_index("ix_outbox_channel_remote_id", table_name="outbox")
    op.drop_index("ix_inbox_run_id", table_name="inbox")
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.drop_index("ix_threads_created_at", table_name="threads")
    op.create_index("ix_threads_state", "threads", ["state"])
    op.drop_index("ix_threads_state_updated", table_name="threads")
    op.drop_index("ix_threads_needing_person", table_name="threads")
