"""The connector seam: how a channel (Intercom, Slack, the web widget) plugs into the core.

A connector is a thin translator. Inbound, it turns platform payloads into ``InboundMessage``s
and hands them to ``ConnectorRuntime.submit``, and what happens to a thread on its platform (a
person replied, assigned, closed, reopened, resolved) into ``Signal``s for
``ConnectorRuntime.report``: who holds a thread is the core's decision (``bot.pipeline.handoff``),
never the connector's. Outbound, ``execute`` turns one ``Action`` into
platform API calls. Connectors are found by name through the ``supportbot.connectors`` entry
point group, each entry a ``create(runtime) -> Connector | None`` factory (None: not configured).
The core never imports ``connectors/``.

A connector reaches the core only through its ``ConnectorRuntime``: the store stays behind it
(``ConnectorRecords`` and, for a channel that keeps visitors of its own, ``VisitorRecords``,
which the application implements over the store), so connectors import nothing from
``bot.store`` or ``bot.pipeline`` (``tests/test_architecture.py`` checks it).
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from bot.config import Settings
from bot.domain import (
    JSON,
    Action,
    ActionKind,
    Agent,
    InboundMessage,
    NotFound,
    PlannedAction,
    Rating,
    Run,
    Signal,
    Smith,
    Thread,
)
from bot.retry import RemoteError

if TYPE_CHECKING:
    from aiohttp import web

    from bot.pipeline.events import TurnEvents
    from bot.pipeline.handoff import Handoff

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
    def reset(self) -> None:
        """Withdraw everything appended so far (the turn's answer is starting over, e.g. a
        fallback model after one that failed mid-stream): the text appended after this
        replaces it. Like ``append``, it returns at once and never raises."""

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


class UnreadableDelivery(ValueError):
    """A stored delivery no retry will ever parse (its payload is not what the platform
    documents): raised by ``Connector.parse_delivery``; the delivery is logged and kept,
    marked failed with this message as its reason, for an operator to look at."""


@dataclass(frozen=True, slots=True)
class RawDelivery:
    """A verified webhook delivery as the platform sent it, stored before the acknowledgement
    and parsed after it (``ConnectorRuntime.submit_raw``, ``Connector.parse_delivery``).

    ``dedup_key``: the platform's id for the delivery (a redelivery carries the same one);
    ``order_key``: what orders parsing (a conversation: its deliveries are parsed one after
    another in arrival order) — the conversation's thread external id, which is how erasing
    a thread finds its deliveries not parsed yet; ``payload``: what the connector already decoded from ``body``,
    handed to the parse in the same process only (None after a restart: decode ``body``).
    """

    dedup_key: str
    order_key: str
    body: bytes
    payload: Any = None


class ConnectorRecords(Protocol):
    """The few records a connector may read or write, whatever its channel; the application
    implements it over the store (``bot.records.StoreRecords``). Connectors call the
    ``ConnectorRuntime`` methods of the same names, which scope cursors and inbox look-ups to
    the connector's channel."""

    async def get_cursor(self, name: str) -> JSON | None: ...

    async def set_cursor(self, name: str, value: JSON) -> None: ...

    async def inbox_seen(self, source: str, dedup_key: str) -> bool: ...

    async def get_run(self, run_id: str) -> Run:
        """Raises ``NotFound``."""
        ...

    async def find_threads_by_external(self, external_id: str) -> list[Thread]: ...

    async def find_smith(self, external_id: str, agent_id: str) -> Smith | None: ...

    async def get_smith(self, smith_id: str, *, include_archived: bool = False) -> Smith:
        """Raises ``NotFound``."""
        ...

    async def run_of_message(self, channel: str, remote_id: str) -> str | None: ...

    async def latest_run(self, thread_id: str) -> str | None: ...

    async def rate(
        self, run_id: str, *, rater: str, rating: Rating, comment: str | None, source: str
    ) -> None: ...

    async def withdraw_rating(self, run_id: str, *, rater: str, rating: Rating) -> None: ...


class VisitorRecords(Protocol):
    """Who a channel's own visitors are (the web widget's sessions): a channel with no helpdesk
    behind it makes its customers itself, links a signed-in identity to the anonymous smith it
    claimed, and mints session tokens with the key the HTTP API checks them with."""

    async def ensure_agent(self, slug: str, name: str) -> Agent: ...

    async def find_smith(self, external_id: str, agent_id: str) -> Smith | None: ...

    async def get_smith(self, smith_id: str, *, include_archived: bool = False) -> Smith:
        """Raises ``NotFound``."""
        ...

    async def ensure_smith(
        self,
        external_id: str | None,
        agent_id: str,
        *,
        display_name: str | None = None,
        customer_id: str | None = None,
        metadata: JSON | None = None,
        auto_memory: bool | None = None,
    ) -> Smith:
        """Upsert on ``(external_id, agent_id)``: given non-None fields are updated."""
        ...

    async def patch_smith(self, smith_id: str, **fields: Any) -> Smith:
        """Set the given fields (``display_name``, ``customer_id``, ``metadata``,
        ``auto_memory``), None included: a field left out is left alone."""
        ...

    async def alias_smith(self, agent_id: str, external_id: str) -> Smith | None:
        """The live smith ``external_id`` (a signed-in identity) was claimed onto, if any."""
        ...

    async def is_claimed(self, smith_id: str) -> bool: ...

    async def add_alias(self, agent_id: str, external_id: str, smith_id: str) -> bool:
        """Record ``external_id → smith``; False when that identity already has a live one."""
        ...

    async def token_key(self) -> bytes:
        """The key smith tokens are signed with, shared by every replica."""
        ...

    async def stored_file(self, file_id: str, *, smith_id: str) -> bytes | None:
        """The content of a file ``smith_id`` uploaded (``POST /v1/files``), for the turn that
        carries it; None when there is no such file of theirs."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectorRuntime:
    """What the core lends a connector, and all it lends: no store.

    ``submit`` takes one message; ``submit_all`` takes the messages that arrived together (one
    webhook, one polled conversation), oldest first: they enter the inbox in one transaction,
    so they are answered in one turn, never split across two. ``report`` tells handoff what
    happened on the platform. The look-ups are those a translator needs: its own cursor, whether
    a message of its channel reached the inbox, the run an action came from (to reconcile a
    retried send), a thread or a smith by external id. ``visitors`` is there for a channel that
    keeps its own visitors (None when the application lends none).

    The application hands each connector a copy scoped to its channel (``for_channel``); its
    cursors are named ``<channel>.<name>``.
    """

    settings: Settings
    records: ConnectorRecords
    submit: Callable[[InboundMessage], Awaitable[bool]]
    events: TurnEvents
    handoff: Handoff
    submit_delivery: Callable[[Sequence[InboundMessage]], Awaitable[list[bool]]] | None = None
    visitors: VisitorRecords | None = None
    channel: str | None = None
    store_delivery: Callable[[str, RawDelivery], Awaitable[bool]] | None = None

    def for_channel(self, channel: str) -> ConnectorRuntime:
        """This runtime for the connector of ``channel``."""
        return replace(self, channel=channel)

    async def submit_all(self, messages: Sequence[InboundMessage]) -> list[bool]:
        """One delivery's messages into the inbox together; for each, False when it was
        stored before."""
        if self.submit_delivery is None:
            # A runtime put together by hand (a test double that takes single messages).
            return [await self.submit(message) for message in messages]
        return await self.submit_delivery(messages)

    async def submit_raw(self, delivery: RawDelivery) -> bool:
        """Store a verified delivery durably, to be parsed after the acknowledgement by this
        connector's ``parse_delivery``; False when it was stored before (a redelivery).
        Acknowledge the platform only after this returns."""
        if self.store_delivery is None:
            raise RuntimeError("this connector runtime stores no raw deliveries")
        return await self.store_delivery(self._own_channel(), delivery)

    async def report(self, signal: Signal) -> int:
        """Tell the core what happened to a thread on the platform; returns how many threads
        changed hands or state. Call it before acknowledging the platform's event, like
        ``submit``: a signal that raises was not applied."""
        return await self.handoff.apply(signal)

    def bot_holds(self, thread: Thread) -> bool:
        """Whether the bot may answer in ``thread`` now (for a connector that drops what it
        will not answer before it reaches the inbox)."""
        return self.handoff.bot_holds(thread)

    # -- look-ups ---------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> JSON | None:
        """The connector's cursor ``name`` (a poller's position), None before the first set."""
        return await self.records.get_cursor(self._scoped(name))

    async def set_cursor(self, name: str, value: JSON) -> None:
        await self.records.set_cursor(self._scoped(name), value)

    async def inbox_seen(self, dedup_key: str) -> bool:
        """Whether a message of this channel with ``dedup_key`` reached the inbox."""
        return await self.records.inbox_seen(self._own_channel(), dedup_key)

    async def find_run(self, run_id: str) -> Run | None:
        """The run (turn) an action came from, for finding what an earlier try sent."""
        try:
            return await self.records.get_run(run_id)
        except NotFound:
            return None

    async def find_threads_by_external(self, external_id: str) -> list[Thread]:
        """Every agent's thread for one ticket (a connector knows the ticket, not the agent)."""
        return await self.records.find_threads_by_external(external_id)

    async def find_smith(self, external_id: str, agent_id: str) -> Smith | None:
        """The live smith with ``external_id`` under the agent ``agent_id``."""
        return await self.records.find_smith(external_id, agent_id)

    async def get_smith(self, smith_id: str, *, include_archived: bool = False) -> Smith:
        """A smith by id (the owner of a thread); raises ``NotFound``."""
        return await self.records.get_smith(smith_id, include_archived=include_archived)

    # -- customer satisfaction ----------------------------------------------------------------

    async def run_of_message(self, remote_id: str) -> str | None:
        """The run whose reply this channel delivered as message ``remote_id`` (what its send
        returned), so a reaction on that message rates that answer."""
        return await self.records.run_of_message(self._own_channel(), remote_id)

    async def latest_run(self, thread_id: str) -> str | None:
        """The id of the thread's latest run (the answer a conversation rating is about)."""
        return await self.records.latest_run(thread_id)

    async def rate(
        self, run_id: str, *, rater: str, rating: Rating, comment: str | None = None,
        source: str,
    ) -> None:
        """Record (or replace) ``rater``'s verdict on a run."""
        await self.records.rate(run_id, rater=rater, rating=rating, comment=comment,
                                source=source)

    async def withdraw_rating(self, run_id: str, *, rater: str, rating: Rating) -> None:
        """Take back ``rater``'s verdict if it is still ``rating`` (a removed reaction)."""
        await self.records.withdraw_rating(run_id, rater=rater, rating=rating)

    def _own_channel(self) -> str:
        if self.channel is None:
            raise RuntimeError("this connector runtime is scoped to no channel (for_channel)")
        return self.channel

    def _scoped(self, name: str) -> str:
        return f"{self._own_channel()}.{name}"


class Connector(ABC):
    """One channel. Subclasses set ``name`` (the channel of their threads and actions).

    Capabilities a channel may declare: its own dry-run mode (``dry_run``), posting a triage
    sweep's digest (``posts_digest`` / ``post_digest``). The core asks for these, never for a
    channel by name.
    """

    name: ClassVar[str]
    # Whether ``post_digest`` posts a triage digest on this channel.
    posts_digest: ClassVar[bool] = False
    # Whether what a person writes through the operator API reaches this channel's customer
    # without being sent (the channel shows the thread's stored messages: the web widget).
    # Elsewhere a person answers in the channel's own tool, which tells the core (``report``).
    shows_person_messages: ClassVar[bool] = False

    @property
    def announces_escalations(self) -> bool:
        """Whether this connector tells people of other channels' escalations: ``execute``
        takes ``ANNOUNCE`` actions whose thread is not on this channel (``bot.pipeline.announce``
        builds them; ``action.ref`` holds the event, with ``console_url``)."""
        return False

    def routes(self) -> Sequence[web.RouteDef]:
        """HTTP routes to mount on the daemon's server (webhooks, pages)."""
        return ()

    async def parse_delivery(self, delivery: RawDelivery) -> None:
        """Turn a delivery this connector stored with ``ConnectorRuntime.submit_raw`` into
        inbox messages and signals, after the platform was answered. Called once per delivery
        in the order of its ``order_key``, again after a crash (the inbox dedups messages);
        raise to have it tried again later, or ``UnreadableDelivery`` when no retry can help."""
        raise NotImplementedError(f"the {self.name} connector stores no raw deliveries")

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

    def dry_run(self) -> Connector:
        """This connector kept from sending anything customer-facing (``triage --dry-run``).

        By default a stand-in that records every action as sent (remote id ``dry-run``) and
        sends nothing; a channel with a dry-run mode of its own returns itself in that mode.
        Called before ``start``."""
        return DryRunConnector.around(self)

    async def post_digest(self, destination: str, text: str) -> None:
        """Post a triage sweep's digest to ``destination`` (a channel of this platform), for
        connectors that declare ``posts_digest``. Raise ``ActionError`` when it did not go
        through."""
        raise NotImplementedError(f"the {self.name} connector does not post digests")


class DryRunConnector(Connector):
    """A connector kept from sending: actions are logged and recorded as sent (remote id
    ``dry-run``); everything else is the real connector's (listing pending work, user info,
    what ESCALATE and CLOSE mean there, posting a digest, which no customer sees)."""

    name: ClassVar[str] = "dry-run"

    def __init__(self, inner: Connector):
        self.inner = inner

    @classmethod
    def around(cls, inner: Connector) -> Connector:
        # The channel name is a class attribute of connectors; give the stand-in the same one.
        stand_in = type(
            f"DryRun{type(inner).__name__}",
            (cls,),
            {"name": inner.name, "posts_digest": inner.posts_digest,
             "shows_person_messages": inner.shows_person_messages},
        )
        wrapped: Connector = stand_in(inner)
        return wrapped

    def routes(self) -> Sequence[web.RouteDef]:
        return self.inner.routes()

    async def parse_delivery(self, delivery: RawDelivery) -> None:
        await self.inner.parse_delivery(delivery)

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def execute(self, action: Action, thread: Thread) -> str | None:
        what = " ".join((action.text or action.tag or "").split())
        log.info(
            "dry run: not sending %s on %s: %s",
            action.kind.value,
            thread.external_id,
            what if len(what) <= 200 else what[:199] + "…",
        )
        return "dry-run"

    async def fetch_pending(
        self, *, since: float | None, limit: int | None
    ) -> AsyncIterator[list[InboundMessage]]:
        async for messages in self.inner.fetch_pending(since=since, limit=limit):
            yield messages

    async def user_info(self, smith: Smith, thread: Thread) -> JSON:
        return await self.inner.user_info(smith, thread)

    async def resolve_turn(
        self, smith: Smith, thread: Thread, messages: tuple[InboundMessage, ...]
    ) -> tuple[InboundMessage, ...]:
        # Only reads (names, files): a dry run's turns see what a real one would.
        return await self.inner.resolve_turn(smith, thread, messages)

    def escalation_actions(
        self, *, reason: str, priority: str, summary: str, thread: Thread
    ) -> list[PlannedAction]:
        return self.inner.escalation_actions(
            reason=reason, priority=priority, summary=summary, thread=thread
        )

    def close_actions(self, *, resolution_summary: str, thread: Thread) -> list[PlannedAction]:
        return self.inner.close_actions(resolution_summary=resolution_summary, thread=thread)

    def ready(self) -> bool:
        return self.inner.ready()

    @property
    def announces_escalations(self) -> bool:
        return self.inner.announces_escalations

    def dry_run(self) -> Connector:
        return self

    async def post_digest(self, destination: str, text: str) -> None:
        await self.inner.post_digest(destination, text)


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


def discover_factories(names: Collection[str] | None = None) -> dict[str, ConnectorFactory]:
    """The installed connector factories by entry-point name: those in ``names``, or every
    one. A connector's package is imported only when it is asked for (a command configured
    for one channel does not pay for importing the others)."""
    found: dict[str, ConnectorFactory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if names is None or entry.name in names:
            found[entry.name] = entry.load()
    return found
