"""The async engine for SQLite and PostgreSQL behind one code path.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for write transactions: a deferred
transaction that reads and then writes fails with "database is locked" under concurrency,
while an immediate one queues on the busy timeout instead.

Hot paths hand over a whole transaction as one plain function of a ``Connection`` (``run_tx``,
``run_read``) instead of awaiting statement by statement. Through aiosqlite every cursor call is
a hop to the connection's thread and back (three or four per statement, plus begin, commit and
the pool's reset): a three-statement transaction costs about 5.7 ms of CPU that way, and 1.2 ms
as one unit on a worker thread over the plain ``sqlite3`` driver. On PostgreSQL the whole unit —
checkout, transaction, statements, commit, return to the pool — runs in one greenlet
(``greenlet_spawn``, what SQLAlchemy's asyncio layer runs each of those steps in separately):
three fewer greenlet hand-offs per unit, about a quarter of a one-statement unit's CPU. The
hottest write of all on SQLite, a webhook's stored delivery, skips SQLAlchemy (``run_driver``,
``driver_write``): a batch of six rows cost 300-330 µs of CPU as a unit on the writer thread,
130-180 µs as one statement through the driver.

Claim loops look at the store when woken, not on a fast poll. Within a process the writer wakes
them directly; across processes (replicas on one PostgreSQL) a unit that leaves work behind
``notify_in``s a channel in its transaction — delivered on commit, never for a rollback — and
``listen`` turns what other processes notify into the same wake-ups. SQLite is one process's
file in practice; there the slow poll stands in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.sql import Insert
from sqlalchemy.util import greenlet_spawn

from bot.config import DatabaseSettings
from bot.domain import new_id

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

_IMMEDIATE = "supportbot_immediate"
_WRITER_THREAD = "sqlite-writer"
# SQLite connections (and the threads running units of work on them) per process.
_SQLITE_POOL = 5
# The PostgreSQL channel wake-ups travel on; a payload is ``topic|origin``.
NOTICE_CHANNEL = "supportbot_work"
INBOX_NOTICE = "inbox"  # messages wait for the dispatcher
OUTBOX_NOTICE = "outbox"  # actions wait for a sender
_NOTIFY = text(f"SELECT pg_notify('{NOTICE_CHANNEL}', :payload)")
# How long to wait before listening again after the listening connection was lost.
_RELISTEN_SECONDS = 5.0
# A pooled PostgreSQL connection idle this long is pinged before it is handed out (a server
# restart, an idle timeout or a proxy may have closed it meanwhile); one back from a unit of
# work more recently is used as it is. Pinging every checkout (``pool_pre_ping``) cost three
# more round trips per unit — BEGIN, the ping, ROLLBACK: 6-7 of a turn's ~30 under load. A
# connection lost anyway fails its unit, and the pool then replaces every connection older.
PING_AFTER_IDLE_SECONDS = 1.0

T = TypeVar("T")


class SQLiteWriter:
    """This process's SQLite write transactions, one at a time on a thread of their own, first
    come first served — except that urgent ones (a webhook's acknowledgement waits on them) go
    before every ordinary one still waiting.

    The next unit starts on this thread the moment the last one commits. Queued in the event
    loop instead (a lock taken there, the unit sent to a worker thread), SQLite's lock stayed
    taken for two hops through the loop per write — the result back to the loop, the next
    writer's unit out to a thread — and under turn load a busy loop took longer over those
    hops than the units themselves: an acknowledgement's insert of 0.8 ms waited 4-7 ms (p50)
    behind the turn writes ahead of it, and 130-180 ms before urgent ones went first."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._urgent: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._ordinary: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, unit: Callable[[], T], *, urgent: bool = False) -> Future[T]:
        """Run ``unit`` on the writer thread after the units before it (after the urgent ones
        only, when ``urgent``); a future of its result. Cancelling the future before the unit
        starts takes it out of the queue."""
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the database is closed")
            (self._urgent if urgent else self._ordinary).append((unit, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=_WRITER_THREAD, daemon=True
                )
                self._thread.start()
            self._ready.notify()
        return future

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._urgent and not self._ordinary:
                    if self._closed:
                        return
                    self._ready.wait()
                unit, future = (self._urgent or self._ordinary).popleft()
            if not future.set_running_or_notify_cancel():
                continue  # its caller went away before it started
            try:
                result = unit()
            except BaseException as exc:  # noqa: BLE001 — handed to the caller, whatever it is
                future.set_exception(exc)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Run what is queued, then end the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join()


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be used as it stands; the message says why and what to do."""


def _check_sqlite_folder(database: str | None) -> None:
    """SQLite creates the file, not its folder, and needs to write beside it (journal, WAL).
    Checking first gives a clear error instead of "unable to open database file" — and keeps
    aiosqlite from failing in its worker thread, which outlives a failed connect."""
    if not database:
        return
    folder = Path(database).resolve().parent
    if not folder.is_dir():
        raise DatabaseUnavailable(
            f"the SQLite database {database} cannot be created: the folder {folder} does not "
            f"exist: create it or set database.url"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseUnavailable(
            f"the SQLite database {database} cannot be written: this user cannot write to the "
            f"folder {folder}: give it write access or set database.url"
        )


class Database:
    """Owns the engine; hands out write (``tx``) and read (``read``) transactions.

    ``round_trips`` counts the units of work (transactions) handed to the database, the
    measure a turn's store cost is budgeted in: each one is a wait for another thread or the
    server, whatever it holds. ``statements`` counts the statements inside them.
    """

    def __init__(self, settings: DatabaseSettings, *, connect_args: dict[str, Any] | None = None):
        self.url = settings.url
        self.round_trips = 0
        self.statements = 0
        # This process's name on the notice channel: its own notices are not news to it.
        self.origin = new_id("prc")
        self._listening: asyncio.Task[None] | None = None
        self.is_sqlite = settings.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": settings.echo, "connect_args": dict(connect_args or {})}
        if self.is_sqlite:
            kwargs["connect_args"].setdefault("timeout", 30)
            if ":memory:" in settings.url or settings.url.endswith("://"):
                raise ValueError("supportbot needs a file-backed SQLite database, not :memory:")
            _check_sqlite_folder(make_url(settings.url).database)
            # aiosqlite runs each connection on its own thread; a small queue pool is right.
            kwargs["pool_size"] = _SQLITE_POOL
            kwargs["max_overflow"] = 10
        else:
            # Every connection opened is kept (up to twice ``pool_size``, as many as before
            # this pool kept them): under turn load an overflow connection closed on its
            # return was opened again moments later, with its TCP and startup handshakes and
            # every hot statement prepared afresh — a quarter of a turn's connects and most
            # of its prepares. Most recently returned first (LIFO), so the connections a
            # steady load needs stay warm and the rest sit idle.
            kwargs["pool_size"] = 2 * settings.pool_size
            kwargs["max_overflow"] = 0
            kwargs["pool_use_lifo"] = True
        self._connect_args: dict[str, Any] = kwargs["connect_args"]
        self._engine_arguments = kwargs
        # SQLite's write transactions, each on the writer thread or holding it (``tx``).
        self._writer = SQLiteWriter() if self.is_sqlite else None
        # SQLite's units of work: the same file through the plain driver, on worker threads.
        self._sync_engine: Engine | None = None
        self._workers: ThreadPoolExecutor | None = None
        if self.is_sqlite:
            self._sync_engine = create_engine(
                make_url(settings.url).set(drivername="sqlite+pysqlite"),
                echo=settings.echo,
                connect_args=kwargs["connect_args"],
                pool_size=_SQLITE_POOL + 1,  # the readers' threads and the writer's
                max_overflow=0,
            )
            _sqlite_events(self._sync_engine)
            _count_statements(self, self._sync_engine)

    @cached_property
    def engine(self) -> AsyncEngine:
        """The asyncio engine (aiosqlite or asyncpg), built when first used: by ``tx`` and
        ``read`` and, on PostgreSQL, by every unit of work. Importing SQLAlchemy's asyncio
        layer also imports its ORM (the package's ``__init__`` does) and, on SQLite, aiosqlite:
        a SQLite start whose store work is all units (``run_tx``, ``run_read``) — ``triage
        --once`` up to its first turn — does without them."""
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.url, **self._engine_arguments)
        if self.is_sqlite:
            _sqlite_events(engine.sync_engine)
        else:
            _ping_when_idle(engine.sync_engine)
        _count_statements(self, engine.sync_engine)
        return engine

    @cached_property
    def _autocommit(self) -> Engine:
        """The same pool, each statement committed on its own (``run_each``, PostgreSQL)."""
        return self.engine.sync_engine.execution_options(isolation_level="AUTOCOMMIT")

    def insert_ignore(self, table: Table, index_elements: Sequence[str]) -> Insert:
        """``INSERT … ON CONFLICT (index_elements) DO NOTHING`` in this database's dialect: the
        one way the store writes a row unless it exists. Build it once where it is hot."""
        dialect_insert = sqlite.insert if self.is_sqlite else postgresql.insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on clean exit."""
        self.round_trips += 1
        if not self.is_sqlite:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        # SQLite has one writer at a time. Writers of this process queue on the writer thread
        # instead of inside SQLite, whose busy handler sleeps in steps of up to 100 ms while it
        # waits for the lock (other processes sharing the file still wait on the busy timeout).
        async with self._holding_writer(), self.engine.connect() as conn:
            conn = await conn.execution_options(**{_IMMEDIATE: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _holding_writer(self) -> AsyncIterator[None]:
        """The writer thread waits, its turn taken, until the block ends (a write transaction
        awaited statement by statement in the event loop, ``tx``)."""
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[None] = loop.create_future()
        leave = threading.Event()

        def enter() -> None:
            if not entered.done():
                entered.set_result(None)

        def hold() -> None:
            loop.call_soon_threadsafe(enter)
            leave.wait()

        held = self._writer.submit(hold)
        try:
            await entered
            yield
        finally:
            leave.set()
            held.cancel()  # not started yet: out of the queue

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (deferred on SQLite, so readers never queue behind writers)."""
        self.round_trips += 1
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def run_tx(self, work: Callable[[Connection], T], *, urgent: bool = False) -> T:
        """Run ``work`` (every statement of one write transaction) and commit when it returns;
        an exception rolls it back and propagates. ``urgent``: someone outside waits on it (a
        webhook's acknowledgement); on SQLite it goes before the other writers waiting."""
        self.round_trips += 1
        if self._sync_engine is None:
            return await greenlet_spawn(_unit, self.engine.sync_engine, work)
        return await self._written(lambda: self._run_unit(work, True), urgent=urgent)

    async def run_each(self, work: Callable[[Connection], T], *, urgent: bool = False) -> T:
        """Run ``work``, whose statements each stand on their own (one statement atomic by
        itself — a webhook's stored delivery — or a fenced update and a note when the fence
        refuses it): on PostgreSQL without a transaction around them, so one statement is one
        exchange with the server instead of three (``BEGIN``, it, ``COMMIT``), and one wait for
        a busy event loop instead of three; on SQLite a write transaction, as ``run_tx``
        (``urgent`` as there)."""
        if self._sync_engine is not None:
            return await self.run_tx(work, urgent=urgent)
        self.round_trips += 1
        return await greenlet_spawn(_unit, self._autocommit, work)

    async def run_driver(self, sql: str, params: Sequence[Any], *, urgent: bool = False) -> list[Any]:
        """One statement written for SQLite's driver (``?`` placeholders), in a write
        transaction of its own on the writer thread; the rows it returns (``urgent`` as in
        ``run_tx``). For the hottest write, a webhook's acknowledgement: SQLAlchemy's unit —
        checkout, ``BEGIN`` through its events, the compiled statement's parameters, commit,
        checkin — cost about three times the driver's work on a batch of a few rows."""
        if self._sync_engine is None:
            raise RuntimeError("run_driver is SQLite's")
        self.round_trips += 1
        return await self._written(lambda: self._run_driver(sql, params), urgent=urgent)

    async def run_on_writer(self, unit: Callable[[], T], *, urgent: bool = False) -> T:
        """``unit`` (plain driver work, ``driver_write``) as one unit on SQLite's writer
        thread; its result (``urgent`` as in ``run_tx``)."""
        if self._writer is None:
            raise RuntimeError("run_on_writer is SQLite's")
        self.round_trips += 1
        return await self._written(unit, urgent=urgent)

    def queue_on_writer(self, unit: Callable[[], Any], *, urgent: bool = False) -> None:
        """Queue ``unit`` on SQLite's writer thread (``urgent`` as in ``run_tx``); nobody waits
        on it here: ``unit`` hands its outcome back itself (``bot.store.deliveries.AckBatch``,
        which resolves a whole batch of callers with one event-loop callback)."""
        if self._writer is None:
            raise RuntimeError("queue_on_writer is SQLite's")
        self.round_trips += 1
        self._writer.submit(unit, urgent=urgent)

    def driver_write(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """``run_driver``'s statement run here and now: on the writer thread only, inside a
        unit queued there (``queue_on_writer``)."""
        if threading.current_thread().name != _WRITER_THREAD:
            raise RuntimeError("driver_write runs on SQLite's writer thread only")
        return self._run_driver(sql, params)

    async def _written(self, unit: Callable[[], T], *, urgent: bool) -> T:
        """``unit``'s result from the writer thread, its caller resumed two event-loop
        iterations after it ends: its outcome set by one callback the writer thread schedules,
        then the caller woken. (``asyncio.wrap_future`` under ``asyncio.shield`` took three —
        the outcome copied, the shield's inner future passed on, the caller woken — and under
        turn load each iteration is a few milliseconds of the turns' work: an acknowledgement
        waits on this, and on nothing else as often.)"""
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[T] = loop.create_future()

        def ended(queued: Future[T]) -> None:  # on the writer thread, or here when cancelled
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, outcome, queued)

        queued = self._writer.submit(unit, urgent=urgent)
        queued.add_done_callback(ended)
        try:
            return await outcome
        except asyncio.CancelledError:
            # A started unit runs to its end on its thread; keep the caller until it has (one
            # still in the writer's queue is dropped from it).
            if not queued.cancel():
                await asyncio.wait([asyncio.wrap_future(queued)])
            raise

    def _run_driver(self, sql: str, params: Sequence[Any]) -> list[Any]:
        assert self._sync_engine is not None
        pooled = self._sync_engine.raw_connection()
        try:
            driver = pooled.driver_connection
            assert driver is not None
            driver.execute("BEGIN IMMEDIATE")
            try:
                rows: list[Any] = driver.execute(sql, params).fetchall()
                driver.commit()
            except BaseException:
                driver.rollback()
                raise
            self.statements += 2  # counted as a unit's BEGIN and statement are
            return rows
        finally:
            pooled.close()

    async def run_read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read-only transaction (one consistent snapshot)."""
        self.round_trips += 1
        if self._sync_engine is None:
            return await greenlet_spawn(_unit, self.engine.sync_engine, work)
        return await self._on_worker(work, immediate=False)

    async def _on_worker(self, work: Callable[[Connection], T], *, immediate: bool) -> T:
        if self._workers is None:
            self._workers = ThreadPoolExecutor(_SQLITE_POOL, thread_name_prefix="sqlite")
        unit = asyncio.get_running_loop().run_in_executor(
            self._workers, self._run_unit, work, immediate
        )
        return await self._until_done(unit)

    @staticmethod
    async def _until_done(unit: asyncio.Future[T]) -> T:
        try:
            return await asyncio.shield(unit)
        except asyncio.CancelledError:
            await asyncio.wait([unit])  # a started unit runs to its end on its thread
            raise

    def _run_unit(self, work: Callable[[Connection], T], immediate: bool) -> T:
        assert self._sync_engine is not None
        with self._sync_engine.connect() as conn:
            if immediate:
                conn.execution_options(**{_IMMEDIATE: True})
            with conn.begin():
                return work(conn)

    def notify_in(self, conn: Connection, topic: str) -> None:
        """Tell the other processes, once this transaction commits, that it left work for
        ``topic``'s claim loop (PostgreSQL only; a statement of the unit, not a round trip)."""
        if not self.is_sqlite:
            conn.execute(_NOTIFY, {"payload": f"{topic}|{self.origin}"})

    async def listen(self, handlers: dict[str, Callable[[], None]]) -> None:
        """Call ``handlers[topic]`` for each notice another process commits (PostgreSQL only),
        on a connection of its own, listening again whenever it is lost."""
        if self.is_sqlite or self._listening is not None:
            return
        self._listening = asyncio.create_task(self._listen(handlers), name="store:listen")

    async def _listen(self, handlers: dict[str, Callable[[], None]]) -> None:
        import asyncpg

        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

        def on_notice(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            topic, _, origin = payload.partition("|")
            handler = handlers.get(topic)
            if handler is not None and origin != self.origin:
                handler()

        first = True
        while True:
            try:
                conn = await asyncpg.connect(dsn, **self._connect_args)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot listen for store notices (%s); polling until it can", exc)
                await asyncio.sleep(_RELISTEN_SECONDS)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                await conn.add_listener(NOTICE_CHANNEL, on_notice)
                if not first:
                    for handler in handlers.values():
                        handler()  # what was notified while nobody listened
                first = False
                await lost.wait()
                log.warning("lost the store notice connection; listening again")
            finally:
                await conn.close(timeout=2)

    async def dispose(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
            self._listening = None
        if "engine" in self.__dict__:  # built (``engine``)
            await self.engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self._workers is not None:
            self._workers.shutdown()
            self._workers = None
        if self._writer is not None:
            self._writer.close()
            self._writer = SQLiteWriter()  # a disposed engine connects again when used


def _unit(engine: Engine, work: Callable[[Connection], T]) -> T:
    """One unit of work on PostgreSQL, run inside ``greenlet_spawn``: committed when ``work``
    returns, rolled back when it raises."""
    with engine.connect() as conn, conn.begin():
        return work(conn)


def _settle(outcome: asyncio.Future[T], queued: Future[T]) -> None:
    """``queued``'s outcome into ``outcome``, in the event loop (unless its caller gave up)."""
    if outcome.done():
        return
    if queued.cancelled():
        outcome.cancel()
    elif (error := queued.exception()) is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(queued.result())


def _count_statements(db: Database, engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(*_: Any) -> None:
        db.statements += 1


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before handing it out only when it sat idle for
    ``PING_AFTER_IDLE_SECONDS``; a failed ping makes the pool connect afresh."""

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or back from use just now
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection did not answer: {exc}") from exc


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite's own
        # implicit BEGIN is always deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def null_pool_engine(url: str) -> AsyncEngine:
    """A throwaway engine for one-shot work (migrations) that must not keep connections."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    return create_async_engine(url, poolclass=NullPool)
