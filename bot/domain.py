"""The shared vocabulary: agents, smiths, threads, runs, inbound messages and actions.

Plain typed values only. Every room of the daemon (store, pipeline, agent, connectors, HTTP)
speaks in these types; none of them knows how it is stored or sent.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

JSON = dict[str, Any]

# A customer's verdict on one of the bot's answers (CSAT).
Rating = Literal["up", "down"]


def new_id(prefix: str) -> str:
    """A random identifier with a readable prefix (``smt_…``, ``thr_…``, ``run_…``)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def now() -> float:
    """Unix time in seconds; every timestamp in the store is one of these."""
    return time.time()


class NotFound(LookupError):
    """The agent, smith, thread, run or file asked for does not exist (or is archived)."""


class ThreadState(StrEnum):
    OPEN = "open"
    ESCALATED = "escalated"
    CLOSED = "closed"


class Control(StrEnum):
    """Who answers in a thread: the bot, or a human who took it over."""

    BOT = "bot"
    HUMAN = "human"


class Party(StrEnum):
    """Who did something in a thread: its customer, a person on the support side, or the bot."""

    CUSTOMER = "customer"
    PERSON = "person"
    BOT = "bot"


class SignalKind(StrEnum):
    """What a channel saw happen to a thread that bears on who holds it."""

    PERSON_REPLIED = "person_replied"
    ASSIGNED_TO_PERSON = "assigned_to_person"
    ASSIGNED_TO_BOT = "assigned_to_bot"
    CLOSED = "closed"
    REOPENED = "reopened"
    RESOLVED = "resolved"


class StopReason(StrEnum):
    END_TURN = "end_turn"
    ESCALATED = "escalated"
    CLOSED = "closed"
    GUARDRAIL = "guardrail"
    MAX_TOOL_LOOPS = "max_tool_loops"
    HANDOFF = "handoff"
    ERROR = "error"


class ActionKind(StrEnum):
    REPLY = "reply"
    NOTE = "note"
    TAG = "tag"
    UNTAG = "untag"
    ASSIGN = "assign"
    CLOSE = "close"
    SNOOZE = "snooze"
    OPEN = "open"
    REACT = "react"
    ESCALATION_POST = "escalation_post"
    # An escalation told to people outside the thread's channel (a Slack escalation channel,
    # an outgoing webhook); see ``bot.pipeline.announce``.
    ANNOUNCE = "announce"


class InboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    """What an agent is made of; a published version freezes one of these."""

    slug: str
    name: str
    instructions: str
    model: str = ""
    tools: tuple[str, ...] = ("USER_INFO_LOOKUP", "ESCALATE", "CLOSE")
    knowledge: tuple[str, ...] = ()
    guardrails: JSON = field(default_factory=dict)
    max_tool_loops: int = 5

    def to_json(self) -> JSON:
        return {
            "slug": self.slug,
            "name": self.name,
            "instructions": self.instructions,
            "model": self.model,
            "tools": list(self.tools),
            "knowledge": list(self.knowledge),
            "guardrails": self.guardrails,
            "max_tool_loops": self.max_tool_loops,
        }

    @classmethod
    def from_json(cls, data: JSON) -> AgentDefinition:
        return cls(
            slug=data["slug"],
            name=data["name"],
            instructions=data["instructions"],
            model=data.get("model", ""),
            tools=tuple(data.get("tools", ())),
            knowledge=tuple(data.get("knowledge", ())),
            guardrails=dict(data.get("guardrails", {})),
            max_tool_loops=int(data.get("max_tool_loops", 5)),
        )


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    slug: str
    name: str
    live_version: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class AgentVersion:
    agent_id: str
    version: int
    definition: AgentDefinition
    note: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Smith:
    """One end-user identity under one agent: the isolation boundary."""

    id: str
    agent_id: str
    external_id: str | None
    display_name: str | None
    customer_id: str | None
    metadata: JSON
    auto_memory: bool
    pinned_version: int | None
    archived_at: float | None
    created_at: float
    updated_at: float

    @property
    def is_anonymous(self) -> bool:
        return self.external_id is None or self.external_id.startswith("anon:")


@dataclass(frozen=True, slots=True)
class Thread:
    """One conversation (ticket) under a smith."""

    id: str
    smith_id: str
    agent_id: str
    external_id: str
    channel: str
    state: ThreadState
    control: Control
    title: str | None
    metadata: JSON
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ThreadChange:
    """What a turn or a channel changes on a thread (None: leave as it is)."""

    state: ThreadState | None = None
    control: Control | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file or image a customer sent, stored as a reference (``url``, ``file_id``).

    ``data`` holds its bytes only while a turn needs them: a connector fetches them when the
    turn starts (``Connector.resolve_turn``), and they are never written to the inbox or a
    run. ``fetch_error`` says why a file the turn should have had could not be fetched.
    """

    name: str
    content_type: str
    size: int
    url: str | None = None
    file_id: str | None = None
    data: bytes | None = field(default=None, repr=False, compare=False)
    fetch_error: str | None = None

    def to_json(self) -> JSON:
        found: JSON = {
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "url": self.url,
            "file_id": self.file_id,
        }
        if self.fetch_error is not None:
            found["fetch_error"] = self.fetch_error
        return found

    @classmethod
    def from_json(cls, data: JSON) -> Attachment:
        return cls(
            name=data["name"],
            content_type=data["content_type"],
            size=int(data["size"]),
            url=data.get("url"),
            file_id=data.get("file_id"),
            fetch_error=data.get("fetch_error"),
        )


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer's message as a connector hands it to the inbox.

    ``dedup_key`` is unique per ``source``: the same delivery seen twice (a webhook retry, the
    poller and the webhook both) carries the same key and is stored once.
    """

    source: str
    dedup_key: str
    thread_external_id: str
    smith_external_id: str | None
    text: str
    agent_slug: str | None = None
    display_name: str | None = None
    profile: JSON = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    ref: JSON = field(default_factory=dict)
    sent_at: float | None = None

    def to_json(self) -> JSON:
        return {
            "source": self.source,
            "dedup_key": self.dedup_key,
            "thread_external_id": self.thread_external_id,
            "smith_external_id": self.smith_external_id,
            "text": self.text,
            "agent_slug": self.agent_slug,
            "display_name": self.display_name,
            "profile": self.profile,
            "attachments": [a.to_json() for a in self.attachments],
            "ref": self.ref,
            "sent_at": self.sent_at,
        }

    @classmethod
    def from_json(cls, data: JSON) -> InboundMessage:
        return cls(
            source=data["source"],
            dedup_key=data["dedup_key"],
            thread_external_id=data["thread_external_id"],
            smith_external_id=data.get("smith_external_id"),
            text=data.get("text", ""),
            agent_slug=data.get("agent_slug"),
            display_name=data.get("display_name"),
            profile=dict(data.get("profile") or {}),
            attachments=tuple(Attachment.from_json(a) for a in data.get("attachments") or ()),
            ref=dict(data.get("ref") or {}),
            sent_at=data.get("sent_at"),
        )


@dataclass(frozen=True, slots=True)
class Action:
    """An effect on the outside world decided by a turn; executed later from the outbox.

    ``id`` is deterministic for (run, position), so a resend after a crash can be matched with the
    earlier attempt (Slack message metadata, Intercom part lookup).
    """

    id: str
    run_id: str
    thread_id: str
    channel: str
    kind: ActionKind
    text: str | None = None
    tag: str | None = None
    assignee: str | None = None
    emoji: str | None = None
    until: float | None = None
    ref: JSON = field(default_factory=dict)
    attempt: int = 0

    def to_json(self) -> JSON:
        return {
            "text": self.text,
            "tag": self.tag,
            "assignee": self.assignee,
            "emoji": self.emoji,
            "until": self.until,
            "ref": self.ref,
        }


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """An action a turn decided on, before the run gives it an id and a place in the outbox."""

    kind: ActionKind
    text: str | None = None
    tag: str | None = None
    assignee: str | None = None
    emoji: str | None = None
    until: float | None = None
    ref: JSON = field(default_factory=dict)


def action_id(run_id: str, position: int) -> str:
    """The deterministic id of the ``position``-th action of a run."""
    return "act_" + uuid.uuid5(uuid.NAMESPACE_URL, f"supportbot:{run_id}:{position}").hex


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call inside a run, as the audit log keeps it."""

    seq: int
    call_id: str
    name: str
    arguments: JSON
    result: Any = None
    error: str | None = None
    latency_ms: float = 0.0

    def to_json(self) -> JSON:
        return {
            "seq": self.seq,
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a run (or one model call) used.

    ``estimated``: at least one call's server reported no usage, so its figures were
    counted by the server's tokenizer or estimated from characters (``bot.providers.tokens``,
    ``bot.providers.base.estimate_usage``), or no model ran (the offline responder). ``truncated``: at least one
    answer stopped at the output cap (``finish_reason: length``) and was cut short. Both
    travel in the run's ``usage`` JSON, so no column is needed for them.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False
    truncated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            estimated=self.estimated or other.estimated,
            truncated=self.truncated or other.truncated,
        )

    def to_json(self) -> JSON:
        data: JSON = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        # Only when set: the stored and served shape of every ordinary run stays as it was.
        if self.estimated:
            data["estimated"] = True
        if self.truncated:
            data["truncated"] = True
        return data

    @classmethod
    def from_json(cls, data: JSON | None) -> Usage:
        data = data or {}
        return cls(
            int(data.get("input_tokens") or 0),
            int(data.get("output_tokens") or 0),
            estimated=bool(data.get("estimated")),
            truncated=bool(data.get("truncated")),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One turn of the agent on a thread: the audit record."""

    id: str
    thread_id: str
    smith_id: str
    agent_id: str
    agent_version: int | None
    input: list[JSON]
    output_text: str
    stop_reason: StopReason
    model: str
    usage: Usage
    rag_results: list[JSON]
    error: str | None
    started_at: float
    finished_at: float
    tool_calls: tuple[ToolCallRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Signal:
    """Something that happened to a thread on its platform, as its connector reports it to the
    core (``ConnectorRuntime.report``); ``bot.pipeline.handoff`` decides what it changes.

    ``smith_external_id``, ``display_name``, ``agent_slug`` and ``ref`` (the channel's ids for
    the thread, kept as its metadata) let a person's takeover create a thread the bot has not
    seen yet, so it holds for the customer's later messages. ``source`` and ``dedup_key`` name
    the customer message that reopened a thread: a late redelivery of a message already in the
    inbox reopens nothing.
    """

    kind: SignalKind
    channel: str
    thread_external_id: str
    by: Party = Party.PERSON
    who: str | None = None
    at: float = field(default_factory=now)
    smith_external_id: str | None = None
    display_name: str | None = None
    agent_slug: str | None = None
    ref: JSON = field(default_factory=dict)
    source: str | None = None
    dedup_key: str | None = None
