"""The dispatcher: claims lanes (one per thread) from the inbox and runs one turn per claim.

At most one turn runs per thread at a time (the lane lease, held in the database so replicas
agree); at most ``pipeline.concurrency`` turns run in this process; messages that arrive during
a turn wait in the inbox and are answered together in the next one. A worker that dies mid-turn
commits nothing; its lease expires and the next worker takes the lane.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from bot.config import HandoffSettings, PipelineSettings
from bot.connector import Connector, LiveReply, TurnOutcome
from bot.domain import (
    Action,
    ActionKind,
    AgentDefinition,
    InboundMessage,
    InboxStatus,
    Run,
    Smith,
    StopReason,
    Thread,
    ThreadChange,
    action_id,
    new_id,
    now,
)
from bot.logs import bind_turn
from bot.metrics import Metrics
from bot.pipeline.announce import Announcements
from bot.pipeline.claims import ClaimLoop
from bot.pipeline.events import TurnEvent, TurnEvents
from bot.pipeline.handoff import Handoff
from bot.pipeline.turn import TurnContext, TurnResult, TurnRunner
from bot.store.errors import LeaseLost
from bot.store.inbox import LaneClaim
from bot.store.outbox import ActionClaim
from bot.store.runs import TurnInputs
from bot.store.store import Store

log = logging.getLogger(__name__)

TITLE_CHARS = 80
HISTORY_RUNS = 20


class Dispatcher(ClaimLoop[LaneClaim]):
    name = "dispatcher"

    def __init__(
        self,
        *,
        store: Store,
        settings: PipelineSettings,
        runner: TurnRunner,
        definitions: Callable[[str], AgentDefinition],
        events: TurnEvents,
        metrics: Metrics,
        connectors: Mapping[str, Connector] | None = None,
        on_committed: Callable[[ActionClaim | None, list[Action]], None] = (
            lambda claim, actions: None
        ),
        handoff: Handoff | None = None,
        announcements: Announcements | None = None,
    ):
        super().__init__(settings)
        # Who hears of an escalation beyond the thread's channel; None: nobody.
        self._announcements = announcements
        # Whether the bot may speak in a thread is handoff's call, not the dispatcher's.
        self._handoff = handoff or Handoff(store, HandoffSettings(), default_agent="")
        self._connectors: Mapping[str, Connector] = connectors or {}
        self._store = store
        self._runner = runner
        self._definitions = definitions
        self._events = events
        self._metrics = metrics
        self._on_committed = on_committed
        self._agent_ids: dict[str, str] = {}

    async def _claim(self, limit: int) -> list[LaneClaim]:
        # The lane's inputs ride on its claim: one round trip for both.
        return await self._store.claim_turns(
            limit=limit,
            lease_seconds=self._settings.lease_seconds,
            agent_ids=self._agent_ids,
            history=HISTORY_RUNS,
        )

    def _task_name(self, claim: LaneClaim) -> str:
        return f"turn:{claim.lane}"

    # -- one claim ----------------------------------------------------------------------

    async def _handle(self, claim: LaneClaim) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(claim), name=f"lease:{claim.lane}")
        seen: list[Thread] = []
        try:
            await self._turn(claim, seen)
        except LeaseLost:
            log.warning("lease on %s expired mid-turn; another worker owns it now", claim.lane)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("turn on %s failed; the messages go back to the inbox", claim.lane)
            attempts = max(item.attempts for item in claim.items) + 1
            try:
                await self._store.release_lane(
                    claim,
                    status=InboxStatus.PENDING,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_after=min(2.0**attempts, 300.0),
                    max_attempts=self._settings.turn_max_attempts,
                )
            except LeaseLost:
                pass
            if seen:
                gave_up = attempts >= self._settings.turn_max_attempts
                if gave_up:
                    log.error("giving up on %s after %d tries", claim.lane, attempts)
                await self._turn_ended(
                    claim, seen[0], TurnOutcome.GAVE_UP if gave_up else TurnOutcome.RETRYING
                )
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _heartbeat(self, claim: LaneClaim) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            if not await self._store.renew_lane(claim, self._settings.lease_seconds):
                log.warning("could not renew the lease on %s", claim.lane)
                return

    async def _agent_id(self, slug: str) -> str:
        if slug not in self._agent_ids:
            definition = self._definitions(slug)
            agent = await self._store.ensure_agent(slug, definition.name)
            self._agent_ids[slug] = agent.id
        return self._agent_ids[slug]

    async def _turn(self, claim: LaneClaim, seen: list[Thread]) -> None:
        """One turn for the lane's messages; ``seen`` gets the thread once it is known."""
        messages = tuple(item.message for item in claim.items)
        first = messages[0]
        slug = first.agent_slug or ""
        prepared = claim.prepared
        if prepared is not None:
            # Read (or started) with the claim.
            thread, smith, inputs = prepared.thread, prepared.smith, prepared.inputs
            known = not prepared.started
        else:
            agent_id = await self._agent_id(slug)
            # One transaction each way: a known thread with what its turn reads, or a new one
            # (smith, thread and inputs written and read together).
            found = await self._store.thread_for_turn(
                agent_id, first.thread_external_id, history=HISTORY_RUNS
            )
            if found is None:
                thread, smith, inputs = await self._store.start_thread(
                    first, agent_id, history=HISTORY_RUNS
                )
            else:
                thread, smith, inputs = found
            known = found is not None
        seen.append(thread)
        if first.smith_external_id is not None and smith.external_id != first.smith_external_id:
            await self._skip(claim, thread, "message from someone other than the thread's customer")
            return
        if known:
            smith = await self._refreshed(smith, first)
        thread, silent = await self._handoff.before_turn(thread)
        seen[0] = thread
        if silent is not None:
            await self._skip(claim, thread, silent)
            return
        resolved = await self._resolved(smith, thread, messages)
        if resolved is not messages:
            messages = resolved
            smith = await self._refreshed(smith, messages[0])

        version = inputs.version
        definition = version.definition if version else self._definitions(slug)
        run_id = new_id("run")
        with bind_turn(thread_id=thread.id, run_id=run_id):
            await self._run_turn(
                claim, run_id, definition, version.version if version else None,
                smith, thread, messages, inputs,
            )

    async def _resolved(
        self, smith: Smith, thread: Thread, messages: tuple[InboundMessage, ...]
    ) -> tuple[InboundMessage, ...]:
        """The messages with what they refer to fetched by their connector (names, files).

        The connector fetches at turn time, not before acknowledging the platform; whatever
        it could not fetch in time the turn goes without — it never fails the turn.
        """
        connector = self._connectors.get(thread.channel)
        if connector is None:
            return messages
        try:
            async with asyncio.timeout(self._settings.resolve_timeout_seconds):
                return await connector.resolve_turn(smith, thread, messages)
        except TimeoutError:
            log.warning(
                "%s took over %.0f s to fetch what the messages refer to; the turn goes without",
                thread.channel, self._settings.resolve_timeout_seconds,
            )
            return _unfetched(messages, "timed out")
        except Exception:
            log.exception("%s could not fetch what the messages refer to", thread.channel)
            return _unfetched(messages, "failed")

    async def _refreshed(self, owner: Smith, first: InboundMessage) -> Smith:
        """Keep the customer's profile fresh (name, email, plan change over time); write only
        when something did change."""
        if owner.archived_at is not None or owner.external_id is None:
            return owner
        renamed = first.display_name is not None and first.display_name != owner.display_name
        profile = first.profile or {}
        changed = any(owner.metadata.get(key) != value for key, value in profile.items())
        if not (renamed or changed):
            return owner
        return await self._store.ensure_smith(
            owner.external_id,
            owner.agent_id,
            display_name=first.display_name,
            metadata=profile or None,
        )

    async def _run_turn(
        self,
        claim: LaneClaim,
        run_id: str,
        definition: AgentDefinition,
        version: int | None,
        smith: Smith,
        thread: Thread,
        inbound: tuple[InboundMessage, ...],
        inputs: TurnInputs,
    ) -> None:
        live = await self._live_reply(thread, run_id, retry=claim.retry)

        async def emit(event: TurnEvent) -> None:
            await self._events.publish(event)
            if live is not None and event.name == "message.delta":
                live.append(str(event.data.get("delta") or ""))
            elif live is not None and event.name == "message.reset":
                live.reset()

        ctx = TurnContext(
            run_id=run_id,
            agent=definition,
            agent_version=version,
            smith=smith,
            thread=thread,
            messages=inbound,
            history=inputs.history,
            memories=inputs.memories,
            people_said=inputs.people_said,
            emit=emit,
        )
        started = now()
        clock = time.perf_counter()
        try:
            await emit(TurnEvent("run.started", run_id, thread.id, {"smith_id": smith.id}))
            log.info("turn started on %s with %d message(s)", thread.external_id, len(inbound))
            result = await self._runner.run(ctx)
            actions, handed = await self._commit(claim, ctx, result, started, live)
        except BaseException:
            if live is not None:
                # Nothing was committed: what the customer saw streaming is not an answer (the
                # next try streams afresh).
                await asyncio.shield(live.discard())
            raise
        elapsed = time.perf_counter() - clock
        self._metrics.turns.labels(result.stop_reason.value).inc()
        self._metrics.turn_seconds.observe(elapsed)
        log.info(
            "turn finished: %s, %d action(s), %.0f ms",
            result.stop_reason.value, len(actions), elapsed * 1000,
        )
        await emit(
            TurnEvent(
                "run.completed" if result.stop_reason is not StopReason.ERROR else "run.failed",
                run_id,
                thread.id,
                {"stop_reason": result.stop_reason.value, "error": result.error},
            )
        )
        self._on_committed(handed, actions)
        await self._turn_ended(claim, thread, TurnOutcome.COMPLETED)

    async def _commit(
        self,
        claim: LaneClaim,
        ctx: TurnContext,
        result: TurnResult,
        started: float,
        live: LiveReply | None,
    ) -> tuple[list[Action], ActionClaim | None]:
        """Record the turn: its run, its actions and the thread's new state, in one commit;
        the first action comes back already claimed when it can be sent at once."""
        finished = now()
        run_id, thread, smith = ctx.run_id, ctx.thread, ctx.smith

        change = self._handoff.turn_change(result.stop_reason, result.thread_change)
        if thread.title is None and change.title is None:
            change = ThreadChange(change.state, change.control, _title(ctx.user_text))

        run = Run(
            id=run_id,
            thread_id=thread.id,
            smith_id=smith.id,
            agent_id=smith.agent_id,
            agent_version=ctx.agent_version,
            input=list(result.input) or [
                {"role": "user", "content": m.text, "attachments": [a.to_json() for a in m.attachments]}
                for m in ctx.messages
            ],
            output_text=result.output_text,
            stop_reason=result.stop_reason,
            model=result.model,
            usage=result.usage,
            rag_results=list(result.rag_results),
            error=result.error,
            started_at=started,
            finished_at=finished,
            tool_calls=result.tool_calls,
        )
        actions = [
            Action(
                id=action_id(run_id, position),
                run_id=run_id,
                thread_id=thread.id,
                channel=thread.channel,
                kind=planned.kind,
                text=planned.text,
                tag=planned.tag,
                assignee=planned.assignee,
                emoji=planned.emoji,
                until=planned.until,
                ref={**thread.metadata, **planned.ref},
            )
            for position, planned in enumerate(
                p for p in result.actions if p.kind is not ActionKind.ANNOUNCE
            )
        ]
        if self._announcements is not None:
            for planned in result.actions:
                if planned.kind is ActionKind.ANNOUNCE:
                    actions += self._announcements.actions(planned, thread=thread, run_id=run_id)
        if live is not None:
            actions = await _hand_over(live, actions)
        handed = await self._store.commit_turn(
            claim,
            run,
            actions,
            thread_change=change,
            new_memories=result.memories,
            hand_over_lease=self._settings.lease_seconds,
        )
        return actions, handed

    async def _skip(self, claim: LaneClaim, thread: Thread, reason: str) -> None:
        log.info("not answering %s: %s", claim.lane, reason)
        self._metrics.skipped.labels(reason).inc(len(claim.items))
        await self._store.release_lane(claim, status=InboxStatus.SKIPPED, error=reason)
        await self._turn_ended(claim, thread, TurnOutcome.SKIPPED)

    async def _live_reply(self, thread: Thread, run_id: str, *, retry: bool) -> LiveReply | None:
        connector = self._connectors.get(thread.channel)
        if connector is None:
            return None
        try:
            return await connector.live_reply(thread, run_id, retry=retry)
        except Exception:
            log.exception("could not open a live reply on %s; the reply is sent whole", thread.channel)
            return None

    async def _turn_ended(self, claim: LaneClaim, thread: Thread, outcome: TurnOutcome) -> None:
        connector = self._connectors.get(thread.channel)
        if connector is None:
            return
        try:
            await connector.turn_ended(thread, [item.message for item in claim.items], outcome)
        except Exception:
            log.exception("%s could not take note of a turn that %s", thread.channel, outcome.value)


async def _hand_over(live: LiveReply, actions: list[Action]) -> list[Action]:
    """Give the live reply's message to the turn's first REPLY, which completes it when the
    outbox sends it; with no reply to carry it, the message is taken down."""
    ref = await live.finish()
    if not ref:
        return actions  # nothing showed
    position = next(
        (i for i, a in enumerate(actions) if a.kind is ActionKind.REPLY and (a.text or "").strip()),
        None,
    )
    if position is None:
        await live.discard()
        return actions
    reply = actions[position]
    actions[position] = replace(reply, ref={**reply.ref, **ref})
    return actions


def _unfetched(messages: tuple[InboundMessage, ...], reason: str) -> tuple[InboundMessage, ...]:
    """The messages with every attachment whose content did not arrive marked as such."""
    if not any(a.data is None for m in messages for a in m.attachments):
        return messages
    return tuple(
        replace(m, attachments=tuple(
            a if a.data is not None else replace(a, fetch_error=a.fetch_error or reason)
            for a in m.attachments
        ))
        for m in messages
    )


def _title(text: str) -> str | None:
    line = " ".join(text.split())
    if not line:
        return None
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"

