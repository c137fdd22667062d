"""The plans of the statements a run of the store made: which ones scan a table of the store's
size instead of looking up an index.

``StatementLog`` records every distinct statement text an application's engines execute (with
the first parameters it ran with); ``explain`` then asks the database for each one's plan with
those parameters — ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` on PostgreSQL, inside a
transaction rolled back so writes leave nothing behind, ``EXPLAIN QUERY PLAN`` on SQLite — and
sums it up: the access path to each table, and ``scan`` when one reads a table whole. A table
the bench leaves nearly empty (fewer than 1,000 rows: tool calls, feedback, aliases…) is read
whole by PostgreSQL's planner because that is cheapest; such plans are set apart as ``empty``:
they show nothing about the plan at size.

A *scan* is a sequential scan (PostgreSQL ``Seq Scan``, an index scan with no index condition;
SQLite ``SCAN t`` with or without ``USING INDEX``) of a table that grows with the store. Small
tables (agents, their versions, cursors, the knowledge base) may be scanned, and so may a
partial index (one with a ``WHERE``): it holds live work only, whatever the store's size. So
may an index read in its order under a ``LIMIT`` with no sort after it (SQLite; PostgreSQL's
actual row counts tell).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

# Tables of live work only (the pending inbox messages and outbox actions, migration 0015): read
# whole, like a partial index, they cost what is live, not what is stored.
LIVE_TABLES = frozenset({"inbox_live", "outbox_live"})

SMALL_TABLES = frozenset(
    {
        "agents",
        "agent_versions",
        "cursors",
        "alembic_version",
        "kb_documents",
        "kb_chunks",
        "kb_terms",
        "kb_embeddings",
        "kb_chunks_fts",
    }
)


_NOT_PLANNED = (
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "LISTEN",
    "UNLISTEN",
    "NOTIFY",
    "PRAGMA",
    "SET",
    "SHOW",
)


# Fewer rows than this and PostgreSQL rightly reads a table whole.
_FEW = 1000


@dataclass
class Logged:
    statement: str
    parameters: Any
    phase: str
    count: int = 1


@dataclass
class StatementLog:
    """Distinct statements executed on ``engines`` while ``recording`` is set."""

    recording: str | None = None  # the phase being recorded ("turn", "request"), or None
    seen: dict[str, Logged] = field(default_factory=dict)

    def attach(self, *engines: Engine | None) -> None:
        for engine in engines:
            if engine is not None:
                event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        if not self.recording or statement.lstrip().upper().startswith(_NOT_PLANNED):
            return
        logged = self.seen.get(statement)
        if logged is not None:
            logged.count += 1
            return
        first = parameters[0] if many and parameters else parameters
        self.seen[statement] = Logged(statement, first, self.recording)


@dataclass(frozen=True)
class Plan:
    statement: str
    phase: str
    count: int
    access: tuple[str, ...]  # "table: how", one per table touched
    scans: tuple[str, ...]  # the tables read whole
    ms: float | None  # PostgreSQL's execution time of the plan (ANALYZE)
    blocks: int | None = None  # PostgreSQL's shared buffers hit or read by it (ANALYZE)
    small: tuple[str, ...] = ()  # tables read whole because they are nearly empty here

    @property
    def verdict(self) -> str:
        if self.scans:
            return "SCAN " + ",".join(self.scans)
        return "empty " + ",".join(self.small) if self.small else "index"


def explain(conn: Connection, log: StatementLog, *, postgresql: bool) -> list[Plan]:
    partial = _partial_indexes(conn, postgresql=postgresql)
    plans = []
    for logged in log.seen.values():
        if postgresql:
            plans.append(_explain_pg(conn, logged, partial))
        else:
            plans.append(_explain_sqlite(conn, logged, partial))
    return plans


def _partial_indexes(conn: Connection, *, postgresql: bool) -> frozenset[str]:
    """The indexes with a predicate: reading one whole reads the live rows it holds, not the
    table (the claims' indexes on pending work)."""
    if postgresql:
        query = (
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indpred IS NOT NULL"
        )
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'"
    return frozenset(str(name) for (name,) in conn.exec_driver_sql(query).all())


def _explain_sqlite(conn: Connection, logged: Logged, partial: frozenset[str]) -> Plan:
    rows = conn.exec_driver_sql(
        "EXPLAIN QUERY PLAN " + logged.statement, tuple(logged.parameters or ())
    ).all()
    access, scans = [], []
    sorts = any("TEMP B-TREE FOR ORDER BY" in str(row[-1]) for row in rows)
    for row in rows:
        detail = str(row[-1])
        match = re.match(r"(SCAN|SEARCH) (\w+)", detail)
        if match is None or match.group(2).upper() == "CONSTANT":
            continue
        access.append(detail)
        index = re.search(r"USING (?:COVERING )?INDEX (\w+)", detail)
        live = index is not None and index.group(1) in partial
        # An index read in order under a LIMIT stops after the rows it wants.
        limited = index is not None and " LIMIT " in logged.statement and not sorts
        # ``anon_N``: the rows of a subquery under its own LIMIT, not a table.
        if (
            match.group(1) == "SCAN"
            and match.group(2) not in SMALL_TABLES | LIVE_TABLES
            and not match.group(2).startswith("anon_")
            and not live
            and not limited
        ):
            scans.append(match.group(2))
    return Plan(logged.statement, logged.phase, logged.count, tuple(access), tuple(scans), None)


def _explain_pg(conn: Connection, logged: Logged, partial: frozenset[str]) -> Plan:
    params = tuple(logged.parameters or ())
    try:
        with _rolled_back(conn):
            row = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + logged.statement, params
            ).scalar_one()
    except DBAPIError:
        # Run again it would fail (an insert of a key that is there now): the plan alone.
        with _rolled_back(conn):
            row = conn.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) " + logged.statement, params
            ).scalar_one()
    document = row if isinstance(row, list) else json.loads(row)
    top = document[0]
    access: list[str] = []
    scans: list[str] = []
    limited = " LIMIT " in logged.statement
    _walk(top["Plan"], partial, limited, access, scans)
    # A table this bench leaves (nearly) empty is read whole because that is cheapest: it
    # says nothing of the plan once it has grown (PostgreSQL plans by the statistics).
    small = tuple(t for t in scans if _rows_in(conn, t) < _FEW)
    scans = [t for t in scans if t not in small]
    blocks = top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get("Shared Read Blocks", 0)
    return Plan(
        logged.statement,
        logged.phase,
        logged.count,
        tuple(access),
        tuple(scans),
        top.get("Execution Time"),
        blocks if "Execution Time" in top else None,
        small,
    )


@contextmanager
def _rolled_back(conn: Connection) -> Iterator[None]:
    if conn.in_transaction():
        conn.rollback()
    conn.begin()
    try:
        yield
    finally:
        conn.rollback()


def _rows_in(conn: Connection, table: str) -> int:
    with _rolled_back(conn):
        return int(
            conn.exec_driver_sql(
                f'SELECT count(*) FROM (SELECT 1 FROM "{table}" LIMIT {_FEW}) AS few'
            ).scalar_one()
        )


def _walk(
    node: dict[str, Any],
    partial: frozenset[str],
    limited: bool,
    access: list[str],
    scans: list[str],
) -> None:
    kind = node["Node Type"]
    table = node.get("Relation Name")
    if table is not None and kind not in ("ModifyTable",):
        index = node.get("Index Name")
        how = f"{kind} {index}" if index else kind
        access.append(f"{table}: {how} ({node.get('Actual Rows', '?')} rows)")
        whole = kind == "Seq Scan" or (
            "Index" in kind
            and "Index Cond" not in node
            and "Recheck Cond" not in node
            and index not in partial
            and not limited
        )
        if whole and table not in SMALL_TABLES | LIVE_TABLES:
            scans.append(table)
    for child in node.get("Plans", ()):
        _walk(child, partial, limited, access, scans)


def short(statement: str, width: int = 90) -> str:
    """A statement on one line, cut to ``width``."""
    text = " ".join(statement.split())
    return text if len(text) <= width else text[: width - 1] + "…"
