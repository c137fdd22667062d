"""A turn's store cost, counted in round trips (units of work handed to the database), not
timed: the inbox write, the lane's claim with its inputs, the commit with the first action
handed to the sender, and that action marked sent — four, whatever the machine's load.

The poll interval is set far beyond the test, so every unit counted is one the turn caused;
and once the reply is out the store is left alone (no empty re-poll after a turn)."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import Application
from bot.domain import InboundMessage
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.fakes.wire import ServerExchanges
from tests.pipeline.conftest import AppFactory
from tests.pipeline.fakes import RecordingConnector, ScriptedRunner, wait_for

TURN_ROUND_TRIPS = 4
QUIET = {"pipeline": {"poll_interval_seconds": 600}}


def message(key: str, thread: str) -> InboundMessage:
    return InboundMessage(
        source="test",
        dedup_key=key,
        thread_external_id=thread,
        smith_external_id=f"test:{thread}",
        text=f"question {key}",
    )


async def _one_turn(app: Application, connector: RecordingConnector, msg: InboundMessage) -> int:
    """The round trips from accepting the message to its reply marked sent."""
    before = app.db.round_trips
    sent = len(connector.sent)
    assert await app.submit(msg)
    await wait_for(lambda: len(connector.sent) == sent + 1)
    # ``sent`` grows before the sender records it: wait for the record too.
    await wait_for(lambda: app.db.round_trips - before >= TURN_ROUND_TRIPS, timeout=5)
    await asyncio.sleep(0.2)
    return app.db.round_trips - before


async def test_a_turn_takes_at_most_four_store_round_trips(make_app: AppFactory) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector, **QUIET)
    # The first turn of an agent learns its id once; not what a turn costs afterwards.
    await _one_turn(app, connector, message("warm", "test:warm"))

    new_ticket = await _one_turn(app, connector, message("a1", "test:a"))
    known_ticket = await _one_turn(app, connector, message("a2", "test:a"))

    assert new_ticket <= TURN_ROUND_TRIPS, new_ticket
    assert known_ticket <= TURN_ROUND_TRIPS, known_ticket
    assert [len(turn.history) for turn in runner.turns[1:]] == [0, 1]
    assert [a.text for a in connector.sent[1:]] == ["echo: question a1", "echo: question a2"]


async def test_no_store_work_after_a_turn_until_new_work(make_app: AppFactory) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector, **QUIET)
    await _one_turn(app, connector, message("b1", "test:b"))
    settled = app.db.round_trips
    await asyncio.sleep(0.5)
    assert app.db.round_trips == settled


async def test_a_message_arriving_mid_turn_is_answered_without_waiting_for_the_poll(
    make_app: AppFactory,
) -> None:
    """The dispatcher does not re-poll after each turn; a message that came in while its
    lane was held must still be taken as soon as the lane is given back."""
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold(_: object) -> None:
        entered.set()
        await release.wait()

    runner, connector = ScriptedRunner(hook=hold), RecordingConnector()
    app = await make_app(runner, connector, **QUIET)
    assert await app.submit(message("c1", "test:c"))
    await asyncio.wait_for(entered.wait(), 10)
    assert await app.submit(message("c2", "test:c"))
    runner.hook = None
    release.set()
    # Well inside the 600 s poll interval.
    await wait_for(lambda: len(connector.sent) == 2, timeout=10)
    assert [a.text for a in connector.sent] == ["echo: question c1", "echo: question c2"]


@pytest.mark.postgres
async def test_another_process_s_message_wakes_the_dispatcher_on_postgresql(pg_url: str) -> None:
    """One process accepts the message, another answers it: PostgreSQL's notice wakes the
    answering process at once, though its poll interval is ten minutes."""
    runner, connector = ScriptedRunner(), RecordingConnector()

    async def runner_factory(_: Application) -> ScriptedRunner:
        return runner

    answering = Application(
        make_settings(pg_url, **QUIET), runner_factory=runner_factory,
        connectors=[connector], serve_http=False,
    )
    await upgrade(answering.db.engine)
    accepting = Application(
        make_settings(pg_url, **QUIET), connectors=[RecordingConnector()],
        serve_http=False, run_pipeline=False,
    )
    await answering.start()
    await accepting.start()
    try:
        await asyncio.sleep(0.5)  # the answering process is listening
        assert await accepting.submit(message("d1", "test:d"))
        await wait_for(lambda: len(connector.sent) == 1, timeout=20)
        assert connector.sent[0].text == "echo: question d1"
    finally:
        await accepting.stop()
        await answering.stop()


# What a turn sends PostgreSQL, counted on the wire: each message (or pipelined batch of them)
# the client writes to the server's socket is one wait for its answer. A transaction costs
# ``BEGIN`` and ``COMMIT`` exchanges beyond its statements; a new ticket's turn took 23 of them
# when every unit of the turn was a transaction of several statements, 11 (a known ticket's 12)
# once the inbox write and the commit were one statement each sent without a transaction, 9
# (11) once the claim read the ticket's thread, its smith, the sender's live smith and the
# agent version in one statement (``statements.TICKET``), and 8 (8) once a new ticket's smith
# and thread were inserted in one (``statements.NEW_TICKET``) and a known ticket's history read
# in one (``folded.HISTORY``) — the claim still a transaction of five: BEGIN, the lease, the
# ticket, the history or the new ticket, COMMIT. Now the claim is one statement too
# (``folded.CLAIM_TURNS``), so a turn is its four units, one exchange each: the inbox write,
# the claim with its reads, the commit, the action marked sent.
NEW_TICKET_EXCHANGES = 4
KNOWN_TICKET_EXCHANGES = 4


async def _exchanges_per_turn(
    app: Application, connector: RecordingConnector, exchanges: ServerExchanges, msg: InboundMessage
) -> int:
    before = exchanges.count
    await _one_turn(app, connector, msg)
    return exchanges.count - before


@pytest.mark.postgres
async def test_a_turn_on_postgresql_is_four_exchanges_with_the_server(
    pg_url: str,
) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()

    async def runner_factory(_: Application) -> ScriptedRunner:
        return runner

    app = Application(
        make_settings(pg_url, **QUIET), runner_factory=runner_factory,
        connectors=[connector], serve_http=False,
    )
    exchanges = ServerExchanges(app.db.engine)
    await upgrade(app.db.engine)
    await app.start()
    try:
        # Warm: the agent's id learned, and the pooled connections' statements prepared (a
        # connection prepares each statement once, one exchange more the first time).
        for n in range(5):
            await _one_turn(app, connector, message(f"warm{n}", f"test:warm{n}"))
            await _one_turn(app, connector, message(f"warm{n}b", f"test:warm{n}"))
        new_ticket = await _exchanges_per_turn(app, connector, exchanges, message("e1", "test:e"))
        known_ticket = await _exchanges_per_turn(
            app, connector, exchanges, message("e2", "test:e")
        )
    finally:
        await app.stop()

    assert exchanges.count > 0, "the connections' writes were counted"
    assert new_ticket <= NEW_TICKET_EXCHANGES, new_ticket
    assert known_ticket <= KNOWN_TICKET_EXCHANGES, known_ticket
    assert [a.text for a in connector.sent[-2:]] == ["echo: question e1", "echo: question e2"]
