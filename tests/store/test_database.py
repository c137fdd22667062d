"""A SQLite database that cannot be created where it is configured fails up front, clearly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.config import DatabaseSettings
from bot.store.database import Database, DatabaseUnavailable
from tests.conftest import Ticks


def test_a_sqlite_file_in_a_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "missing"
    with pytest.raises(DatabaseUnavailable, match=f"the folder {folder} does not exist: create it"):
        Database(DatabaseSettings(url=f"sqlite:///{folder}/supportbot.db"))


def test_a_sqlite_file_in_a_folder_this_user_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, for whom every folder is writable: the answer is what is checked.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode))
    with pytest.raises(DatabaseUnavailable, match=f"cannot write to the folder {tmp_path}: give it write"):
        Database(DatabaseSettings(url=f"sqlite:///{tmp_path}/supportbot.db"))


@pytest.mark.postgres
async def test_a_notice_committed_by_one_process_wakes_another(pg_url: str) -> None:
    """Across processes a claim loop is woken by PostgreSQL notices: delivered when the
    transaction commits, not for a rollback, and never back to the process that sent it."""
    import asyncio

    sender, receiver = Database(DatabaseSettings(url=pg_url)), Database(DatabaseSettings(url=pg_url))
    heard: dict[str, list[str]] = {"receiver": [], "sender": []}
    woken = asyncio.Event()

    def on_inbox(who: str) -> None:
        heard[who].append("inbox")
        woken.set()

    try:
        await receiver.listen({"inbox": lambda: on_inbox("receiver")})
        await sender.listen({"inbox": lambda: on_inbox("sender")})
        await asyncio.sleep(0.5)  # both connections listening

        class Undone(Exception):
            pass

        def rolled_back(conn: object) -> None:
            sender.notify_in(conn, "inbox")  # type: ignore[arg-type]
            raise Undone

        with pytest.raises(Undone):
            await sender.run_tx(rolled_back)
        await asyncio.sleep(0.3)
        assert heard == {"receiver": [], "sender": []}

        await sender.run_tx(lambda conn: sender.notify_in(conn, "inbox"))
        await asyncio.wait_for(woken.wait(), 10)
        await asyncio.sleep(0.3)
        assert heard == {"receiver": ["inbox"], "sender": []}
    finally:
        await sender.dispose()
        await receiver.dispose()


@pytest.mark.postgres
async def test_a_pooled_connection_closed_while_idle_is_replaced_not_handed_out(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection that sat idle is pinged before use, and one the server closed
    meanwhile (a restart, an idle timeout) is replaced; one back from use just now is not
    pinged (every ping is a BEGIN, the ping and a ROLLBACK)."""
    import asyncpg
    from sqlalchemy import text
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
    from sqlalchemy.engine import Connection

    from bot.store import database

    pings = 0
    real_ping = AsyncAdapt_asyncpg_connection.ping

    def counted_ping(self: AsyncAdapt_asyncpg_connection) -> None:
        nonlocal pings
        pings += 1
        real_ping(self)

    def backend(conn: Connection) -> int:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted_ping)
    db = Database(DatabaseSettings(url=pg_url))
    try:
        first = await db.run_read(backend)
        assert await db.run_read(backend) == first  # back from use just now: no ping
        assert pings == 0

        admin = await asyncpg.connect(pg_url.replace("+asyncpg", ""), timeout=5)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
        again = await db.run_read(backend)  # pinged, found closed, replaced: the unit runs
        assert pings == 1
        assert again != first
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_connections_opened_in_a_burst_are_kept_for_the_next(pg_url: str) -> None:
    """A burst of units beyond ``pool_size`` opens connections that stay pooled: the next
    burst reuses them instead of connecting again (and preparing every statement afresh)."""
    import asyncio

    from sqlalchemy import event, text

    db = Database(DatabaseSettings(url=pg_url, pool_size=2))
    connects = 0

    @event.listens_for(db.engine.sync_engine.pool, "connect")
    def _on_connect(*_: object) -> None:
        nonlocal connects
        connects += 1

    async def unit() -> None:
        async with db.tx() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.2)  # the others start meanwhile

    try:
        await asyncio.gather(*(unit() for _ in range(4)))
        assert connects == 4
        await asyncio.gather(*(unit() for _ in range(4)))
        assert connects == 4
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_run_each_sends_its_statements_without_a_transaction(pg_url: str) -> None:
    """``run_each`` on PostgreSQL: no BEGIN and COMMIT around the statements, each one
    committed as it runs; a unit of ``run_tx`` runs in a transaction as ever."""
    from sqlalchemy import text
    from sqlalchemy.engine import Connection

    def in_transaction(conn: Connection) -> bool:
        conn.execute(text("SELECT 1"))
        return bool(conn.connection.driver_connection.is_in_transaction())  # type: ignore[union-attr]

    db = Database(DatabaseSettings(url=pg_url))
    try:
        assert await db.run_each(in_transaction) is False
        assert await db.run_tx(in_transaction) is True
        assert await db.run_each(in_transaction) is False  # the pool's connection reset
        assert db.round_trips == 3
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_the_store_reaches_postgresql_through_its_unix_socket(pg_url: str) -> None:
    """``?host=/folder`` in the URL: the store's units and its notice listener both go
    through the server's Unix-domain socket (the README's advice for a server on the same
    machine)."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.engine import URL, Connection, make_url

    folder = "/var/run/postgresql"
    url = make_url(pg_url)
    if not os.path.exists(f"{folder}/.s.PGSQL.{url.port or 5432}"):
        pytest.skip(f"no PostgreSQL socket in {folder}")
    socket_url = URL.create(
        url.drivername, url.username, url.password, database=url.database,
        query={"host": folder, "port": str(url.port or 5432)},
    ).render_as_string(hide_password=False)

    def address(conn: Connection) -> object:
        return conn.execute(text("SELECT inet_client_addr()")).scalar()  # NULL: a Unix socket

    receiver, sender = Database(DatabaseSettings(url=socket_url)), Database(DatabaseSettings(url=pg_url))
    woken = asyncio.Event()
    try:
        assert await receiver.run_read(address) is None
        assert await sender.run_read(address) is not None
        await receiver.listen({"inbox": woken.set})
        await asyncio.sleep(0.5)  # listening
        await sender.run_tx(lambda conn: sender.notify_in(conn, "inbox"))
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        await receiver.dispose()
        await sender.dispose()


async def test_a_sqlite_write_resumes_its_caller_two_loop_iterations_after_it_ends(
    tmp_path: Path,
) -> None:
    """A webhook's acknowledgement waits on a write of the writer thread, and under turn load
    every iteration of the event loop is a few milliseconds of the turns' work: the outcome is
    set by one callback, then the caller wakes (not three, as through ``wrap_future`` and
    ``shield``)."""
    import statistics

    from sqlalchemy import text

    db = Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/supportbot.db"))
    ticks = Ticks()
    after: list[int] = []
    ended: list[int] = []
    writer = db._writer
    assert writer is not None
    submit = writer.submit

    def noted(unit: Any, *, urgent: bool = False) -> Any:
        # The unit's end as its future completes on the writer thread (its commit included):
        # counted from there, the passes are the hand-over's, not the commit's.
        queued = submit(unit, urgent=urgent)
        queued.add_done_callback(lambda _: ended.append(ticks.count))
        return queued

    writer.submit = noted  # type: ignore[method-assign]
    try:

        def work(conn: Any) -> int:
            conn.execute(text("SELECT 1"))
            return 1

        for _ in range(20):
            assert await db.run_tx(work) == 1
            after.append(ticks.count - ended[-1])
        assert await db.run_driver("SELECT ?", [7]) == [(7,)]
    finally:
        ticks.stop()
        await db.dispose()
    assert statistics.median(after) <= 2, after


async def test_a_cancelled_caller_of_a_started_sqlite_write_waits_for_its_end(
    tmp_path: Path,
) -> None:
    import asyncio
    import threading

    db = Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/supportbot.db"))
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow(conn: Any) -> None:
        started.set()
        release.wait(5)
        ran.append("slow")

    def queued(conn: Any) -> None:
        ran.append("queued")

    try:
        first = asyncio.create_task(db.run_tx(slow))
        while not started.is_set():
            await asyncio.sleep(0.001)
        second = asyncio.create_task(db.run_tx(queued))
        await asyncio.sleep(0.01)
        first.cancel()
        second.cancel()  # still in the writer's queue: dropped from it
        await asyncio.sleep(0.05)
        assert not first.done()  # kept until its unit has ended on the writer thread
        release.set()
        for task in (first, second):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert ran == ["slow"]
        await db.run_tx(queued)  # the writer goes on
        assert ran == ["slow", "queued"]
    finally:
        release.set()
        await db.dispose()


async def test_sqlite_units_of_work_build_no_asyncio_engine(sqlite_url: str) -> None:
    """On SQLite a unit of work runs over the plain driver on a thread: the asyncio engine —
    SQLAlchemy's asyncio layer, whose package imports the ORM, and aiosqlite — is built only
    when something awaits the store statement by statement (``Database.engine``), which a
    sweep never does (``tests/test_startup.py``)."""
    db = Database(DatabaseSettings(url=sqlite_url))
    try:
        await db.run_tx(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
        await db.run_tx(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (1)"))
        read = await db.run_read(lambda conn: conn.exec_driver_sql("SELECT x FROM t").scalar())
        assert read == 1
        assert "engine" not in vars(db)
        async with db.read() as conn:
            assert (await conn.exec_driver_sql("SELECT x FROM t")).scalar() == 1
        assert "engine" in vars(db)
    finally:
        await db.dispose()
