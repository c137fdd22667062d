"""What a started application hands the parts that drive it.

``bot.app.Application`` builds and starts every part; the commands that talk to the pipeline
(``triage``, ``chat``, ``simulate``) and the HTTP server are handed a ``Daemon`` (the handles
they use) or a ``Launch`` (a way to start one of their own), never the application itself, so
nothing but the CLI imports ``bot.app``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.config import Settings
from bot.connector import Connector
from bot.domain import InboundMessage

if TYPE_CHECKING:
    from bot.knowledge.backfill import VectorBackfill
    from bot.knowledge.jobs import SyncJobs
    from bot.knowledge.sync import KnowledgeSync
    from bot.metrics import Metrics
    from bot.pipeline.dispatcher import Dispatcher
    from bot.pipeline.events import TurnEvents
    from bot.pipeline.handoff import Handoff
    from bot.pipeline.outbox import OutboxSender
    from bot.store.store import Store


@dataclass(frozen=True, slots=True)
class Daemon:
    """The handles of a started application. ``connectors`` is the application's live mapping;
    ``dispatcher`` and ``outbox`` are None when it runs no pipeline."""

    settings: Settings
    store: Store
    events: TurnEvents
    metrics: Metrics
    connectors: Mapping[str, Connector]
    submit: Callable[[InboundMessage], Awaitable[bool]]
    submit_delivery: Callable[[Sequence[InboundMessage]], Awaitable[list[bool]]]
    ready: Callable[[], Awaitable[dict[str, bool]]]
    handoff: Handoff
    knowledge_sync: KnowledgeSync
    knowledge_jobs: SyncJobs
    dispatcher: Dispatcher | None
    outbox: OutboxSender | None
    # The background embedding of chunk vectors; None without an embeddings backend.
    vectors: VectorBackfill | None = None


class Launch(Protocol):
    """Starts an application of a command's own with ``settings`` (and ``connectors`` beside
    the configured ones, each passed through ``connector_wrapper``); stops it on exit. Start-up
    errors (``bot.store.migrate.SchemaBehind``) are raised on entering."""

    def __call__(
        self,
        settings: Settings,
        *,
        connectors: Sequence[Connector] = (),
        connector_wrapper: Callable[[Connector], Connector] | None = None,
    ) -> AbstractAsyncContextManager[Daemon]: ...
