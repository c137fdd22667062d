"""Tables, as SQLAlchemy Core metadata shared by the queries and the Alembic migrations.

Timestamps are unix seconds (floats) so SQLite and PostgreSQL compare them the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a BIGINT identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

agents = Table(
    "agents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("live_version", Integer),
    Column("created_at", Float, nullable=False),
)

agent_versions = Table(
    "agent_versions",
    metadata,
    Column("agent_id", String(40), ForeignKey("agents.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", Json, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
)

smiths = Table(
    "smiths",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("external_id", String(255)),
    Column("display_name", Text),
    Column("customer_id", String(255)),
    Column("metadata", Json, nullable=False),
    Column("auto_memory", Boolean, nullable=False),
    Column("pinned_version", Integer),
    Column("archived_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # One live smith per (external_id, agent); archiving frees the external id.
    Index(
        "uq_smiths_live_external_id",
        "agent_id",
        "external_id",
        unique=True,
        sqlite_where=text("archived_at IS NULL AND external_id IS NOT NULL"),
        postgresql_where=text("archived_at IS NULL AND external_id IS NOT NULL"),
    ),
    Index("ix_smiths_external_id", "external_id"),
)

memories = Table(
    "memories",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("smith_id", String(40), ForeignKey("smiths.id"), nullable=False, index=True),
    Column("fact", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("smith_id", "fact", name="uq_memories_smith_fact"),
)

# The threads a person should look at: escalated, or held by one, and not closed (migration
# 0013; ``bot.store.attention`` spells the same predicate with literals).
NEEDING_PERSON = text("state <> 'closed' AND (state = 'escalated' OR control = 'human')")

threads = Table(
    "threads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("smith_id", String(40), ForeignKey("smiths.id"), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("external_id", String(512), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("control", String(16), nullable=False),
    Column("title", Text),
    Column("metadata", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("agent_id", "external_id", name="uq_threads_agent_external"),
    # Threads in a state by age: retention pages through closed ones older than its cutoff.
    Index("ix_threads_state_updated", "state", "updated_at", "id"),
    # The console inbox (``bot.store.attention``), oldest first; live threads only, so its
    # cost does not grow with the closed ones. Queries spell the predicate with literals.
    Index(
        "ix_threads_needing_person", "updated_at",
        sqlite_where=NEEDING_PERSON, postgresql_where=NEEDING_PERSON,
    ),
    # The analytics window (threads by when they started).
    Index("ix_threads_created_at", "created_at"),
    # Connectors know a ticket, not the agent answering it (find_threads_by_external).
    Index("ix_threads_external_id", "external_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("thread_id", String(40), ForeignKey("threads.id"), nullable=False, index=True),
    Column("smith_id", String(40), ForeignKey("smiths.id"), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("agent_version", Integer),
    Column("input", Json, nullable=False),
    Column("output_text", Text, nullable=False),
    Column("stop_reason", String(32), nullable=False),
    Column("model", String(255), nullable=False),
    Column("usage", Json, nullable=False),
    Column("rag_results", Json, nullable=False),
    Column("error", Text),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    # The newest runs (the operator API's list).
    Index("ix_runs_started_at", "started_at", "id"),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("call_id", String(255), nullable=False),
    Column("name", String(128), nullable=False),
    Column("arguments", Json, nullable=False),
    Column("result", Json),
    Column("error", Text),
    Column("latency_ms", Float, nullable=False),
)

# The predicate of the partial indexes on live work (``pending`` raw deliveries). Queries must
# spell it as a literal (``bot.store.statements.PENDING``) for them to apply.
PENDING = text("status = 'pending'")

inbox = Table(
    "inbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("dedup_key", String(512), nullable=False),
    Column("lane", String(600), nullable=False),
    Column("payload", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("run_id", String(40)),
    Column("error", Text),
    Column("received_at", Float, nullable=False),
    Column("finished_at", Float),
    UniqueConstraint("source", "dedup_key", name="uq_inbox_source_dedup"),
    # A lane's rows (the web history, erasure). The pending ones, which claims look for, are
    # in ``inbox_live`` besides.
    Index("ix_inbox_lane", "lane", "id"),
    # The deliveries a run answered (erasure and retention remove them with the run).
    Index("ix_inbox_run_id", "run_id"),
)

# The live work of the inbox and the outbox, apart from the rows kept once it is done: one row
# per pending message (its lane) and per pending action (its thread and channel), kept by
# triggers on ``inbox`` and ``outbox`` (migration 0015) as a row enters or leaves ``pending``.
# The claims read these alone. A message or action leaving ``pending`` leaves a dead entry in
# whatever index it sat in until a vacuum removes it; in a table of a million rows that is
# autovacuum's 20 % later (and a pass over every index of the million), and a claim reading a
# partial index re-reads every dead entry meanwhile. These tables hold the live work alone, so
# autovacuum clears them after a fixed number of dead rows (their storage parameters, set by
# the migration) at the cost of a few pages, whatever the store's size.
inbox_live = Table(
    "inbox_live",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=False),
    Column("lane", String(600), nullable=False),
    Index("ix_inbox_live_lane", "lane", "id"),
)
outbox_live = Table(
    "outbox_live",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=False),
    Column("thread_id", String(40), nullable=False),
    Column("channel", String(32), nullable=False),
    Index("ix_outbox_live_thread", "thread_id", "channel", "seq"),
)
# Who sent a delivery, as ``ix_inbox_sender`` (migration 0013) indexes it in each dialect: the
# erasure of a smith finds its deliveries by it (``bot.store.erasure``). Dialect specific, so the
# index lives in the migration alone, like the full-text index.
SENDER_EXPRESSION = {
    "postgresql": "(inbox.payload ->> 'smith_external_id')",
    "sqlite": "json_extract(inbox.payload, '$.smith_external_id')",
}
SENDER_INDEX = "ix_inbox_sender"

# One row per thread key: whoever holds the lease is the only one turning that thread.
lanes = Table(
    "lanes",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("lease_token", String(40)),
    Column("lease_expires_at", Float),
    Column("touched_at", Float, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("run_id", String(40), ForeignKey("runs.id"), nullable=False, index=True),
    Column("thread_id", String(40), ForeignKey("threads.id"), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_token", String(40)),
    Column("lease_expires_at", Float),
    Column("remote_id", String(255)),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_outbox_thread_seq", "thread_id", "seq"),
    # The run a channel's message came from (a reaction rates that reply).
    Index("ix_outbox_channel_remote_id", "channel", "remote_id"),
    # The pending actions, which claims look for, are in ``outbox_live`` besides.
)

# What a person wrote to the customer through the operator API (``bot.pipeline.operator``;
# migration 0009),
# on a channel that shows the thread's stored messages (the web widget).
person_messages = Table(
    "person_messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("thread_id", String(40), ForeignKey("threads.id"), nullable=False),
    Column("author_name", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_person_messages_thread_created", "thread_id", "created_at"),
)

# Console sessions signed out before their cookie expired (bot/http/sessions.py): a copied
# cookie of one is refused by every replica; a row is dropped once the cookie has expired.
console_signouts = Table(
    "console_signouts",
    metadata,
    Column("sid", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_console_signouts_expires", "expires_at"),
)

# Small durable values: poller cursors, cached remote ids.
cursors = Table(
    "cursors",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("value", Json, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# -- knowledge base (bot/knowledge) ---------------------------------------------------------------
# The full-text index itself is dialect specific and lives only in migration 0002: on SQLite an
# external-content FTS5 table ``kb_chunks_fts`` (plus its shadow tables and sync triggers), on
# PostgreSQL a generated ``tsvector`` column ``kb_chunks.search_vector`` with a GIN index.
# ``is_search_index_object`` names them so schema diffs (autogenerate) leave them alone.

kb_documents = Table(
    "kb_documents",
    metadata,
    Column("id", String(40), primary_key=True),
    # The resolved absolute path: what makes re-ingesting the same file idempotent.
    Column("location", String(2048), nullable=False, unique=True),
    # Path relative to the ingested root (or a URL): what citations show.
    Column("source", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    # sha256 over the chunking parameters and the file's bytes.
    Column("content_hash", String(64), nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The ``[[knowledge.sources]]`` name that syncs this document; NULL for ``kb ingest`` files.
    Column("origin", String(64), nullable=True),
    # The HTTP validators of the page it came from: the next sync asks with a conditional GET.
    Column("etag", Text, nullable=True),
    Column("last_modified", Text, nullable=True),
    # Where the source files it, for people (a Help Center article's "Collection › Section").
    Column("section", Text, nullable=True),
    Index("ix_kb_documents_origin", "origin"),
)

kb_chunks = Table(
    "kb_chunks",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("document_id", String(40), ForeignKey("kb_documents.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("heading", Text, nullable=False),
    Column("text", Text, nullable=False),
    # The chunk's distinct stemmed content words, space separated (bot.knowledge.terms): the
    # search scores coverage of the query's words against these without re-tokenising.
    Column("terms", Text, nullable=False),
    UniqueConstraint("document_id", "seq", name="uq_kb_chunks_document_seq"),
)

# Document frequency of each stemmed term over all chunks: weighs the query's words by rarity.
kb_terms = Table(
    "kb_terms",
    metadata,
    Column("term", String(64), primary_key=True),
    Column("chunks", Integer, nullable=False),
)

# Dense vectors of chunks (bot.knowledge.vectors), keyed by what was embedded: the model and a
# hash of the chunk's text, so a document's unchanged chunks keep theirs when it is re-chunked
# and only changed text is sent to the model again. float32, little-endian.
kb_embeddings = Table(
    "kb_embeddings",
    metadata,
    Column("model", String(255), primary_key=True),
    Column("text_hash", String(64), primary_key=True),
    Column("dimensions", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

SEARCH_INDEX_TABLE = "kb_chunks_fts"
SEARCH_VECTOR_COLUMN = "search_vector"
SEARCH_VECTOR_INDEX = "ix_kb_chunks_search_vector"


def is_search_index_object(name: str | None, type_: str) -> bool:
    """Whether a reflected object is part of the dialect-specific full-text index (or the
    sender index, dialect specific too)."""
    if name is None:
        return False
    if type_ == "table":
        return name == SEARCH_INDEX_TABLE or name.startswith(SEARCH_INDEX_TABLE + "_")
    if type_ == "column":
        return name == SEARCH_VECTOR_COLUMN
    if type_ == "index":
        return name in (SEARCH_VECTOR_INDEX, SENDER_INDEX)
    return False


# -- the web channel and the conversations API (migration 0003) --------------------------------

# A conversation is a listable, deletable handle on one web thread (``web:<conversation id>``).
# Deleting it removes the handle only (``deleted_at``); the thread and its runs stay.
conversations = Table(
    "conversations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("thread_id", String(40), ForeignKey("threads.id"), nullable=False, unique=True),
    Column("smith_id", String(40), ForeignKey("smiths.id"), nullable=False),
    Column("metadata", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("deleted_at", Float),
    Index("ix_conversations_smith_created", "smith_id", "created_at"),
)

# Claim on login: a signed-in identity (``web:<user_id>``) that took over an anonymous smith
# resolves to that smith from then on (``external_id`` itself is immutable).
smith_aliases = Table(
    "smith_aliases",
    metadata,
    Column("agent_id", String(40), ForeignKey("agents.id"), primary_key=True),
    Column("external_id", String(255), primary_key=True),
    Column("smith_id", String(40), ForeignKey("smiths.id"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
)

# Attachments customers uploaded, kept for audit; runs refer to them by ``file_id``.
files = Table(
    "files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("smith_id", String(40), ForeignKey("smiths.id"), nullable=False, index=True),
    Column("filename", Text, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)


# -- erasure (migration 0005) -----------------------------------------------------------------

# The audit trail of the right to erasure (bot/store/erasure.py): that a smith's data was removed,
# when, at whose request and how much of it, and nothing that says who the smith was. ``smith_id``
# is the store's own opaque id (never the external id); no foreign key, as the smith is gone.
erasures = Table(
    "erasures",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("smith_id", String(40), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("erased_at", Float, nullable=False),
    # Rows removed per kind: {"threads": 2, "runs": 5, …, "smiths": 1}.
    Column("counts", Json, nullable=False),
    # "cli", "api" or "retention".
    Column("requested_by", String(16), nullable=False),
)


# -- customer satisfaction (migration 0008) ------------------------------------------

# A customer's verdict on one answer (a run): thumbs up or down, perhaps a comment. One row per
# run and rater (``rater``: who gave it, as the channel knows them), so rating again replaces the
# earlier verdict and a removed reaction removes its row. ``source`` says how it was given
# (``widget``, ``reaction``, ``rating``).
feedback = Table(
    "feedback",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), ForeignKey("runs.id"), nullable=False, index=True),
    Column("thread_id", String(40), ForeignKey("threads.id"), nullable=False, index=True),
    Column("rater", String(255), nullable=False),
    Column("rating", String(8), nullable=False),
    Column("comment", Text),
    Column("source", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("run_id", "rater", name="uq_feedback_run_rater"),
)


# -- raw deliveries (migration 0014) ----------------------------------------------------------

# A platform's webhook delivery as it arrived, stored before the acknowledgement and parsed into
# inbox messages after it. Unique per ``(channel, dedup_key)`` (Intercom's notification id,
# Slack's event_id), so a redelivery is acknowledged without a second row. ``order_key`` (a
# conversation) orders parsing: a delivery is parsed only after every earlier one of its key.
# The body is dropped once parsed; the row stays as the redelivery's dedup record.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),
    Column("dedup_key", String(512), nullable=False),
    Column("order_key", String(512), nullable=False),
    Column("body", LargeBinary),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("lease_token", String(40)),
    Column("lease_expires_at", Float),
    Column("received_at", Float, nullable=False),
    Column("finished_at", Float),
    UniqueConstraint("channel", "dedup_key", name="uq_deliveries_channel_dedup"),
    Index("ix_deliveries_pending", "id", sqlite_where=PENDING, postgresql_where=PENDING),
    Index(
        "ix_deliveries_pending_order", "channel", "order_key", "id",
        sqlite_where=PENDING, postgresql_where=PENDING,
    ),
)
