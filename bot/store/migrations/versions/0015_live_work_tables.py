"""live work tables: the pending inbox messages and outbox actions apart, kept by triggers

A message or an action flips ``pending → done`` once and, on PostgreSQL, leaves a dead entry in
the partial index of live work until a vacuum removes it. In a table of a million rows
autovacuum comes by after 200,000 dead rows (its default scale factor of 20 %), and a claim
reads every dead entry again on each call meanwhile (a bitmap scan does not mark them dead):
about 39,000 buffers and a second per claim at a million churned messages. ``inbox_live`` and
``outbox_live`` hold the live work alone, written and cleared by triggers as a row enters or
leaves ``pending`` (every path that changes a status or deletes a row keeps them right, with no
statement more per turn); their storage parameters have autovacuum clear them after a fixed
number of dead rows, which costs a few pages in a table this small. The partial indexes on
pending rows (0011) go: the claims were what read them.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
# Dead rows before autovacuum clears a live table (``bot.store.schema.LIVE_VACUUM_THRESHOLD``).
THRESHOLD = 200

# (table, live table, key column, the live table's other columns)
_LIVE = (
    ("inbox", "inbox_live", "id", ("lane",)),
    ("outbox", "outbox_live", "seq", ("thread_id", "channel")),
)


def _postgresql_up(table: str, live: str, key: str, columns: tuple[str, ...]) -> list[str]:
    names = ", ".join((key, *columns))
    new = ", ".join(f"NEW.{c}" for c in (key, *columns))
    sync = f"FOR EACH ROW {{when}} EXECUTE FUNCTION {live}_sync()"
    return [
        f"""
        CREATE FUNCTION {live}_sync() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.status = 'pending' THEN
                DELETE FROM {live} WHERE {key} = OLD.{key};
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.status = 'pending' THEN
                INSERT INTO {live} ({names}) VALUES ({new}) ON CONFLICT DO NOTHING;
            END IF;
            RETURN NULL;
        END $$
        """,
        f"CREATE TRIGGER {live}_insert AFTER INSERT ON {table} "
        + sync.format(when="WHEN (NEW.status = 'pending')"),
        f"CREATE TRIGGER {live}_update AFTER UPDATE OF status ON {table} "
        + sync.format(when="WHEN (OLD.status IS DISTINCT FROM NEW.status)"),
        f"CREATE TRIGGER {live}_delete AFTER DELETE ON {table} "
        + sync.format(when="WHEN (OLD.status = 'pending')"),
        f"""
        ALTER TABLE {live} SET (
            autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = {THRESHOLD},
            autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = {THRESHOLD}
        )
        """,
    ]


def _sqlite_up(table: str, live: str, key: str, columns: tuple[str, ...]) -> list[str]:
    names = ", ".join((key, *columns))
    new = ", ".join(f"NEW.{c}" for c in (key, *columns))
    return [
        f"""
        CREATE TRIGGER {live}_insert AFTER INSERT ON {table} WHEN NEW.status = 'pending'
        BEGIN
            INSERT OR IGNORE INTO {live} ({names}) VALUES ({new});
        END
        """,
        f"""
        CREATE TRIGGER {live}_update AFTER UPDATE OF status ON {table}
        WHEN OLD.status IS NOT NEW.status
        BEGIN
            DELETE FROM {live} WHERE {key} = OLD.{key} AND OLD.status = 'pending';
            INSERT OR IGNORE INTO {live} ({names}) SELECT {new} WHERE NEW.status = 'pending';
        END
        """,
        f"""
        CREATE TRIGGER {live}_delete AFTER DELETE ON {table} WHEN OLD.status = 'pending'
        BEGIN
            DELETE FROM {live} WHERE {key} = OLD.{key};
        END
        """,
    ]


def upgrade() -> None:
    op.create_table(
        "inbox_live",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lane", sa.String(600), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbox_live"),
    )
    op.create_index("ix_inbox_live_lane", "inbox_live", ["lane", "id"])
    op.create_table(
        "outbox_live",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("thread_id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox_live"),
    )
    op.create_index("ix_outbox_live_thread", "outbox_live", ["thread_id", "channel", "seq"])
    up = _sqlite_up if op.get_bind().dialect.name == "sqlite" else _postgresql_up
    for table, live, key, columns in _LIVE:
        names = ", ".join((key, *columns))
        op.execute(
            f"INSERT INTO {live} ({names}) SELECT {names} FROM {table} WHERE status = 'pending'"
        )
        for statement in up(table, live, key, columns):
            op.execute(statement)
    # The partial indexes on pending rows (0011) served the claims, which read the live tables
    # now; each pending row cost an entry in them, and a dead one once it was done.
    op.drop_index("ix_inbox_pending_lane", table_name="inbox")
    op.drop_index("ix_outbox_pending_seq", table_name="outbox")
    op.drop_index("ix_outbox_pending_thread", table_name="outbox")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name != "sqlite"
    op.create_index(
        "ix_outbox_pending_thread", "outbox", ["thread_id", "seq"],
        sqlite_where=PENDING, postgresql_where=PENDING,
    )
    op.create_index(
        "ix_outbox_pending_seq", "outbox", ["seq"], sqlite_where=PENDING, postgresql_where=PENDING
    )
    op.create_index(
        "ix_inbox_pending_lane", "inbox", ["lane", "id"],
        sqlite_where=PENDING, postgresql_where=PENDING,
    )
    for table, live, _key, _columns in _LIVE:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {live}_{event}" + (f" ON {table}" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION {live}_sync()")
    op.drop_index("ix_outbox_live_thread", table_name="outbox_live")
    op.drop_table("outbox_live")
    op.drop_index("ix_inbox_live_lane", table_name="inbox_live")
    op.drop_table("inbox_live")
