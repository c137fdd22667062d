"""The connector seam: how a channel (Intercom, Slack, the web widget) plugs into the core.

A connector is a thin translator. Inbound, it turns platform payloads into ``InboundMessage``s
and hands them to ``ConnectorRuntime.submit``; outbound, ``execute`` turns one ``Action`` into
platform API calls. Connectors are found by name through the ``supportbot.connectors`` entry
point group, each entry a ``create(runtime) -> Connector | None`` factory (None: not configured).
The core never imports ``connectors/``.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar

from aiohttp import web

from bot.config import Settings
from bot.domain import JSON, Action, ActionKind, InboundMessage, PlannedAction, Smith, Thread
from bot.retry import RemoteError

if TYPE_CHECKING:
    from bot.pipeline.events import TurnEvents
    from bot.store.store import Store

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "supportbot.connectors"


class TurnOutcome(enum.Enum):
    """How a turn on a thread ended, as far as the channel's customer can tell."""

    COMPLETED = "completed"  # committed; its actions are in the outbox
    SKIPPED = "skipped"  # not answered (a human has the thread, someone else wrote)
    GAVE_UP = "gave_up"  # failed for good after its retries; nothing will be sent
    RETRYING = "retrying"  # failed; the messages go back to the inbox for another try


class LiveReply(ABC):
    """A reply the customer watches being written while the turn runs (Slack's streaming).

    ``append`` must return at once and never raise: the turn does not wait on the platform.
    The dispatcher ends every live reply exactly once, with ``finish`` when the turn produced a
    reply that will carry the message (what ``finish`` returns goes into that REPLY action's
    ``ref``, so whichever worker sends it completes this message instead of posting another),
    or with ``discard`` when nothing will (no reply, a failed turn, a lost lease).
    """

    @abstractmethod
    def append(self, delta: str) -> None:
        """More text of the reply."""

    @abstractmethod
    async def finish(self) -> JSON:
        """Flush what was appended; the ``ref`` for the REPLY action ({} if nothing showed)."""

    @abstractmethod
    async def discard(self) -> None:
        """Take down whatever was shown; must not raise."""


class ActionError(RemoteError):
    """An action that did not go through. ``retryable`` ones (the default) are tried again
    with backoff."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None):
        super().__init__(message, retryable=retryable, retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class ConnectorRuntime:
    """What the core lends a connector.

    ``submit`` takes one message; ``submit_all`` takes the messages that arrived together (one
    webhook, one polled conversation), oldest first: they enter the inbox in one transaction,
    so they are answered in one turn, never split across two.
    """

    settings: Settings
    store: Store
    submit: Callable[[InboundMessage], Awaitable[bool]]
    events: TurnEvents
    submit_delivery: Callable[[Sequence[InboundMessage]], Awaitable[list[bool]]] | None = None

    async def submit_all(self, messages: Sequence[InboundMessage]) -> list[bool]:
        """One delivery's messages into the inbox together; for each, False when it was
        stored before."""
        if self.submit_delivery is None:
            # A runtime put together by hand (a test double that takes single messages).
            return [await self.submit(message) for message in messages]
        return await self.submit_delivery(messages)


class Connector(ABC):
    """One channel. Subclasses set ``name`` (the channel of their threads and actions)."""

    name: ClassVar[str]

    def routes(self) -> Sequence[web.RouteDef]:
        """HTTP routes to mount on the daemon's server (webhooks, pages)."""
        return ()

    async def start(self) -> None:
        """Open clients and background work; called once, before any action."""

    async def stop(self) -> None:
        """Close what ``start`` opened; must not raise."""

    @abstractmethod
    async def execute(self, action: Action, thread: Thread) -> str | None:
        """Carry out one action; return the platform's id for what it created, if any.

        ``action.attempt > 0`` means an earlier try may have reached the platform: look for it
        (by the action id) before sending again. Raise ``ActionError`` on failure.
        """

    async def fetch_pending(
        self, *, since: float | None, limit: int | None
    ) -> AsyncIterator[list[InboundMessage]]:
        """Conversations waiting for an answer (pollers and triage), each as its waiting
        messages in order, yielded as soon as it is found, so a sweep's first turns start while
        the rest is still being listed. At most ``limit`` conversations; none by default."""
        return
        yield  # an async generator that finds nothing

    async def resolve_turn(
        self, smith: Smith, thread: Thread, messages: tuple[InboundMessage, ...]
    ) -> tuple[InboundMessage, ...]:
        """The turn's messages with what they only refer to filled in, fetched when the turn
        starts rather than before the platform's acknowledgement: the author's display name
        and profile, and each attachment's ``data`` (or its ``fetch_error``).

        Must not raise for a platform failure: degrade (no name, ``fetch_error`` set). The
        dispatcher bounds it with ``pipeline.resolve_timeout_seconds``. Returns ``messages``
        itself when there is nothing to fill in.
        """
        return messages

    async def user_info(self, smith: Smith, thread: Thread) -> JSON:
        """The platform's own data about this thread's customer (for USER_INFO_LOOKUP)."""
        return {}

    def escalation_actions(
        self, *, reason: str, priority: str, summary: str, thread: Thread
    ) -> list[PlannedAction]:
        """What ESCALATE does on this channel; channels override to tag, assign, post."""
        return default_escalation_actions(reason=reason, priority=priority, summary=summary)

    def close_actions(self, *, resolution_summary: str, thread: Thread) -> list[PlannedAction]:
        """What CLOSE does on this channel."""
        return default_close_actions(resolution_summary=resolution_summary)

    async def live_reply(self, thread: Thread, run_id: str, *, retry: bool) -> LiveReply | None:
        """A live reply for the turn ``run_id`` about to run on ``thread``, or None (the reply
        is sent whole by its REPLY action). ``retry`` means an earlier try of this turn may
        have left a partial reply behind."""
        return None

    async def turn_ended(
        self, thread: Thread, messages: Sequence[InboundMessage], outcome: TurnOutcome
    ) -> None:
        """A turn on ``thread`` for ``messages`` is over (working indicators come off); must
        return quickly and not raise."""

    def ready(self) -> bool:
        return True


def default_escalation_actions(*, reason: str, priority: str, summary: str) -> list[PlannedAction]:
    """ESCALATE on a channel with no opinion (also used when no connector serves the thread)."""
    return [
        PlannedAction(
            ActionKind.NOTE,
            text=f"Escalated ({priority}): {reason}\n\nSummary: {summary}",
        ),
        PlannedAction(
            ActionKind.REPLY,
            text="I've passed this to our support team; a person will follow up here shortly.",
        ),
    ]


def default_close_actions(*, resolution_summary: str) -> list[PlannedAction]:
    """CLOSE on a channel with no opinion (also used when no connector serves the thread)."""
    return [
        PlannedAction(ActionKind.NOTE, text=f"Resolved: {resolution_summary}"),
        PlannedAction(ActionKind.CLOSE),
    ]


ConnectorFactory = Callable[[ConnectorRuntime], "Connector | None"]


def discover_factories() -> dict[str, ConnectorFactory]:
    """Every installed connector factory, by entry-point name."""
    found: dict[str, ConnectorFactory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.load()
    return found
