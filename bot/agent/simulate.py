"""``supportbot simulate FILE``: scripted customer conversations through full turns.

Every scenario runs through the real pipeline (inbox → dispatcher → runner → store → outbox)
with the configured model provider, on a throwaway SQLite database, each scenario as its own
customer. Each turn's expectations are checked (tools called or not, reply contains, stop
reason), then the scenario's final thread state. The file format::

    agent:                      # optional: overrides for the agent under test
      guardrails: {input: [{name: abuse, keywords: [idiot], triggered_text: "…"}]}
    scenarios:
      - name: KB answer with citation
        customer: {display_name: Ada Lovelace}      # external_id defaults to sim:<n>
        turns:
          - say: How do I reset my password?
            expect:
              tools_called: []
              tools_not_called: [ESCALATE]
              reply_contains: ["Source:"]
              stop_reason: end_turn
        final_state: open

``--json`` prints, instead of the table, every turn with its reply, action (answer, escalate,
close, or none when a person holds the thread), tool calls, cited sources, what the responder
saw (the run's ``rag_results``: the offline responder's candidates with their scores and why
it decided, kept even when none was good enough) and its checks.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.agent.conversation import Conversation, LocalConnector, TurnOutcome
from bot.config import Settings
from bot.daemon import Daemon, Launch
from bot.domain import JSON, StopReason

CHANNEL = "sim"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Model):
    tools_called: list[str] = []
    tools_not_called: list[str] = []
    reply_contains: list[str] = []
    reply_not_contains: list[str] = []
    stop_reason: str | None = None
    answered: bool = True


class Turn(_Model):
    say: str = Field(min_length=1)
    expect: Expect = Expect()


class Customer(_Model):
    external_id: str | None = None
    display_name: str | None = None
    metadata: dict[str, Any] = {}


class Scenario(_Model):
    name: str
    agent: str | None = None
    customer: Customer = Customer()
    turns: list[Turn] = Field(min_length=1)
    final_state: Literal["open", "escalated", "closed"] | None = None


class ScenarioFile(_Model):
    agent: dict[str, Any] = {}
    scenarios: list[Scenario] = Field(min_length=1)


class ScenarioFileError(Exception):
    """The scenario file cannot be read or does not follow the format."""


def load_scenarios(path: Path) -> ScenarioFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioFileError(f"{path}: cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioFileError(f"{path}: not valid YAML: {exc}") from None
    try:
        return ScenarioFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioFileError(f"{path}: {problems}") from None


@dataclass(frozen=True, slots=True)
class Check:
    scenario: str
    turn: int | None
    what: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class TurnRecord:
    """One turn as ``--json`` prints it."""

    scenario: str
    turn: int
    say: str
    reply: str
    action: str
    stop_reason: str | None
    tool_calls: list[JSON]
    citations: list[str]
    rag_results: list[JSON]
    checks: list[Check] = field(default_factory=list)

    def as_json(self) -> JSON:
        return {
            "turn": self.turn,
            "say": self.say,
            "reply": self.reply,
            "action": self.action,
            "stop_reason": self.stop_reason,
            "tool_calls": self.tool_calls,
            "citations": self.citations,
            "rag_results": self.rag_results,
            "checks": [_check_json(c) for c in self.checks],
        }


def _check_json(check: Check) -> JSON:
    return {"what": check.what, "ok": check.ok, "detail": check.detail}


def turn_action(outcome: TurnOutcome) -> str:
    """What the turn did: ``none`` when a person holds the thread and the bot stayed quiet."""
    if outcome.run is None:
        return "none"
    if outcome.run.stop_reason is StopReason.ESCALATED:
        return "escalate"
    if outcome.run.stop_reason is StopReason.CLOSED:
        return "close"
    return "answer"


def cited_sources(reply: str, sources: list[str]) -> list[str]:
    """The knowledge base's sources a reply names, in the order they appear (longest source
    first when one contains another)."""
    found: list[tuple[int, str]] = []
    for source in sorted(sources, key=len, reverse=True):
        at = reply.find(source)
        if at != -1 and not any(s <= at < s + len(o) for s, o in found):
            found.append((at, source))
    return [source for _, source in sorted(found)]


def turn_record(
    scenario: str, number: int, say: str, outcome: TurnOutcome, sources: list[str]
) -> TurnRecord:
    run = outcome.run
    reply = ("\n".join(outcome.replies) or run.output_text) if run is not None else ""
    calls: list[JSON] = [
        {"name": c.name, "arguments": c.arguments, "result": c.result, "error": c.error}
        for c in (run.tool_calls if run is not None else ())
    ]
    return TurnRecord(
        scenario=scenario,
        turn=number,
        say=say,
        reply=reply,
        action=turn_action(outcome),
        stop_reason=run.stop_reason.value if run is not None else None,
        tool_calls=calls,
        citations=cited_sources(reply, sources),
        rag_results=list(run.rag_results) if run is not None else [],
    )


def check_turn(scenario: str, number: int, turn: Turn, outcome: TurnOutcome) -> list[Check]:
    checks: list[Check] = []
    expect = turn.expect
    run = outcome.run
    if run is None:
        checks.append(
            Check(
                scenario,
                number,
                "answered",
                not expect.answered,
                "the bot did not answer (a human has control)",
            )
        )
        return checks
    called = [c.name for c in run.tool_calls]
    reply = "\n".join(outcome.replies) or run.output_text
    for name in expect.tools_called:
        checks.append(
            Check(
                scenario,
                number,
                f"called {name}",
                name in called,
                f"tools called: {', '.join(called) or 'none'}",
            )
        )
    for name in expect.tools_not_called:
        checks.append(
            Check(
                scenario,
                number,
                f"did not call {name}",
                name not in called,
                f"tools called: {', '.join(called) or 'none'}",
            )
        )
    for needle in expect.reply_contains:
        checks.append(
            Check(
                scenario,
                number,
                f"reply contains {needle!r}",
                needle.casefold() in reply.casefold(),
                _clip(reply),
            )
        )
    for needle in expect.reply_not_contains:
        checks.append(
            Check(
                scenario,
                number,
                f"reply lacks {needle!r}",
                needle.casefold() not in reply.casefold(),
                _clip(reply),
            )
        )
    if expect.stop_reason is not None:
        checks.append(
            Check(
                scenario,
                number,
                f"stop reason {expect.stop_reason}",
                run.stop_reason.value == expect.stop_reason,
                f"stopped: {run.stop_reason.value}",
            )
        )
    if not reply.strip():
        checks.append(Check(scenario, number, "customer got a reply", False, "no reply"))
    return checks


def simulation_settings(
    settings: Settings, database_url: str, agent_overrides: dict[str, Any]
) -> Settings:
    """The configured settings on a throwaway database, with no external connectors and no
    escalation webhooks (a rehearsal tells nobody)."""
    data = settings.model_dump(mode="python")
    data["database"] = {**data["database"], "url": database_url}
    data["connectors"] = []
    data["notify"] = []
    if agent_overrides:
        data["agents"] = [
            {**a, **agent_overrides} if a["slug"] == settings.default_agent else a
            for a in data["agents"]
        ]
    return Settings.model_validate(data)


async def simulate(
    settings: Settings, path: Path, out: TextIO, *, launch: Launch, as_json: bool = False
) -> int:
    """Run every scenario of ``path``; print a pass/fail table (or, ``as_json``, every turn as
    JSON); 0 when everything passed."""
    try:
        spec = load_scenarios(path)
    except ScenarioFileError as exc:
        print(f"supportbot: {exc}", file=out)
        return 2
    checks: list[Check] = []
    turns: list[TurnRecord] = []
    with tempfile.TemporaryDirectory(prefix="supportbot-sim-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'simulate.db'}"
        sim_settings = simulation_settings(settings, url, spec.agent)
        connector = LocalConnector(CHANNEL)
        async with launch(sim_settings, connectors=[connector]) as daemon:
            sources = await _sources(daemon)
            for number, scenario in enumerate(spec.scenarios, start=1):
                checks.extend(
                    await _run_scenario(
                        daemon, connector, sim_settings, number, scenario, turns, sources
                    )
                )
    if as_json:
        return _report_json(spec, checks, turns, out)
    return _report(spec, checks, out)


async def _sources(daemon: Daemon) -> list[str]:
    from sqlalchemy import select

    from bot.store.schema import kb_documents

    async with daemon.store.db.read() as conn:
        return sorted({r.source for r in (await conn.execute(select(kb_documents.c.source)))})


async def _run_scenario(
    daemon: Daemon,
    connector: LocalConnector,
    settings: Settings,
    number: int,
    scenario: Scenario,
    turns: list[TurnRecord],
    sources: list[str],
) -> list[Check]:
    conversation = Conversation(
        daemon,
        connector,
        agent_slug=scenario.agent or settings.default_agent,
        smith_external_id=scenario.customer.external_id or f"sim:customer-{number}",
        display_name=scenario.customer.display_name,
        profile=scenario.customer.metadata,
        turn_timeout=settings.model.timeout_seconds * 6 + 30,
    )
    checks: list[Check] = []
    try:
        await conversation.open_thread()
        for index, turn in enumerate(scenario.turns, start=1):
            outcome = await conversation.say(turn.say)
            checked = check_turn(scenario.name, index, turn, outcome)
            checks.extend(checked)
            record = turn_record(scenario.name, index, turn.say, outcome, sources)
            record.checks = checked
            turns.append(record)
    except TimeoutError:
        checks.append(Check(scenario.name, None, "finished in time", False, "a turn timed out"))
        return checks
    if scenario.final_state is not None and conversation.thread is not None:
        state = conversation.thread.state.value
        checks.append(
            Check(
                scenario.name,
                None,
                f"final state {scenario.final_state}",
                state == scenario.final_state,
                f"state: {state}",
            )
        )
    return checks


def _report(spec: ScenarioFile, checks: list[Check], out: TextIO) -> int:
    width = max([len("scenario"), *(len(s.name) for s in spec.scenarios)])
    print(f"{'scenario':<{width}}  turn  {'result':<6}  check", file=out)
    print(f"{'-' * width}  ----  ------  {'-' * 40}", file=out)
    for check in checks:
        turn = "end" if check.turn is None else str(check.turn)
        line = f"{check.scenario:<{width}}  {turn:>4}  {'pass' if check.ok else 'FAIL':<6}  {check.what}"
        if not check.ok:
            line += f"  ({check.detail})"
        print(line, file=out)
    failed = {c.scenario for c in checks if not c.ok}
    total = len(spec.scenarios)
    print(f"\n{total - len(failed)}/{total} scenarios passed", file=out)
    return 1 if failed else 0


def _report_json(
    spec: ScenarioFile, checks: list[Check], turns: list[TurnRecord], out: TextIO
) -> int:
    failed = {c.scenario for c in checks if not c.ok}
    scenarios = [
        {
            "name": s.name,
            "passed": s.name not in failed,
            "turns": [t.as_json() for t in turns if t.scenario == s.name],
            "checks": [_check_json(c) for c in checks if c.scenario == s.name and c.turn is None],
        }
        for s in spec.scenarios
    ]
    total = len(spec.scenarios)
    summary = {"passed": total - len(failed), "total": total, "scenarios": scenarios}
    print(json.dumps(summary, ensure_ascii=False, indent=2, default=str), file=out)
    return 1 if failed else 0


def _clip(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
