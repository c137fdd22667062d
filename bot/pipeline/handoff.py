"""Handoff: who holds a thread — the bot or a person — decided once, for every channel.

A thread is held by the bot (``Control.BOT``), by a person (``Control.HUMAN``), or is closed
(``ThreadState.CLOSED``; who held it last is kept, so a reopening knows). Three things move it:

- signals a connector reports from its platform (``ConnectorRuntime.report``): a person
  replied, the thread was assigned to a person or to the bot, closed, resolved, reopened;
- the bot's own turns: ESCALATE hands the thread to a person, CLOSE closes it;
- time: with ``handoff.resume_after_hours``, a thread a person has left alone that long comes
  back to the bot.

Connectors only translate platform events into signals; the dispatcher asks ``before_turn``
whether the bot may speak. The transitions:

==========================  ==================================================================
signal / event              effect
==========================  ==================================================================
person replied              control → person (the thread is created if the bot never saw it)
assigned to a person        control → person (created likewise)
assigned to the bot         control → bot, with ``resume_on_assign``
closed, resolved            state → closed
reopened by a person        state → open
reopened by the customer    state → open; control → bot, with ``resume_on_reopen``
                            (also when the customer's message reaches a turn on a closed thread)
the bot's ESCALATE          state → escalated, control → person
the bot's CLOSE             state → closed
operator API: a reply       control → person (a closed thread is open again)
operator API: handback      control → bot (an escalated thread is open again)
operator API: close         state → closed
==========================  ==================================================================
"""

from __future__ import annotations

import logging

from bot.config import HandoffSettings
from bot.domain import Control, Party, Signal, SignalKind, StopReason, Thread, ThreadState, now
from bot.store.store import NotFound, Store, ThreadChange

log = logging.getLogger(__name__)

# Signals by which a person takes a thread: they hold even for a thread the bot has not seen.
# Why a turn is skipped; triage digests report it as it is.
HUMAN_HOLDS = "a human has taken over this thread"
TAKEOVERS = frozenset({SignalKind.PERSON_REPLIED, SignalKind.ASSIGNED_TO_PERSON})


class Handoff:
    """Applies signals and turn outcomes to threads in the store, and answers whether the bot
    may speak in a thread."""

    def __init__(self, store: Store, settings: HandoffSettings, *, default_agent: str):
        self._store = store
        self._settings = settings
        self._default_agent = default_agent
        self._agent_ids: dict[str, str] = {}

    @property
    def settings(self) -> HandoffSettings:
        return self._settings

    # -- whether the bot may speak -----------------------------------------------------------

    def bot_holds(self, thread: Thread, *, at: float | None = None) -> bool:
        """Whether the bot would answer the customer's next message in ``thread`` (no store
        access; ``before_turn`` makes the same call and records it)."""
        if thread.state is ThreadState.CLOSED and self._settings.resume_on_reopen:
            return True  # the customer's message reopens it and gives it back to the bot
        return thread.control is Control.BOT or self._person_went_quiet(thread, at)

    def _person_went_quiet(self, thread: Thread, at: float | None) -> bool:
        hours = self._settings.resume_after_hours
        if hours is None or thread.control is not Control.HUMAN:
            return False
        # A person's reply touches the thread even when nothing changes hands, and every other
        # signal that matters changes it: its last change is the last time anyone on the
        # support side acted on it (or the bot escalated it).
        return (now() if at is None else at) - thread.updated_at >= hours * 3600.0

    async def before_turn(self, thread: Thread) -> tuple[Thread, str | None]:
        """The thread as the customer's new messages find it, and why the bot must stay silent
        (None: it may answer). A closed thread the customer writes in is reopened; a thread
        a person left alone past ``resume_after_hours`` comes back to the bot."""
        change = ThreadChange()
        if thread.state is ThreadState.CLOSED:
            change = self._reopened_by_customer()
        control = change.control or thread.control
        if control is Control.HUMAN and self._person_went_quiet(thread, None):
            log.info("nobody has acted on %s for %.0f h; the bot answers again",
                     thread.external_id, self._settings.resume_after_hours or 0.0)
            change = ThreadChange(change.state, Control.BOT)
            control = Control.BOT
        if change.state is not None or change.control is not None:
            thread = await self._store.update_thread(thread.id, change)
        if control is Control.HUMAN:
            return thread, HUMAN_HOLDS
        return thread, None

    def turn_change(self, stop_reason: StopReason, change: ThreadChange) -> ThreadChange:
        """What a finished turn does to its thread: the bot's ESCALATE hands it to a person,
        its CLOSE closes it; anything else is the turn's own change."""
        if stop_reason is StopReason.ESCALATED:
            return ThreadChange(ThreadState.ESCALATED, Control.HUMAN, change.title)
        if stop_reason is StopReason.CLOSED:
            return ThreadChange(ThreadState.CLOSED, change.control, change.title)
        return change

    # -- people acting through the daemon (the operator API) ------------------------------------

    async def person_took(self, thread: Thread) -> Thread:
        """A person answered through the operator API: they hold the thread (a closed one is
        open again)."""
        state = ThreadState.OPEN if thread.state is ThreadState.CLOSED else None
        return await self._store.update_thread(thread.id, ThreadChange(state, Control.HUMAN))

    async def handed_back(self, thread: Thread) -> Thread:
        """A person gave the thread back: the bot answers the customer's next message (an
        escalated thread is open again; a closed one stays closed)."""
        state = ThreadState.OPEN if thread.state is ThreadState.ESCALATED else None
        return await self._store.update_thread(thread.id, ThreadChange(state, Control.BOT))

    async def closed_by_person(self, thread: Thread) -> Thread:
        return await self._store.update_thread(thread.id, ThreadChange(state=ThreadState.CLOSED))

    # -- signals -----------------------------------------------------------------------------

    async def apply(self, signal: Signal) -> int:
        """Apply one signal to every thread of its ticket; returns how many changed hands or
        state."""
        threads = await self._store.find_threads_by_external(signal.thread_external_id)
        if not threads and signal.kind in TAKEOVERS:
            created = await self._create_thread(signal)
            threads = [created] if created is not None else []
        changed = 0
        for thread in threads:
            change = await self._transition(thread, signal)
            if change is None:
                if signal.kind is SignalKind.PERSON_REPLIED:
                    # Nothing changes hands, but a person answered: resume_after_hours counts
                    # from now.
                    await self._store.update_thread(thread.id, ThreadChange())
                continue
            await self._store.update_thread(thread.id, change)
            changed += 1
            log.info("%s on %s (%s %s at %.0f): %s", signal.kind.value, thread.external_id,
                     signal.by.value, signal.who or "?", signal.at, _describe(change))
        return changed

    async def _transition(self, thread: Thread, signal: Signal) -> ThreadChange | None:
        """The change ``signal`` makes to ``thread``; None when it makes none."""
        kind = signal.kind
        if kind in TAKEOVERS:
            wanted = ThreadChange(control=Control.HUMAN)
        elif kind is SignalKind.ASSIGNED_TO_BOT:
            if not self._settings.resume_on_assign:
                return None
            wanted = ThreadChange(control=Control.BOT)
        elif kind in (SignalKind.CLOSED, SignalKind.RESOLVED):
            wanted = ThreadChange(state=ThreadState.CLOSED)
        elif kind is SignalKind.REOPENED:
            if thread.state is not ThreadState.CLOSED:
                return None
            if signal.by is not Party.CUSTOMER:
                wanted = ThreadChange(state=ThreadState.OPEN)
            elif signal.source and signal.dedup_key and await self._store.inbox_seen(
                signal.source, signal.dedup_key
            ):
                return None  # a late redelivery of a message already answered reopens nothing
            else:
                wanted = self._reopened_by_customer()
        else:
            raise ValueError(f"unknown signal {kind!r}")
        if (wanted.state is None or wanted.state is thread.state) and (
            wanted.control is None or wanted.control is thread.control
        ):
            return None
        return wanted

    def _reopened_by_customer(self) -> ThreadChange:
        control = Control.BOT if self._settings.resume_on_reopen else None
        return ThreadChange(state=ThreadState.OPEN, control=control)

    async def _create_thread(self, signal: Signal) -> Thread | None:
        """The thread for a ticket the bot has not seen yet, so a person's takeover holds for
        the customer's later messages; None when the signal does not say whose ticket it is."""
        if signal.smith_external_id is None:
            return None
        agent_id = await self._agent_id(signal.agent_slug or self._default_agent)
        if agent_id is None:
            return None
        smith = await self._store.ensure_smith(
            signal.smith_external_id, agent_id, display_name=signal.display_name
        )
        try:
            return await self._store.ensure_thread(
                smith, signal.thread_external_id, signal.channel, metadata=dict(signal.ref)
            )
        except PermissionError:
            log.warning("%s belongs to another customer; not touched", signal.thread_external_id)
            return None

    async def _agent_id(self, slug: str) -> str | None:
        if slug not in self._agent_ids:
            try:
                self._agent_ids[slug] = (await self._store.get_agent(slug)).id
            except NotFound:
                log.warning("no agent %r to hold a thread a person took", slug)
                return None
        return self._agent_ids[slug]


def _describe(change: ThreadChange) -> str:
    parts = []
    if change.state is not None:
        parts.append(f"state → {change.state.value}")
    if change.control is not None:
        parts.append(f"control → {change.control.value}")
    return ", ".join(parts) or "no change"
