"""``supportbot eval CASES.jsonl``: measure answer quality on a set of customer conversations.

Each case is one customer on a fresh thread; its turns go through the real turn path (inbox →
dispatcher → runner → store → outbox, the configured model provider) on a throwaway SQLite
database, with the knowledge base of ``--kb`` (or ``knowledge.paths``). A case reads::

    {"id": "refund-typo", "turns": ["how do i get a refnud?"],
     "expect_action": "answer", "expect_article": "refund-policy"}

``expect_article`` is the cited document's file stem (``billing/refund-policy.md`` →
``refund-policy``), or null when no article should be cited. What is measured:

- **action** of the conversation: the end state its last run reached — ``escalate`` (stop reason
  ``escalated``, or the thread was already handed to a person), ``close`` (``closed``), else
  ``answer``;
- **article**: the first knowledge source cited in the last reply that cites one;
- **recall@1/3/5** of the knowledge search itself for the case's turns joined, per distinct
  document (what ``kb search`` would show);
- the confusion of actions, per-case failures with the reply, and per-turn latency p50/p95.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.agent.conversation import Conversation, LocalConnector, TurnOutcome
from bot.agent.simulate import simulation_settings
from bot.config import Settings
from bot.daemon import Launch
from bot.domain import StopReason

CHANNEL = "eval"
ACTIONS = ("answer", "escalate", "close")
RECALL_AT = (1, 3, 5)

Action = Literal["answer", "escalate", "close"]


class Case(BaseModel):
    """One customer conversation and what should come of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    turns: list[str] = Field(min_length=1)
    expect_action: Action
    expect_article: str | None = None
    note: str = ""


class CaseFileError(Exception):
    """The cases file cannot be read or a line does not follow the format."""


def load_cases(path: Path) -> list[Case]:
    """Cases from a JSON Lines file (blank lines and ``#`` comment lines are skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CaseFileError(f"{path}: cannot be read: {exc}") from None
    cases: list[Case] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            case = Case.model_validate_json(line)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors()
            )
            raise CaseFileError(f"{path}:{number}: {problems}") from None
        if case.id in seen:
            raise CaseFileError(f"{path}:{number}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise CaseFileError(f"{path}: no cases")
    return cases


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What one case did."""

    id: str
    expect_action: str
    action: str
    expect_article: str | None
    article: str | None
    search_rank: int | None  # 1-based rank of the expected article in the search, None: not in top 5
    reply: str
    stop_reasons: list[str]
    latencies_ms: list[float]
    # Why the last run decided as it did, when its responder says (the offline responder's
    # reason, confidence and candidates): what a miss is diagnosed from.
    decision: dict[str, object] | None = None

    @property
    def action_ok(self) -> bool:
        return self.action == self.expect_action

    @property
    def article_ok(self) -> bool | None:
        """None when the case expects no article."""
        if self.expect_article is None:
            return None
        return self.article == self.expect_article


@dataclass(slots=True)
class Report:
    """The figures of a whole run; ratios are 0..1."""

    cases: int
    right_action: float
    right_article: float | None
    article_cases: int
    recall: dict[str, float | None]
    confusion: dict[str, dict[str, int]]
    latency_ms: dict[str, float]
    failures: list[dict[str, object]] = field(default_factory=list)
    results: list[dict[str, object]] = field(default_factory=list)


def settings_for_eval(
    settings: Settings, database_url: str, *, kb: list[Path] | None, provider: str | None
) -> Settings:
    """The configured settings on a throwaway database, the given knowledge and provider."""
    sim = simulation_settings(settings, database_url, {})
    if kb is None and provider is None:
        return sim
    data = sim.model_dump(mode="python")
    if kb is not None:
        data["knowledge"] = {**data["knowledge"], "paths": [str(p) for p in kb]}
    if provider is not None:
        data["model"] = {**data["model"], "provider": provider}
    return Settings.model_validate(data)


async def evaluate(
    settings: Settings,
    cases: list[Case],
    *,
    launch: Launch,
    kb: list[Path] | None = None,
    provider: str | None = None,
) -> Report:
    """Run every case as its own customer and measure; see the module docstring."""
    from bot.knowledge import KnowledgeBase

    with tempfile.TemporaryDirectory(prefix="supportbot-eval-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'eval.db'}"
        eval_settings = settings_for_eval(settings, url, kb=kb, provider=provider)
        connector = LocalConnector(CHANNEL)
        async with launch(eval_settings, connectors=[connector]) as daemon:
            knowledge = KnowledgeBase(daemon.store.db, eval_settings.knowledge)
            sources = await _known_sources(knowledge)
            results = []
            for number, case in enumerate(cases, start=1):
                conversation = Conversation(
                    daemon,
                    connector,
                    agent_slug=eval_settings.default_agent,
                    smith_external_id=f"eval:customer-{number}",
                    turn_timeout=eval_settings.model.timeout_seconds * 6 + 30,
                )
                outcomes, latencies = [], []
                for turn in case.turns:
                    started = time.perf_counter()
                    outcomes.append(await conversation.say(turn))
                    latencies.append((time.perf_counter() - started) * 1000)
                rank = None
                if case.expect_article is not None:
                    rank = await _search_rank(knowledge, " ".join(case.turns), case.expect_article)
                results.append(_result(case, outcomes, latencies, sources, rank))
            await knowledge.aclose()
    return summarise(results)


async def _known_sources(knowledge: object) -> list[str]:
    from sqlalchemy import select

    from bot.knowledge import KnowledgeBase
    from bot.store.schema import kb_documents

    assert isinstance(knowledge, KnowledgeBase)
    async with knowledge.db.read() as conn:
        rows = (await conn.execute(select(kb_documents.c.source))).all()
    # Longest first, so "billing/refunds.md" is preferred over a shorter source inside it.
    return sorted({r.source for r in rows}, key=len, reverse=True)


async def _search_rank(knowledge: object, query: str, expected: str) -> int | None:
    from bot.knowledge import KnowledgeBase

    assert isinstance(knowledge, KnowledgeBase)
    passages = await knowledge.search(query, limit=20)
    documents = list(dict.fromkeys(article_of(p.source) for p in passages))[: max(RECALL_AT)]
    return documents.index(expected) + 1 if expected in documents else None


def article_of(source: str) -> str:
    """A cited source as the file stem cases name: ``billing/refund-policy.md`` → ``refund-policy``;
    a URL's last path segment."""
    tail = source.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"\.[A-Za-z0-9]+$", "", tail)


def cited_articles(reply: str, sources: list[str]) -> list[str]:
    """The known sources a reply names, in the order they appear, as articles."""
    found: list[tuple[int, str]] = []
    for source in sources:
        at = reply.find(source)
        if at != -1 and not any(s <= at < s + len(o) for s, o in found):
            found.append((at, source))
    return list(dict.fromkeys(article_of(s) for _, s in sorted(found)))


def action_of(outcomes: list[TurnOutcome]) -> str:
    """The end state the conversation reached (see the module docstring)."""
    action = "answer"
    for outcome in outcomes:
        if outcome.run is None:  # a person holds the thread: an earlier turn escalated
            return "escalate"
        if outcome.run.stop_reason is StopReason.ESCALATED:
            action = "escalate"
        elif outcome.run.stop_reason is StopReason.CLOSED:
            action = "close"
        else:
            action = "answer"
    return action


def _reply(outcome: TurnOutcome) -> str:
    if outcome.run is None:
        return ""
    return "\n".join(outcome.replies) or outcome.run.output_text


def _result(
    case: Case,
    outcomes: list[TurnOutcome],
    latencies: list[float],
    sources: list[str],
    rank: int | None,
) -> CaseResult:
    article = None
    for outcome in reversed(outcomes):
        cited = cited_articles(_reply(outcome), sources)
        if cited:
            article = cited[0]
            break
    last = next((o for o in reversed(outcomes) if o.run is not None), None)
    decision = None
    if last is not None and last.run is not None:
        # The last decision of the turn: the first may only have looked the customer up.
        decision = next(
            (
                dict(r)
                for r in reversed(last.run.rag_results)
                if isinstance(r, dict) and r.get("kind") == "offline_decision"
            ),
            None,
        )
    return CaseResult(
        id=case.id,
        expect_action=case.expect_action,
        action=action_of(outcomes),
        expect_article=case.expect_article,
        article=article,
        search_rank=rank,
        reply=_reply(last) if last else "",
        stop_reasons=[o.run.stop_reason.value if o.run else "human" for o in outcomes],
        latencies_ms=[round(ms, 2) for ms in latencies],
        decision=decision,
    )


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def summarise(results: list[CaseResult]) -> Report:
    """The report's figures from the cases' results."""
    with_article = [r for r in results if r.expect_article is not None]
    confusion = {e: dict.fromkeys(ACTIONS, 0) for e in ACTIONS}
    for r in results:
        confusion[r.expect_action][r.action] = confusion[r.expect_action].get(r.action, 0) + 1
    recall: dict[str, float | None] = {}
    for k in RECALL_AT:
        hits = sum(1 for r in with_article if r.search_rank is not None and r.search_rank <= k)
        recall[f"@{k}"] = hits / len(with_article) if with_article else None
    latencies = [ms for r in results for ms in r.latencies_ms]
    failures: list[dict[str, object]] = [
        {
            "id": r.id,
            "expected": f"{r.expect_action} {r.expect_article or '-'}",
            "got": f"{r.action} {r.article or '-'}",
            "search_rank": r.search_rank,
            "reply": r.reply,
            "why": (r.decision or {}).get("reason"),
        }
        for r in results
        if not r.action_ok or r.article_ok is False
    ]
    return Report(
        cases=len(results),
        right_action=sum(r.action_ok for r in results) / len(results) if results else 0.0,
        right_article=(
            sum(bool(r.article_ok) for r in with_article) / len(with_article)
            if with_article
            else None
        ),
        article_cases=len(with_article),
        recall=recall,
        confusion=confusion,
        latency_ms={
            "p50": round(_percentile(latencies, 0.50), 2),
            "p95": round(_percentile(latencies, 0.95), 2),
        },
        failures=failures,
        results=[
            {**asdict(r), "action_ok": r.action_ok, "article_ok": r.article_ok} for r in results
        ],
    )


def _pct(value: float | None) -> str:
    return "   -" if value is None else f"{value * 100:5.1f}%"


def print_report(report: Report, out: TextIO) -> None:
    """The human-readable table."""
    print(f"cases            {report.cases}", file=out)
    print(f"right action     {_pct(report.right_action)}", file=out)
    print(
        f"right article    {_pct(report.right_article)}  (of {report.article_cases} cases "
        "that need one)",
        file=out,
    )
    recall = "  ".join(f"{k} {_pct(v)}" for k, v in report.recall.items())
    print(f"search recall    {recall}", file=out)
    print(
        f"latency / turn   p50 {report.latency_ms['p50']:.1f} ms  p95 "
        f"{report.latency_ms['p95']:.1f} ms",
        file=out,
    )
    print("\nactions (rows expected, columns got)", file=out)
    print(f"{'':<10}" + "".join(f"{a:>10}" for a in ACTIONS), file=out)
    for expected in ACTIONS:
        row = report.confusion[expected]
        print(f"{expected:<10}" + "".join(f"{row.get(a, 0):>10}" for a in ACTIONS), file=out)
    if report.failures:
        print(f"\nfailures ({len(report.failures)})", file=out)
        for failure in report.failures:
            reply = " ".join(str(failure["reply"]).split())
            reply = reply if len(reply) <= 160 else reply[:159] + "…"
            print(
                f"- {failure['id']}: expected {failure['expected']}, got {failure['got']} "
                f"(search rank {failure['search_rank'] or '-'})\n    {reply}",
                file=out,
            )
            if failure.get("why"):
                print(f"    why: {failure['why']}", file=out)


async def run_eval(
    settings: Settings,
    path: Path,
    out: TextIO,
    *,
    launch: Launch,
    kb: list[Path] | None = None,
    provider: str | None = None,
    json_path: Path | None = None,
    min_action: float | None = None,
    min_article: float | None = None,
) -> int:
    """The command: 2 on a bad file, 1 when under a floor (percent), else 0."""
    try:
        cases = load_cases(path)
    except CaseFileError as exc:
        print(f"supportbot: {exc}", file=out)
        return 2
    report = await evaluate(settings, cases, launch=launch, kb=kb, provider=provider)
    print_report(report, out)
    if json_path is not None:
        json_path.write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
    under = []
    if min_action is not None and report.right_action * 100 < min_action:
        under.append(f"right action {report.right_action * 100:.1f}% < {min_action}%")
    if (
        min_article is not None
        and report.right_article is not None
        and report.right_article * 100 < min_article
    ):
        under.append(f"right article {report.right_article * 100:.1f}% < {min_article}%")
    if under:
        print("\nunder the floor: " + "; ".join(under), file=out)
        return 1
    return 0


__all__ = [
    "Case",
    "CaseFileError",
    "CaseResult",
    "Report",
    "evaluate",
    "load_cases",
    "run_eval",
]
