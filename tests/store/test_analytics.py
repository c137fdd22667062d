"""The analytics report over a seeded set of threads, runs, escalations and feedback, checked
against values worked out by hand (in the comments), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.config import AnalyticsSettings, ModelPrice
from bot.domain import Control, StopReason, ThreadState, new_id
from bot.store.analytics import Analytics, Window
from bot.store.schema import runs, threads, tool_calls
from bot.store.store import Store

T0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
DAY = 86400.0
SETTINGS = AnalyticsSettings(
    reopen_hours=24, gap_score=0.3,
    prices={"m1": ModelPrice(input_per_million=2.0, output_per_million=10.0)},
)


class Seed:
    def __init__(self, store: Store, agent_id: str, smith_id: str):
        self.store, self.agent_id, self.smith_id = store, agent_id, smith_id

    async def thread(self, channel: str, created: float, *, state: ThreadState = ThreadState.OPEN,
                     control: Control = Control.BOT, updated: float | None = None) -> str:
        thread_id = new_id("thr")
        values = {"id": thread_id, "smith_id": self.smith_id, "agent_id": self.agent_id,
                  "external_id": f"{channel}:{thread_id}", "channel": channel,
                  "state": state.value, "control": control.value, "title": None,
                  "metadata": {}, "created_at": created, "updated_at": updated or created}
        await self.store.db.run_tx(lambda conn: conn.execute(threads.insert().values(**values)))
        return thread_id

    async def run(self, thread_id: str, start: float, finish: float, stop: StopReason, *,
                  question: str = "", answer: str = "", score: float | None = None,
                  model: str = "m1", tokens: tuple[int, int] = (0, 0),
                  escalate: dict[str, Any] | None = None) -> str:
        run_id = new_id("run")
        rag = [] if score is None else [{"title": "Doc", "score": score, "text": "…"}]
        values = {"id": run_id, "thread_id": thread_id, "smith_id": self.smith_id,
                  "agent_id": self.agent_id, "agent_version": None,
                  "input": [{"role": "user", "content": question}], "output_text": answer,
                  "stop_reason": stop.value, "model": model,
                  "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
                  "rag_results": rag, "error": None, "started_at": start,
                  "finished_at": finish}

        def work(conn: Any) -> None:
            conn.execute(runs.insert().values(**values))
            if escalate is not None:
                conn.execute(tool_calls.insert().values(
                    run_id=run_id, seq=0, call_id="c1", name="ESCALATE", arguments=escalate,
                    result={"escalated": True}, error=None, latency_ms=1.0))

        await self.store.db.run_tx(work)
        return run_id


async def test_the_report_equals_the_hand_computed_values(store: Store) -> None:
    agent = await store.ensure_agent("support", "Support")
    smith = await store.ensure_smith("anon:someone", agent.id)
    seed = Seed(store, agent.id, smith.id)

    # A (web, day 1): answered in 10 s, never escalated: resolved by the bot.
    a = await seed.thread("web", T0 + 3600)
    a1 = await seed.run(a, T0 + 3600, T0 + 3610, StopReason.END_TURN, question="Reset password?",
                        answer="Use Forgot password.", score=0.8, tokens=(1000, 200))
    # B (web, day 1): a weak answer (a gap), then closed by the bot 102 s after the start.
    b = await seed.thread("web", T0 + 7200, state=ThreadState.CLOSED)
    b1 = await seed.run(b, T0 + 7200, T0 + 7205, StopReason.END_TURN,
                        question="How do I export invoices?", answer="Try Settings.", score=0.1,
                        tokens=(500, 100))
    await seed.run(b, T0 + 7300, T0 + 7302, StopReason.CLOSED, question="thanks, that worked",
                   answer="Glad it helped!")
    # C (slack, day 1): escalated by the agent (billing dispute), first response 20 s.
    c = await seed.thread("slack", T0 + 10000, state=ThreadState.ESCALATED,
                          control=Control.HUMAN)
    c1 = await seed.run(c, T0 + 10000, T0 + 10020, StopReason.ESCALATED,
                        question="I was charged twice", answer="Passing you to the team.",
                        model="unpriced", tokens=(9999, 9999),
                        escalate={"reason": "billing dispute", "priority": "high"})
    # D (slack, day 2): answered, closed, and written in again an hour later: reopened.
    d = await seed.thread("slack", T0 + DAY + 100)
    await seed.run(d, T0 + DAY + 100, T0 + DAY + 130, StopReason.END_TURN,
                   question="Where is my order?", answer="On its way.", score=0.9,
                   tokens=(100, 0))
    await seed.run(d, T0 + DAY + 200, T0 + DAY + 210, StopReason.CLOSED, question="ok",
                   answer="Bye!", tokens=(100, 0))
    await seed.run(d, T0 + DAY + 3810, T0 + DAY + 3820, StopReason.END_TURN,
                   question="It never arrived", answer="Let me check.", score=0.6,
                   tokens=(100, 0))
    # E (web, day 2): a guardrail escalation (no ESCALATE call), closed by a person 1000 s in.
    e = await seed.thread("web", T0 + DAY + 500, state=ThreadState.CLOSED,
                          control=Control.HUMAN, updated=T0 + DAY + 1500)
    await seed.run(e, T0 + DAY + 500, T0 + DAY + 504, StopReason.ESCALATED,
                   question="How to export invoices", answer="A person will help.")
    # Outside the window: before it, and after it.
    before = await seed.thread("web", T0 - 10)
    await seed.run(before, T0 - 10, T0 - 5, StopReason.END_TURN, question="x", answer="y",
                   tokens=(10**6, 0))
    await seed.thread("web", T0 + 2 * DAY)

    await store.feedback.rate(a1, rater="u1", rating="up", source="conversation")
    await store.feedback.rate(b1, rater="u2", rating="down", source="conversation")
    await store.feedback.rate(b1, rater="u2", rating="up", source="conversation")  # replaces
    await store.feedback.rate(c1, rater="u3", rating="down", comment="slow", source="reaction")

    analytics = Analytics(store.db, SETTINGS)
    report = await analytics.report(Window(T0, T0 + 2 * DAY))

    assert report["conversations"] == 5                       # A B C D E
    assert report["automated_resolutions"] == 2               # A, B (D reopened; C, E escalated)
    assert report["automated_resolution_rate"] == 0.4
    assert report["escalations"] == 2 and report["escalation_rate"] == 0.4
    assert report["escalations_by_reason"] == {"billing dispute": 1, "unspecified": 1}
    # First responses 10, 5, 20, 30, 4 → sorted 4 5 10 20 30: p50 = 3rd, p95 = 5th.
    assert report["first_response_seconds"] == {"p50": 10, "p95": 30}
    # Resolutions A 10, B 102, E 1000: p50 = 2nd, p95 = 3rd.
    assert report["resolution_seconds"] == {"p50": 102, "p95": 1000}
    assert report["csat"] == {"up": 2, "down": 1}
    # A 1000×2/M + 200×10/M = 0.004; B 0.001 + 0.001 = 0.002; D 3 × 100×2/M = 0.0006; C
    # unpriced; the run before the window not counted.
    assert report["cost"] == {"total": 0.0066, "per_resolution": 0.0033}
    # B's and E's questions share their content words; C retrieved nothing; B's "thanks" closed.
    assert report["content_gaps"] == [
        {"question": "How to export invoices", "count": 2, "thread_ids": sorted([b, e])},
        {"question": "I was charged twice", "count": 1, "thread_ids": [c]},
    ]
    assert report["channels"] == ["slack", "web"]
    assert report["series"] == [
        {"date": "2026-11-01", "channel": "slack", "conversations": 1, "automated": 0,
         "escalated": 1, "csat_up": 0, "csat_down": 1, "cost": 0.0},
        {"date": "2026-11-01", "channel": "web", "conversations": 2, "automated": 2,
         "escalated": 0, "csat_up": 2, "csat_down": 0, "cost": 0.006},
        {"date": "2026-11-02", "channel": "slack", "conversations": 1, "automated": 0,
         "escalated": 0, "csat_up": 0, "csat_down": 0, "cost": 0.0006},
        {"date": "2026-11-02", "channel": "web", "conversations": 1, "automated": 0,
         "escalated": 1, "csat_up": 0, "csat_down": 0, "cost": 0.0},
    ]

    slack = await analytics.report(Window(T0, T0 + 2 * DAY, channel="slack"))
    assert slack["conversations"] == 2 and slack["escalation_rate"] == 0.5   # C, D
    assert slack["automated_resolution_rate"] == 0.0 and slack["cost"]["per_resolution"] is None
    # A shorter reopen window: D's customer came back after 1 h, so with 0.5 h D is resolved.
    short = Analytics(store.db, SETTINGS.model_copy(update={"reopen_hours": 0.5}))
    assert (await short.report(Window(T0, T0 + 2 * DAY)))["automated_resolutions"] == 3


async def test_an_empty_window_reports_nothing_without_dividing_by_zero(store: Store) -> None:
    report = await Analytics(store.db, SETTINGS).report(Window(T0, T0 + DAY))
    assert report["conversations"] == 0
    assert report["automated_resolution_rate"] is None and report["escalation_rate"] is None
    assert report["first_response_seconds"] == {"p50": None, "p95": None}
    assert report["cost"] == {"total": 0.0, "per_resolution": None}
    assert report["series"] == [] and report["content_gaps"] == []
