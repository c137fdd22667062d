"""Talking to the bot through the real pipeline, from a terminal or a scenario file.

A ``LocalConnector`` plays the channel: it records the actions the outbox executes. A
``Conversation`` sends customer messages through ``Daemon.submit`` (inbox → dispatcher →
runner → store → outbox) and waits for each turn to be committed and its actions executed, so
callers see exactly what a customer on a real channel would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.connector import Connector
from bot.daemon import Daemon
from bot.domain import JSON, Action, InboundMessage, OutboxStatus, Run, Smith, Thread
from bot.pipeline.events import TurnEvent

EventHook = Callable[[TurnEvent], Awaitable[None]]


class LocalConnector(Connector):
    """A channel that lives in this process: every executed action is kept, in order."""

    def __init__(self, name: str, *, contact: JSON | None = None):
        # One class serves any local channel name ("cli", "sim"), hence a per-instance name.
        self.name = name  # type: ignore[misc]
        self.channel_name = name
        self.executed: list[Action] = []
        self._contact = contact or {}

    async def execute(self, action: Action, thread: Thread) -> str | None:
        self.executed.append(action)
        return f"local-{action.id}"

    async def user_info(self, smith: Smith, thread: Thread) -> JSON:
        return dict(self._contact)


@dataclass(slots=True)
class TurnOutcome:
    """One customer message and what came of it; ``run`` is None when the bot did not answer
    (a human has control of the thread)."""

    text: str
    run: Run | None
    thread: Thread
    actions: list[Action] = field(default_factory=list)
    streamed: str = ""

    @property
    def replies(self) -> list[str]:
        return [a.text or "" for a in self.actions if a.kind.value == "reply"]


class Conversation:
    """One customer talking to one agent on the local channel."""

    def __init__(
        self,
        daemon: Daemon,
        connector: LocalConnector,
        *,
        agent_slug: str,
        smith_external_id: str,
        display_name: str | None = None,
        profile: JSON | None = None,
        turn_timeout: float = 120.0,
    ):
        self.daemon = daemon
        self.connector = connector
        self.agent_slug = agent_slug
        self.smith_external_id = smith_external_id
        self.display_name = display_name
        self.profile = profile or {}
        self.turn_timeout = turn_timeout
        self.thread: Thread | None = None

    async def open_thread(self) -> Thread:
        """Start a new thread (conversation) for this customer."""
        store = self.daemon.store
        agent = await store.get_agent(self.agent_slug)
        smith = await store.ensure_smith(
            self.smith_external_id,
            agent.id,
            display_name=self.display_name,
            metadata=self.profile or None,
        )
        external = f"{self.connector.channel_name}:{uuid.uuid4().hex[:12]}"
        self.thread = await store.ensure_thread(smith, external, self.connector.channel_name)
        return self.thread

    async def say(self, text: str, on_event: EventHook | None = None) -> TurnOutcome:
        """Send one customer message and wait until its turn is committed and sent out."""
        thread = self.thread or await self.open_thread()
        thread = await self.daemon.store.get_thread(thread.id)
        if not self.daemon.handoff.bot_holds(thread):
            return TurnOutcome(text, None, thread)
        message = InboundMessage(
            source=self.connector.channel_name,
            dedup_key=uuid.uuid4().hex,
            thread_external_id=thread.external_id,
            smith_external_id=self.smith_external_id,
            text=text,
            agent_slug=self.agent_slug,
            display_name=self.display_name,
        )
        streamed: list[str] = []
        async with self.daemon.events.subscribe(thread.id) as queue:
            await self.daemon.submit(message)
            run_id = await asyncio.wait_for(
                self._until_done(queue, streamed, on_event), self.turn_timeout
            )
        run = await self.daemon.store.get_run(run_id)
        actions = await asyncio.wait_for(self._sent(thread.id, run_id), self.turn_timeout)
        self.thread = await self.daemon.store.get_thread(thread.id)
        return TurnOutcome(text, run, self.thread, actions, "".join(streamed))

    async def _until_done(
        self, queue: asyncio.Queue[TurnEvent], streamed: list[str], on_event: EventHook | None
    ) -> str:
        while True:
            event = await queue.get()
            if event.name == "message.delta":
                streamed.append(str(event.data.get("delta", "")))
            elif event.name == "message.reset":
                streamed.clear()  # the answer starts over; what came so far is withdrawn
            if on_event is not None:
                await on_event(event)
            if event.name in ("run.completed", "run.failed"):
                return event.run_id

    async def _sent(self, thread_id: str, run_id: str) -> list[Action]:
        """Wait for the outbox to finish this run's actions (done or dead-lettered); with no
        connector serving the channel nothing would send them, so they are returned as planned."""
        while True:
            entries = [
                e
                for e in await self.daemon.store.outbox_entries(thread_id=thread_id, limit=1000)
                if e.action.run_id == run_id
            ]
            unserved = self.daemon.connectors.get(self.connector.channel_name) is not self.connector
            if unserved or all(e.status is not OutboxStatus.PENDING for e in entries):
                executed = {a.id: a for a in self.connector.executed if a.run_id == run_id}
                return [executed.get(e.action.id, e.action) for e in entries]
            if self.daemon.outbox is not None:
                self.daemon.outbox.wake()
            await asyncio.sleep(0.01)
