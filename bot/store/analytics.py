"""What the bot achieved over a window: the report behind ``GET /v1/analytics`` and the
console's Analytics page, computed from threads, runs, tool calls and feedback.

The window selects threads by when they started (``since`` ≤ ``created_at`` < ``until``), on one
channel or all. Over those threads:

- ``conversations``: how many there are;
- escalated: a run of the thread stopped ESCALATED, or the thread is escalated now;
  ``escalations_by_reason`` groups them by the ``reason`` the ESCALATE call gave (the first
  one; ``unspecified`` when the escalation came from elsewhere, e.g. a guardrail);
- resolved by the bot (``automated_resolution_rate``): not escalated, never taken over by a
  person, answered (a run that ended its turn with text) or closed by the bot, and not reopened:
  no customer message reached a turn within ``analytics.reopen_hours`` after the bot closed it;
- ``first_response_seconds``: from the thread's start to the end of the first run that
  answered; ``resolution_seconds``: to the last answer of a thread the bot resolved, or to the
  last change of a thread that is closed otherwise; both as p50 / p95 (nearest rank);
- ``csat``: thumbs up and down given on the threads' runs;
- ``cost``: every run's tokens × ``analytics.prices`` of its model; ``per_resolution`` divides
  by the threads the bot resolved;
- ``content_gaps``: customer questions (turns that answered or escalated, not the thanks
  before a close) whose best retrieved passage scored below ``analytics.gap_score``, or that
  retrieved nothing, grouped by their stemmed content words;
- ``series``: the same counts per UTC day and channel, for charts.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.config import AnalyticsSettings
from bot.domain import JSON, Control, StopReason, ThreadState
from bot.knowledge.terms import content_terms
from bot.store.database import Database
from bot.store.schema import feedback, runs, threads, tool_calls

ESCALATE_TOOL = "ESCALATE"
UNSPECIFIED = "unspecified"
GAPS_SHOWN = 20
QUESTION_CHARS = 200
REASON_CHARS = 120
ANSWERING = frozenset({StopReason.END_TURN.value, StopReason.CLOSED.value})
# Turns that tried to answer a question: the customer's thanks before a close is no gap.
ASKING = frozenset({StopReason.END_TURN.value, StopReason.ESCALATED.value,
                    StopReason.MAX_TOOL_LOOPS.value})


@dataclass(frozen=True, slots=True)
class Window:
    """Threads started in ``since`` ≤ t < ``until`` (unix seconds), on ``channel`` or all."""

    since: float
    until: float
    channel: str | None = None


@dataclass
class _Thread:
    id: str
    channel: str
    state: str
    control: str
    created_at: float
    updated_at: float
    runs: list[Mapping[str, Any]] = field(default_factory=list)
    reason: str | None = None
    up: int = 0
    down: int = 0

    @property
    def escalated(self) -> bool:
        return self.state == ThreadState.ESCALATED.value or any(
            r["stop_reason"] == StopReason.ESCALATED.value for r in self.runs)

    def first_response(self) -> float | None:
        start = self.start
        for run in self.runs:
            if run["output_text"]:
                return max(0.0, float(run["finished_at"]) - start)
        return None

    @property
    def start(self) -> float:
        return min([self.created_at, *(float(r["started_at"]) for r in self.runs)])

    def reopened(self, hours: float) -> bool:
        for n, run in enumerate(self.runs):
            if run["stop_reason"] != StopReason.CLOSED.value:
                continue
            for later in self.runs[n + 1:]:
                if 0 <= later["started_at"] - run["finished_at"] <= hours * 3600:
                    return True
        return False

    def bot_resolved_at(self, hours: float) -> float | None:
        """When the bot resolved this thread (its last answer), or None if it did not."""
        if self.escalated or self.control == Control.HUMAN.value or self.reopened(hours):
            return None
        answers = [float(r["finished_at"]) for r in self.runs
                   if r["stop_reason"] in ANSWERING
                   and (r["output_text"] or r["stop_reason"] == StopReason.CLOSED.value)]
        return max(answers) if answers else None


def percentiles(values: Iterable[float]) -> JSON:
    """p50 and p95 by nearest rank (the smallest value with at least p% at or below it)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None}

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3)

    return {"p50": rank(50), "p95": rank(95)}


def run_cost(model: str, usage: Mapping[str, Any] | None, settings: AnalyticsSettings) -> float:
    price = settings.prices.get(model)
    if price is None or not usage:
        return 0.0
    return (int(usage.get("input_tokens") or 0) * price.input_per_million
            + int(usage.get("output_tokens") or 0) * price.output_per_million) / 1_000_000


def question_of(run_input: Any) -> str:
    """The customer's words in a run's input (its user messages, joined)."""
    parts: list[str] = []
    for entry in run_input if isinstance(run_input, list) else []:
        if not isinstance(entry, dict) or entry.get("role", "user") != "user":
            continue
        content = entry.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return " ".join(" ".join(parts).split())


def best_score(rag_results: Any) -> float:
    scores = [float(r["score"]) for r in rag_results or ()
              if isinstance(r, dict) and isinstance(r.get("score"), int | float)]
    return max(scores, default=0.0)


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _days(window: Window) -> list[str]:
    first = datetime.fromtimestamp(window.since, UTC).date()
    last = datetime.fromtimestamp(max(window.since, window.until - 1e-6), UTC).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class Analytics:
    """Reads the window's rows in one snapshot and computes the report in Python."""

    def __init__(self, db: Database, settings: AnalyticsSettings):
        self._db = db
        self._settings = settings

    async def report(self, window: Window) -> JSON:
        loaded = await self._db.run_read(lambda conn: _load(conn, window))
        return compute(loaded, window, self._settings)


def _load(conn: Connection, window: Window) -> list[_Thread]:
    in_window = [threads.c.created_at >= window.since, threads.c.created_at < window.until]
    if window.channel is not None:
        in_window.append(threads.c.channel == window.channel)
    found = {
        r["id"]: _Thread(r["id"], r["channel"], r["state"], r["control"], r["created_at"],
                         r["updated_at"])
        for r in conn.execute(select(threads).where(*in_window)).mappings()
    }
    if not found:
        return []
    run_rows = conn.execute(
        select(runs.c.id, runs.c.thread_id, runs.c.input, runs.c.output_text,
               runs.c.stop_reason, runs.c.model, runs.c.usage, runs.c.rag_results,
               runs.c.started_at, runs.c.finished_at)
        .join(threads, threads.c.id == runs.c.thread_id).where(*in_window)
        .order_by(runs.c.started_at, runs.c.id)
    ).mappings()
    for run in run_rows:
        found[run["thread_id"]].runs.append(dict(run))
    calls = conn.execute(
        select(runs.c.thread_id, tool_calls.c.arguments)
        .join(runs, runs.c.id == tool_calls.c.run_id)
        .join(threads, threads.c.id == runs.c.thread_id)
        .where(*in_window, tool_calls.c.name == ESCALATE_TOOL)
        .order_by(runs.c.started_at, tool_calls.c.seq)
    ).mappings()
    for call in calls:
        thread = found[call["thread_id"]]
        arguments = call["arguments"] if isinstance(call["arguments"], dict) else {}
        reason = " ".join(str(arguments.get("reason") or "").split())[:REASON_CHARS]
        if thread.reason is None and reason:
            thread.reason = reason
    ratings = conn.execute(
        select(feedback.c.thread_id, feedback.c.rating)
        .join(threads, threads.c.id == feedback.c.thread_id).where(*in_window)
    ).mappings()
    for rating in ratings:
        thread = found[rating["thread_id"]]
        if rating["rating"] == "up":
            thread.up += 1
        else:
            thread.down += 1
    return list(found.values())


def compute(loaded: list[_Thread], window: Window, settings: AnalyticsSettings) -> JSON:
    """The report over already loaded threads (pure: the tests check it by hand)."""
    hours = settings.reopen_hours
    total = len(loaded)
    escalated = [t for t in loaded if t.escalated]
    reasons = Counter(t.reason or UNSPECIFIED for t in escalated)
    first: list[float] = []
    resolution: list[float] = []
    resolved = 0
    cost = 0.0
    gaps: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    days: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    costs_by_day: dict[tuple[str, str], float] = defaultdict(float)
    for thread in loaded:
        key = (_day(thread.created_at), thread.channel)
        day = days[key]
        day["conversations"] += 1
        day["escalated"] += thread.escalated
        day["csat_up"] += thread.up
        day["csat_down"] += thread.down
        response = thread.first_response()
        if response is not None:
            first.append(response)
        resolved_at = thread.bot_resolved_at(hours)
        if resolved_at is not None:
            resolved += 1
            day["automated"] += 1
            resolution.append(max(0.0, resolved_at - thread.start))
        elif thread.state == ThreadState.CLOSED.value:
            resolution.append(max(0.0, thread.updated_at - thread.start))
        for run in thread.runs:
            spent = run_cost(run["model"], run["usage"], settings)
            cost += spent
            costs_by_day[key] += spent
            question = question_of(run["input"])
            score = best_score(run["rag_results"])
            if question and run["stop_reason"] in ASKING and score < settings.gap_score:
                group = " ".join(sorted(content_terms(question))) or question.lower()
                gaps[group].append((run["started_at"], question[:QUESTION_CHARS], thread.id))
    channels = sorted({t.channel for t in loaded})
    series = [
        {"date": date, "channel": channel,
         **{k: days[(date, channel)][k] for k in
            ("conversations", "automated", "escalated", "csat_up", "csat_down")},
         "cost": round(costs_by_day[(date, channel)], 6)}
        for date in _days(window) for channel in channels
    ]
    return {
        "object": "analytics",
        "since": window.since,
        "until": window.until,
        "channel": window.channel,
        "conversations": total,
        "automated_resolutions": resolved,
        "automated_resolution_rate": _ratio(resolved, total),
        "escalations": len(escalated),
        "escalation_rate": _ratio(len(escalated), total),
        "escalations_by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "first_response_seconds": percentiles(first),
        "resolution_seconds": percentiles(resolution),
        "csat": {"up": sum(t.up for t in loaded), "down": sum(t.down for t in loaded)},
        "cost": {"total": round(cost, 6),
                 "per_resolution": round(cost / resolved, 6) if resolved else None},
        "content_gaps": _gaps(gaps),
        "channels": channels,
        "series": series,
    }


def _gaps(groups: Mapping[str, list[tuple[float, str, str]]]) -> list[JSON]:
    ranked = sorted(groups.values(), key=lambda asked: (-len(asked), asked[-1][1].lower()))
    return [
        {"question": max(asked)[1], "count": len(asked),
         "thread_ids": sorted({thread_id for _, _, thread_id in asked})[:5]}
        for asked in ranked[:GAPS_SHOWN]
    ]
