"""The composition root: builds every part from the settings and owns start and stop.

Start order: database (migrated or checked) → agents → files knowledge synced (for the real
engine) → turn runner → chunk vectors embedded in the background (with an embeddings backend:
``bot.knowledge.backfill``; searches are keyword-only until they are complete) → connectors → outbox sender → dispatcher → triage scheduler (when
``[triage]`` has a schedule) → retention scheduler (when ``retention.days`` is set) → a sync
schedule per knowledge source that has one → HTTP server. Stop runs in reverse and only for what
started; in-flight turns drain up to
``pipeline.drain_timeout_seconds`` and whatever is left stays in the inbox.

Parts get what they need by constructor (the turn runner its settings, database, metrics and
the connectors; the HTTP server and the scheduled sweep a ``bot.daemon.Daemon``); commands that
start an application of their own are handed a ``launcher()``. Only ``bot.cli`` imports this.
"""

from __future__ import annotations

import gc
import logging
from collections import ChainMap
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Self

import aiohttp

from bot.agent.definition import definition_from_settings
from bot.config import Settings
from bot.connector import Connector, ConnectorRuntime, discover_factories
from bot.daemon import Daemon, Launch
from bot.domain import AgentDefinition, InboundMessage
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.jobs import SyncJobs
from bot.knowledge.sync import KnowledgeSync
from bot.metrics import Metrics
from bot.pipeline.announce import NOTIFY, Announcements, WebhookNotifier
from bot.pipeline.deliveries import DeliveryParser
from bot.pipeline.dispatcher import Dispatcher
from bot.pipeline.events import TurnEvents
from bot.pipeline.handoff import Handoff
from bot.pipeline.outbox import OutboxSender
from bot.pipeline.shedding import Shedding
from bot.pipeline.turn import TurnRunner
from bot.records import connector_runtime
from bot.store.database import INBOX_NOTICE, OUTBOX_NOTICE, Database
from bot.store.migrate import ensure_current
from bot.store.store import Store

if TYPE_CHECKING:
    from aiohttp import web

    from bot.knowledge.backfill import VectorBackfill
    from bot.scheduler import TriageScheduler

log = logging.getLogger(__name__)

RunnerFactory = Callable[["Application"], Awaitable[TurnRunner]]


class Application:
    """One running daemon. ``async with Application(settings) as app:`` starts and stops it."""

    def __init__(
        self,
        settings: Settings,
        *,
        runner_factory: RunnerFactory | None = None,
        connectors: Sequence[Connector] | None = None,
        serve_http: bool = True,
        run_pipeline: bool = True,
        connector_wrapper: Callable[[Connector], Connector] | None = None,
    ):
        self.settings = settings
        self.metrics = Metrics()
        self.events = TurnEvents()
        self.db = Database(settings.database)
        self.store = Store(self.db)
        self.handoff = Handoff(
            self.store, settings.handoff, default_agent=settings.default_agent
        )
        self.connectors: dict[str, Connector] = {}
        # Webhook bodies stored before the acknowledgement, parsed after it.
        self.deliveries = DeliveryParser(self.store.deliveries, settings.pipeline, self.connectors)
        self.shedding = Shedding(
            lag_threshold=settings.pipeline.shed_lag_ms / 1000,
            max_seconds=settings.pipeline.shed_max_seconds,
        )
        self._extra_connectors = list(connectors or ())
        self._runner_factory = runner_factory
        self._serve_http = serve_http
        self._run_pipeline = run_pipeline
        # Lets a caller stand between the outbox and each connector (``triage --dry-run``).
        self._connector_wrapper = connector_wrapper
        self.scheduler: TriageScheduler | None = None
        self.retention: TriageScheduler | None = None
        # One per process, shared by the schedules and the operator API (``/v1/knowledge``).
        # The runner searches this one too: one index and one matrix of vectors per process.
        knowledge = KnowledgeBase(self.db, settings.knowledge)
        self.knowledge_sync = KnowledgeSync(knowledge, settings)
        # With an embeddings backend: writes and searches leave embedding to this worker.
        self.vectors: VectorBackfill | None = None
        if knowledge.dense is not None:
            from bot.knowledge.backfill import VectorBackfill

            self.vectors = VectorBackfill(self.db, knowledge.dense)
        self.knowledge_jobs = SyncJobs(self.knowledge_sync)
        self.knowledge_schedulers: dict[str, TriageScheduler] = {}
        self.runner: TurnRunner | None = None
        self.runtime: ConnectorRuntime | None = None
        self.dispatcher: Dispatcher | None = None
        self.outbox: OutboxSender | None = None
        self.http_runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._started: list[Callable[[], Awaitable[None]]] = []
        self._running = False
        self._daemon: Daemon | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._running:
            raise RuntimeError("this Application is already running")
        self._running = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        # What start built (modules, settings, clients, the index) lives as long as the process:
        # move it out of the collector's way, so a full collection walks only what turns
        # allocate. Without this a gen-2 pass over the startup heap stalled every in-flight
        # request for 100-150 ms (bench/intercom_ingest.py's p99).
        gc.freeze()

    async def _start(self) -> None:
        self._started.append(self.db.dispose)
        await ensure_current(self.db, auto_upgrade=self.db.is_sqlite)
        for agent in self.settings.agents:
            await self.store.ensure_agent(agent.slug, agent.name)

        # One client session for the tools' outbound calls (configured HTTP tools, the
        # user-info service); the proxy variables apply, as they did with httpx.
        self._http = aiohttp.ClientSession(trust_env=True)
        self._started.append(self._close_http)
        self._started.append(self.knowledge_jobs.close)

        if self._runner_factory is None:
            from bot.agent.engine import build_runner

            # Files are cheap to re-read: every files source (``knowledge.paths`` among them) is
            # synced before the engine answers from it; remote sources sync on their schedule or
            # by ``kb sync``. A failed one is logged and serving goes on (the bot escalates).
            for source in self.settings.knowledge.all_sources():
                if source.kind == "files":
                    await self.knowledge_sync.sync_source(source.name)

            self.runner = await build_runner(
                self.settings, db=self.db, metrics=self.metrics, connectors=self.connectors,
                http=self._http, knowledge=self.knowledge_sync.kb,
            )
        else:
            self.runner = await self._runner_factory(self)
        # The knowledge base's embeddings client, when one is configured.
        self._started.append(self.knowledge_sync.kb.aclose)
        close_runner = getattr(self.runner, "aclose", None)
        if close_runner is not None:
            # The runner owns the model provider's HTTP client (the tools use ``http``).
            self._started.append(close_runner)
        if self.vectors is not None:  # stopped before the embeddings client closes
            await self.vectors.start()
            self._started.append(self.vectors.stop)

        # Connectors get the store's narrow side only; each its own copy, scoped to its channel.
        runtime = connector_runtime(
            self.settings,
            self.store,
            submit=self.submit,
            events=self.events,
            submit_delivery=self.submit_delivery,
            handoff=self.handoff,
            store_delivery=self.deliveries.submit,
        )
        self.runtime = runtime
        for connector in [*self._create_connectors(runtime), *self._extra_connectors]:
            if self._connector_wrapper is not None:
                connector = self._connector_wrapper(connector)
            if connector.name in self.connectors:
                raise RuntimeError(f"two connectors are named {connector.name!r}")
            await connector.start()
            self.connectors[connector.name] = connector
            self._started.append(connector.stop)
            log.info("connector %s started", connector.name)

        if self._serve_http or self._run_pipeline:
            # Before the HTTP server: deliveries a crashed process stored but never parsed are
            # picked up once their lease runs out.
            self.deliveries.shed_under(
                self.shedding, slots=1, every=self.settings.pipeline.shed_claim_interval_seconds
            )
            await self.deliveries.start()
            self._started.append(self.deliveries.stop)
            self._started.append(self.shedding.close)

        if self._run_pipeline:
            # Escalations announced beyond their channel: to other channels' people and to the
            # ``[[notify]]`` webhooks, whose sender stands beside the connectors in the outbox.
            notifier: Connector = WebhookNotifier(self.settings.notify)
            if self._connector_wrapper is not None:
                notifier = self._connector_wrapper(notifier)
            await notifier.start()
            self._started.append(notifier.stop)
            self.outbox = OutboxSender(
                store=self.store,
                settings=self.settings.pipeline,
                connectors=ChainMap(self.connectors, {NOTIFY: notifier}),
                metrics=self.metrics,
            )
            await self.outbox.start()
            self._started.append(self.outbox.stop)
            self.dispatcher = Dispatcher(
                store=self.store,
                settings=self.settings.pipeline,
                runner=self.runner,
                definitions=self.definition,
                events=self.events,
                metrics=self.metrics,
                connectors=self.connectors,
                on_committed=self.outbox.take,
                handoff=self.handoff,
                announcements=Announcements(self.settings, self.connectors),
            )
            # Short of CPU while webhooks arrive, acknowledgements go first: new turns and
            # parses wait (the platform gives up after a few seconds and delivers again; what
            # waits is stored).
            pipeline = self.settings.pipeline
            self.dispatcher.shed_under(
                self.shedding, slots=pipeline.shed_turns, every=pipeline.shed_claim_interval_seconds
            )
            await self.dispatcher.start()
            self._started.append(self.dispatcher.stop)
            # Work other processes commit wakes these loops too (PostgreSQL; SQLite polls).
            await self.db.listen(
                {INBOX_NOTICE: self.dispatcher.wake, OUTBOX_NOTICE: self.outbox.wake}
            )

        self._daemon = Daemon(
            settings=self.settings,
            store=self.store,
            events=self.events,
            metrics=self.metrics,
            connectors=self.connectors,
            submit=self.submit,
            submit_delivery=self.submit_delivery,
            ready=self.ready,
            handoff=self.handoff,
            knowledge_sync=self.knowledge_sync,
            knowledge_jobs=self.knowledge_jobs,
            dispatcher=self.dispatcher,
            outbox=self.outbox,
            vectors=self.vectors,
        )

        if self._run_pipeline:
            if self.settings.triage.scheduled:
                from bot.scheduler import TriageScheduler
                from bot.triage import scheduled_sweep

                self.scheduler = TriageScheduler(
                    self.settings.triage, self.store, partial(scheduled_sweep, self._daemon)
                )
                await self.scheduler.start()
                self._started.append(self.scheduler.stop)

            if self.settings.retention.days is not None:
                from bot.scheduler import RETENTION_JOB, TriageScheduler, retention_sweep
                from bot.store.erasure import Erasures

                self.retention = TriageScheduler(
                    self.settings.retention,
                    self.store,
                    retention_sweep(Erasures(self.db), self.settings.retention.days),
                    job=RETENTION_JOB,
                )
                await self.retention.start()
                self._started.append(self.retention.stop)

            await self._schedule_knowledge()

        if self._serve_http:
            # Requests (the web widget's, the operator API's) await the store statement by
            # statement: the asyncio engine is built now, not in the first of them.
            _ = self.db.engine
            # Imported here: commands that serve no HTTP (``triage --once``) skip its import.
            from aiohttp import web

            from bot.http.server import build_http_app, protocol_logger

            http_app = build_http_app(self._daemon)
            self.http_runner = web.AppRunner(http_app, access_log=None, shutdown_timeout=5,
                                             logger=protocol_logger())
            await self.http_runner.setup()
            site = web.TCPSite(
                self.http_runner, self.settings.http.host, self.settings.http.port
            )
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http.port
            self._started.append(self.http_runner.cleanup)

    async def _schedule_knowledge(self) -> None:
        """A schedule per ``[[knowledge.sources]]`` table that has one; one replica per tick."""
        scheduled = [s for s in self.settings.knowledge.all_sources() if s.scheduled]
        if not scheduled:
            return  # nothing to schedule: the scheduler's libraries stay unimported
        from bot.knowledge.sync import scheduled_sync
        from bot.scheduler import TriageScheduler

        for source in scheduled:
            scheduler = TriageScheduler(
                source,
                self.store,
                scheduled_sync(self.knowledge_sync, source.name),
                job=f"knowledge:{source.name}",
            )
            await scheduler.start()
            self._started.append(scheduler.stop)
            self.knowledge_schedulers[source.name] = scheduler

    async def stop(self) -> None:
        """Stop what started, in reverse order; errors are logged, never swallowed silently."""
        while self._started:
            stop = self._started.pop()
            try:
                await stop()
            except Exception:
                log.exception("error while stopping %s", getattr(stop, "__qualname__", stop))
        self._running = False
        self._daemon = None

    def _create_connectors(self, runtime: ConnectorRuntime) -> list[Connector]:
        wanted = self.settings.connectors
        factories = discover_factories(wanted)
        if wanted is not None:
            unknown = sorted(set(wanted) - set(factories))
            if unknown:
                raise RuntimeError(f"no connector installed named: {', '.join(unknown)}")
        created = []
        for name, factory in sorted(factories.items()):
            if wanted is not None and name not in wanted:
                continue
            connector = factory(runtime.for_channel(name))
            if connector is not None:
                created.append(connector)
        return created

    async def _close_http(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """The HTTP client session the tools share; exists while the application runs."""
        if self._http is None:
            raise RuntimeError("this Application is not running")
        return self._http

    # -- what the parts call ------------------------------------------------------------

    @property
    def daemon(self) -> Daemon:
        """The handles the parts that drive this application are given (once started)."""
        if self._daemon is None:
            raise RuntimeError("this Application has not started")
        return self._daemon

    def definition(self, slug: str) -> AgentDefinition:
        return definition_from_settings(self.settings, slug)

    def agent_slug_for(self, message: InboundMessage) -> str:
        slug = message.agent_slug or self.settings.default_agent
        self.settings.agent(slug)  # raises KeyError for an agent that is not configured
        return slug

    async def submit(self, message: InboundMessage) -> bool:
        """Durably accept an inbound message; False when it was a duplicate delivery."""
        (new,) = await self.submit_delivery([message])
        return new

    async def submit_delivery(self, messages: Sequence[InboundMessage]) -> list[bool]:
        """Durably accept one delivery's messages (oldest first) in one transaction, so they
        are answered in one turn; for each, False when it was stored before."""
        slugged = [(message, self.agent_slug_for(message)) for message in messages]
        news = await self.store.inbox_put_delivery(slugged)
        for message, new in zip(messages, news):
            self.metrics.inbound.labels(message.source, "new" if new else "duplicate").inc()
        if any(news) and self.dispatcher is not None:
            self.dispatcher.wake()
        return news

    async def ready(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        try:
            async with self.db.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
            checks["store"] = True
        except Exception:
            log.warning("readiness: the store does not answer", exc_info=True)
            checks["store"] = False
        for name, connector in self.connectors.items():
            checks[f"connector:{name}"] = connector.ready()
        return checks


def launcher(
    *, connectors: Sequence[Connector] = (), runner_factory: RunnerFactory | None = None
) -> Launch:
    """How a command (``triage``, ``chat``, ``simulate``) starts an application of its own,
    without HTTP. ``connectors`` join the configured ones and ``runner_factory`` replaces the
    daemon's own runner (tests).

    Unlike ``serve``, a command waits for the chunk vectors before its first turn (a first run
    with the local model: seconds for the bundled knowledge base): a one-off sweep answers as
    the daemon does once its vectors are ready, not by keywords alone, and the vectors it stored
    serve the next start. A backend that fails leaves it keyword-only, as in the daemon."""
    extra = list(connectors)

    @asynccontextmanager
    async def launch(
        settings: Settings,
        *,
        connectors: Sequence[Connector] = (),
        connector_wrapper: Callable[[Connector], Connector] | None = None,
    ) -> AsyncIterator[Daemon]:
        app = Application(
            settings,
            serve_http=False,
            connectors=[*extra, *connectors],
            runner_factory=runner_factory,
            connector_wrapper=connector_wrapper,
        )
        await app.start()
        try:
            if app.vectors is not None:
                await app.vectors.settled()
            yield app.daemon
        finally:
            await app.stop()

    return launch
