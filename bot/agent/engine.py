"""The turn runner: guardrails → context → model ⇄ tools loop → one ``TurnResult``.

``build_runner(settings, …)`` is the entry the application calls. A turn never raises for model or tool
failures: a tool error goes back to the model; a provider failure falls back along the provider
chain (which ends in the offline responder); if even that fails the customer gets an apology and
the thread is escalated, so nobody is left without an answer.

A turn has one deadline, ``model.turn_timeout_seconds``, over everything it waits on: the
guardrail judge, every model call, every tool call. When it passes, whatever was running is
cancelled and the offline responder answers the customer's message afresh, offered only the
tools that wait on nothing (ESCALATE, CLOSE); the run's ``error`` says the deadline struck.

Whenever an answer replaces one that had partly streamed (a provider failed over, the deadline
struck, every provider failed), the turn emits ``message.reset`` first: whoever shows the
stream clears what it showed, so the customer never reads two answers run together.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import ValidationError

from bot.agent.attachments import AttachmentLimits, show
from bot.agent.builtin_tools import CLOSE, ESCALATE, REMEMBER, escalation, register_builtin_tools
from bot.agent.context import assemble, to_json_text, turn_input
from bot.agent.guardrails import Guardrails, InputRule, Judge
from bot.agent.retrieval import CachedSearch
from bot.agent.toolcall import call_tool
from bot.agent.tools import HttpTool, Tool, ToolCallContext, ToolOutcome, ToolRegistry
from bot.config import ConfigError, Settings, env_headers
from bot.connector import Connector
from bot.domain import (
    JSON,
    ActionKind,
    PlannedAction,
    StopReason,
    ThreadChange,
    ToolCallRecord,
    Usage,
)
from bot.pipeline.events import TurnEvent
from bot.pipeline.turn import TurnContext, TurnResult
from bot.providers.base import ChatMessage, DeltaHandlers, ModelProvider, ModelRequest, ToolCall
from bot.providers.offline import KnowledgeSearch, OfflineProvider
from bot.providers.offline_answer import rag_record
from bot.providers.resilience import TURN_TIMEOUT, BreakerState

if TYPE_CHECKING:
    from bot.knowledge import KnowledgeBase, Passage
    from bot.metrics import Metrics
    from bot.store.database import Database

log = logging.getLogger(__name__)

PASSAGES_PER_TURN = 4  # the offline responder asks for fewer, so its search is a cache hit
MIN_PASSAGE_SCORE = 0.2
# After the turn's deadline the offline responder answers; it needs no network, so a few
# milliseconds as a rule. This bounds it anyway (a knowledge search on a stalled database):
# past it the customer gets the apology instead.
FALLBACK_GRACE_SECONDS = 2.0
# What the fallback is offered after the deadline: tools that only plan actions, wait on nothing.
AFTER_DEADLINE_TOOLS = frozenset({ESCALATE, CLOSE})
MAX_LOOPS_REPLY = (
    "I'm sorry — I couldn't finish looking into this. Could you tell me a bit more, or ask me to "
    "connect you with a person?"
)
EMPTY_REPLY = "I'm sorry, I don't have an answer for that. Could you rephrase it?"
APOLOGY = (
    "Sorry, I'm having trouble answering right now. I've passed your message to our support "
    "team and a person will follow up here shortly."
)
JUDGE_SYSTEM = (
    "You check customer messages for a support team. Answer the question about the message "
    "with a single word: yes or no."
)


@dataclass(slots=True)
class _Turn:
    """What a turn has gathered so far."""

    ctx: TurnContext
    guardrails: Guardrails
    records: list[ToolCallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    rag: list[JSON] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)
    actions: list[PlannedAction] = field(default_factory=list)
    streamed: bool = False  # the current model call streamed text
    shown: bool = False  # text reached the customer since the turn began or was last reset
    deadline: str | None = None  # set when the turn's deadline struck: what happened then
    # Each message's content as a remote model is sent it: every model call of the turn sends
    # the history again, and the system prompt (instructions and passages) is the longest part.
    redacted: dict[str, str] = field(default_factory=dict)

    def result(
        self,
        stop: StopReason,
        actions: list[PlannedAction],
        *,
        change: ThreadChange | None = None,
        error: str | None = None,
        input_: tuple[JSON, ...] = (),
    ) -> TurnResult:
        planned = [*self.actions, *actions]
        text = "\n\n".join(a.text for a in planned if a.kind is ActionKind.REPLY and a.text)
        error = "; ".join(e for e in (self.deadline, error) if e) or None
        return TurnResult(
            output_text=text,
            stop_reason=stop,
            actions=tuple(planned),
            tool_calls=tuple(self.records),
            usage=self.usage,
            model=self.model,
            rag_results=tuple(self.rag),
            error=error,
            thread_change=change or ThreadChange(),
            memories=tuple(dict.fromkeys(self.memories)),
            input=input_,
        )


class AgentRunner:
    """The ``TurnRunner`` of the daemon: one instance, many concurrent turns."""

    def __init__(
        self,
        *,
        settings: Settings,
        provider: ModelProvider,
        tools: ToolRegistry,
        connectors: Mapping[str, Connector],
        knowledge: KnowledgeSearch | None = None,
        remote: bool | None = None,
        fallback: ModelProvider | None = None,
        metrics: Metrics | None = None,
    ):
        """``fallback`` answers once a turn's deadline has passed (the offline responder);
        without one such a turn ends in the apology and an escalation."""
        self.settings = settings
        self.provider = provider
        self.fallback = fallback
        self._metrics = metrics
        self.tools = tools
        # The app fills its connectors after the runner is built: keep the live mapping.
        self._connectors = connectors
        self._knowledge = knowledge
        self._remote = settings.model.provider != "offline" if remote is None else remote
        self._guardrails: dict[str, Guardrails] = {}
        model = settings.model
        self._attachment_limits = AttachmentLimits(
            model.max_images, model.max_image_bytes, model.max_attachment_chars
        )

    async def aclose(self) -> None:
        """Close the model provider and the knowledge base's embeddings client, if any (the
        tools' HTTP session belongs to the application)."""
        await self.provider.aclose()
        close_knowledge = getattr(self._knowledge, "aclose", None)
        if close_knowledge is not None:
            await close_knowledge()

    # -- one turn -----------------------------------------------------------------------------

    async def run(self, ctx: TurnContext) -> TurnResult:
        turn = _Turn(ctx, self._guardrails_for(ctx))
        try:
            return await self._run(turn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the turn failed unexpectedly; apologising and escalating")
            return self._last_resort(turn, f"{type(exc).__name__}: {exc}")

    async def _run(self, turn: _Turn) -> TurnResult:
        budget = self.settings.model.turn_timeout_seconds
        timeout = asyncio.timeout(budget)
        try:
            async with timeout:
                # The circuit breaker reads it to tell the deadline's cancellation from others.
                token = TURN_TIMEOUT.set(timeout)
                try:
                    return await self._answer(
                        turn,
                        self.provider,
                        judge=self._judge if self._remote else None,
                        offered=self._offered(turn.ctx),
                    )
                finally:
                    TURN_TIMEOUT.reset(token)
        except TimeoutError:
            if not timeout.expired():
                raise
        return await self._after_deadline(turn)

    async def _after_deadline(self, turn: _Turn) -> TurnResult:
        """The turn's time is up: the fallback answers, or the apology if there is none."""
        budget = self.settings.model.turn_timeout_seconds
        if self._metrics is not None:
            self._metrics.turn_deadlines.inc()
        fallback = self.fallback
        if fallback is None:
            log.error("the turn's deadline of %gs passed; apologising and escalating", budget)
            await self._withdraw(turn)
            return self._last_resort(turn, f"turn deadline of {budget:g}s passed")
        log.warning("the turn's deadline of %gs passed; %s answers", budget, fallback.name)
        # What streamed before the deadline is not the answer; the fallback's is.
        await self._withdraw(turn)
        turn.deadline = f"turn deadline of {budget:g}s passed; {fallback.name} answered"
        offered = [t for t in self._offered(turn.ctx) if t.name in AFTER_DEADLINE_TOOLS]
        try:
            async with asyncio.timeout(FALLBACK_GRACE_SECONDS):
                return await self._answer(turn, fallback, judge=None, offered=offered)
        except TimeoutError:
            turn.deadline = None
            await self._withdraw(turn)
            return self._last_resort(
                turn,
                f"turn deadline of {budget:g}s passed, and {fallback.name} did not answer "
                f"within {FALLBACK_GRACE_SECONDS:g}s more",
            )

    async def _answer(
        self,
        turn: _Turn,
        provider: ModelProvider,
        *,
        judge: Judge | None,
        offered: list[Tool],
    ) -> TurnResult:
        """Guardrails, context, then the model ⇄ tools loop with ``provider``."""
        ctx = turn.ctx
        agent_settings = self._agent_settings(ctx.agent.slug)
        variables = agent_settings.variables if agent_settings else {}
        text = ctx.user_text

        # A file's text is checked as if the customer had typed it: a rule that blocks or
        # escalates on a message does the same on a log or PDF carrying the same words.
        shown = await show(ctx.messages, self._attachment_limits)
        notes = [item.note for items in shown for item in items if item.note]
        rule = await turn.guardrails.check_input("\n\n".join([text, *notes]), judge)
        if rule is not None:
            return self._guardrail(turn, rule)

        passages = await self._retrieve(text)
        turn.rag = [rag_record(p) for p in passages]
        assembled = assemble(
            ctx,
            agent_variables=variables,
            passages=passages,
            tool_names=[t.name for t in offered],
            shown=shown,
        )
        messages = list(assembled.messages)
        specs = tuple(t.spec() for t in offered)
        offered_names = {t.name for t in offered}
        buffer_output = turn.guardrails.output.active

        async def send(delta: str) -> None:
            turn.streamed = True
            turn.shown = True
            await ctx.emit(TurnEvent("message.delta", ctx.run_id, ctx.thread.id, {"delta": delta}))

        async def withdraw() -> None:
            await self._withdraw(turn)

        on_delta = DeltaHandlers(send, withdraw)

        for _ in range(ctx.agent.max_tool_loops):
            request = ModelRequest(
                messages=self._outgoing(messages, turn),
                tools=specs,
                model=ctx.agent.model or self.settings.model.name or None,
                temperature=self.settings.model.temperature,
                stream=self.settings.model.stream,
                thread_key=ctx.thread.id,
                # The customer's own namespaced id (anon:, web:, intercom:…): Ingram upserts on it.
                smith_key=ctx.smith.external_id or ctx.smith.id,
            )
            turn.streamed = False
            try:
                response = await provider.complete(
                    request, on_delta=None if buffer_output else on_delta
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a turn never raises: apologise, escalate
                log.error("every model provider failed: %s: %s", type(exc).__name__, exc)
                await self._withdraw(turn)
                return self._last_resort(turn, f"{type(exc).__name__}: {exc}", assembled.input)
            turn.usage = turn.usage + response.usage
            turn.model = response.model or turn.model
            turn.rag.extend(dict(r) for r in response.rag_results)

            if not response.tool_calls:
                reply = response.text.strip() or EMPTY_REPLY
                verdict = turn.guardrails.check_output(reply)
                if verdict.blocked:
                    log.warning("the reply contained a blocked term; replaced")
                if buffer_output or not turn.streamed:
                    await on_delta(verdict.text)
                return turn.result(
                    StopReason.END_TURN,
                    [PlannedAction(ActionKind.REPLY, text=verdict.text)],
                    input_=assembled.input,
                )

            messages.append(
                ChatMessage("assistant", content=response.text, tool_calls=response.tool_calls)
            )
            for call in response.tool_calls:
                outcome = await self._call_tool(turn, call, offered_names)
                content = (
                    to_json_text({"error": outcome})
                    if isinstance(outcome, str)
                    else to_json_text(outcome.result)
                )
                messages.append(
                    ChatMessage("tool", content=content, tool_call_id=call.id, name=call.name)
                )
                if isinstance(outcome, str):
                    continue
                turn.memories.extend(outcome.memories)
                if outcome.stop is not None:
                    said = response.text.strip()
                    if said:
                        said = turn.guardrails.check_output(said).text
                    before = [PlannedAction(ActionKind.REPLY, text=said)] if said else []
                    skipped = response.tool_calls[response.tool_calls.index(call) + 1 :]
                    if skipped:
                        log.info(
                            "%s ends the turn; %d later tool call(s) not run",
                            call.name,
                            len(skipped),
                        )
                    return turn.result(
                        outcome.stop,
                        [*before, *outcome.actions],
                        change=outcome.thread_change,
                        input_=assembled.input,
                    )
                turn.actions.extend(outcome.actions)

        log.warning("reached max_tool_loops=%d without an answer", ctx.agent.max_tool_loops)
        await on_delta(MAX_LOOPS_REPLY)
        return turn.result(
            StopReason.MAX_TOOL_LOOPS,
            [PlannedAction(ActionKind.REPLY, text=MAX_LOOPS_REPLY)],
            input_=assembled.input,
        )

    # -- parts of a turn ----------------------------------------------------------------------

    async def _withdraw(self, turn: _Turn) -> None:
        """Take back the text the customer has watched stream in this turn (``message.reset``):
        the answer that follows replaces it. Nothing to do when nothing showed."""
        if not turn.shown:
            return
        turn.shown = False
        turn.streamed = False
        ctx = turn.ctx
        log.info("withdrawing the partly streamed answer; another one replaces it")
        await ctx.emit(TurnEvent("message.reset", ctx.run_id, ctx.thread.id, {}))

    async def _retrieve(self, text: str) -> list[Passage]:
        if self._knowledge is None or not text.strip():
            return []
        try:
            found = await self._knowledge.search(text, limit=PASSAGES_PER_TURN)
        except Exception:
            log.exception("knowledge search failed; answering without passages")
            return []
        # Passages that share only incidental words with the message mislead a model more
        # than they help it.
        return [p for p in found if p.score >= MIN_PASSAGE_SCORE]

    def _offered(self, ctx: TurnContext) -> list[Tool]:
        names = [n for n in ctx.agent.tools if n != REMEMBER]
        if ctx.smith.auto_memory and not ctx.smith.is_anonymous:
            names.append(REMEMBER)
        unknown = [n for n in names if self.tools.get(n) is None]
        if unknown:
            log.warning("agent %s lists unknown tools: %s", ctx.agent.slug, ", ".join(unknown))
        return self.tools.offered(names)

    def _outgoing(self, messages: list[ChatMessage], turn: _Turn) -> tuple[ChatMessage, ...]:
        """What the provider receives: redacted when it is a remote model (each content once a
        turn, however many model calls send it)."""
        guardrails = turn.guardrails
        if not self._remote or not guardrails.pii.enabled:
            return tuple(messages)
        redacted = turn.redacted

        def redact(content: str) -> str:
            if content not in redacted:
                redacted[content] = guardrails.redact(content)
            return redacted[content]

        return tuple(
            ChatMessage(
                m.role,
                redact(m.content),
                tool_calls=m.tool_calls,
                tool_call_id=m.tool_call_id,
                name=m.name,
                parts=m.parts,
            )
            for m in messages
        )

    async def _call_tool(self, turn: _Turn, call: ToolCall, offered: set[str]) -> ToolOutcome | str:
        """Run one tool call with this thread's connector; recorded in the turn's audit log."""
        connector = self._connectors.get(turn.ctx.thread.channel)
        scope = ToolCallContext(turn=turn.ctx, connector=connector)
        return await call_tool(self.tools, scope, call, offered, turn.records)

    def _guardrail(self, turn: _Turn, rule: InputRule) -> TurnResult:
        ctx = turn.ctx
        log.info("input guardrail %r triggered (%s)", rule.name, rule.action)
        if rule.action == "escalate":
            outcome = escalation(
                ToolCallContext(turn=ctx, connector=self._connectors.get(ctx.thread.channel)),
                reason=f"Guardrail {rule.name!r} triggered",
                priority=rule.priority,
                reply=rule.triggered_text,
            )
            return turn.result(
                StopReason.GUARDRAIL,
                list(outcome.actions),
                change=outcome.thread_change,
                input_=turn_input(ctx),
            )
        return turn.result(
            StopReason.GUARDRAIL,
            [PlannedAction(ActionKind.REPLY, text=rule.triggered_text)],
            input_=turn_input(ctx),
        )

    def _last_resort(
        self, turn: _Turn, error: str, input_: tuple[JSON, ...] | None = None
    ) -> TurnResult:
        """Apologise and hand the thread to a human; built so that it cannot fail itself."""
        ctx = turn.ctx
        scope = ToolCallContext(turn=ctx, connector=self._connectors.get(ctx.thread.channel))
        try:
            outcome = escalation(
                scope,
                reason="The assistant could not answer (error).",
                priority="high",
                reply=APOLOGY,
            )
        except Exception:
            log.exception("the channel's escalation failed; using the default actions")
            outcome = escalation(
                ToolCallContext(turn=ctx, connector=None),
                reason="The assistant could not answer (error).",
                priority="high",
                reply=APOLOGY,
            )
        turn.actions.clear()
        return turn.result(
            StopReason.ERROR,
            list(outcome.actions),
            change=outcome.thread_change,
            error=error[:1000],
            input_=input_ or turn_input(ctx),
        )

    async def _judge(self, question: str, text: str) -> bool:
        """Ask the model a yes/no guardrail question about a (redacted) customer message."""
        guard = Guardrails()
        request = ModelRequest(
            messages=(
                ChatMessage("system", JUDGE_SYSTEM),
                ChatMessage(
                    "user", f"Question: {question}\n\nCustomer message:\n{guard.redact(text)}"
                ),
            ),
            model=self.settings.model.name,
            temperature=0.0,
        )
        response = await self.provider.complete(request)
        return response.text.strip().lower().startswith("yes")

    # -- configuration ------------------------------------------------------------------------

    def _agent_settings(self, slug: str) -> Any:
        try:
            return self.settings.agent(slug)
        except KeyError:
            return None

    def _guardrails_for(self, ctx: TurnContext) -> Guardrails:
        key = json.dumps(ctx.agent.guardrails, sort_keys=True, default=str)
        cached = self._guardrails.get(key)
        if cached is None:
            try:
                cached = Guardrails.parse(ctx.agent.guardrails)
            except ValidationError as exc:
                # A stored agent version with a broken guardrail config: run without its rules
                # rather than fail every turn, and say so loudly.
                log.error("agent %s has invalid guardrails, ignored: %s", ctx.agent.slug, exc)
                cached = Guardrails()
            self._guardrails[key] = cached
        return cached


def check_agent_guardrails(settings: Settings) -> None:
    """Fail fast at startup on a guardrail config that does not parse."""
    for agent in settings.agents:
        try:
            Guardrails.parse(agent.guardrails)
        except ValidationError as exc:
            raise ConfigError(f"config error: agents[{agent.slug}].guardrails: {exc}") from None


def make_runner(
    settings: Settings,
    *,
    http: aiohttp.ClientSession,
    provider: ModelProvider,
    connectors: Mapping[str, Connector],
    knowledge: KnowledgeSearch | None,
    remote: bool | None = None,
    fallback: ModelProvider | None = None,
    metrics: Metrics | None = None,
) -> AgentRunner:
    """A runner with the built-in tools and the ``[[tools]]`` of ``settings``; register more
    with ``runner.tools.tool(...)``. The tools call out through ``http``, which the caller
    owns and closes. ``fallback`` answers turns whose deadline passed."""
    registry = ToolRegistry()
    register_builtin_tools(registry, user_info=settings.user_info, client=http)
    for tool in settings.tools:
        try:
            env_headers(tool.headers_from_env)
        except ConfigError as exc:
            log.warning("tool %s: %s; its calls will fail until it is set", tool.name, exc)
        registry.add(HttpTool(tool, http).as_tool())
    return AgentRunner(
        settings=settings,
        provider=provider,
        tools=registry,
        connectors=connectors,
        knowledge=knowledge,
        remote=remote,
        fallback=fallback,
        metrics=metrics,
    )


async def build_runner(
    settings: Settings,
    *,
    db: Database,
    metrics: Metrics,
    connectors: Mapping[str, Connector],
    http: aiohttp.ClientSession,
    knowledge: KnowledgeBase | None = None,
) -> AgentRunner:
    """Build the daemon's turn runner: knowledge base (synced by the application, which hands
    over its own: one index and one embedding worker per process),
    offline responder, the configured provider chain, and the tools (calling out through
    ``http``, which the application owns). ``connectors`` is the application's live mapping
    (filled after this returns); the runner keeps it, not a copy."""
    from bot.knowledge import KnowledgeBase
    from bot.providers.factory import build_provider

    check_agent_guardrails(settings)
    # The application has synced the files sources before this (``Application._start``).
    kb = knowledge or KnowledgeBase(db, settings.knowledge)
    cached = CachedSearch(kb)
    offline = OfflineProvider(settings.offline, cached)

    def breaker_moved(provider: str, state: BreakerState) -> None:
        metrics.model_breaker.labels(provider).state(state.value)

    provider = build_provider(settings, offline=offline, on_breaker_change=breaker_moved)
    model = settings.model
    # After the deadline the offline responder answers only where it is a fallback at all:
    # with ``model.fallback = []`` the team chose the apology and a person instead.
    fallback = offline if model.provider == "offline" or "offline" in model.fallback else None
    return make_runner(
        settings,
        http=http,
        provider=provider,
        connectors=connectors,
        knowledge=cached,
        fallback=fallback,
        metrics=metrics,
    )
