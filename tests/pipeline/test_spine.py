"""The spine end to end (inbox → dispatcher → turn → outbox) on both databases."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.app import Application
from bot.domain import Attachment, Control, InboundMessage, InboxStatus, OutboxStatus, Smith, Thread
from bot.pipeline.turn import TurnContext
from bot.store.store import ThreadChange
from tests.pipeline.conftest import AppFactory
from tests.pipeline.fakes import RecordingConnector, ScriptedRunner, wait_for


def message(text: str, key: str, thread: str = "test:t1", smith: str = "test:u1") -> InboundMessage:
    return InboundMessage(
        source="test",
        dedup_key=key,
        thread_external_id=thread,
        smith_external_id=smith,
        text=text,
    )


async def test_the_same_delivery_three_times_makes_one_run(make_app: AppFactory) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector)
    results = [await app.submit(message("hello", "part-1")) for _ in range(3)]
    assert results == [True, False, False]
    await wait_for(lambda: len(connector.sent) == 1)
    # Give a would-be second turn every chance to happen before counting.
    await asyncio.sleep(0.3)
    assert len(runner.turns) == 1
    assert len(await app.store.list_runs()) == 1
    assert len(connector.sent) == 1 and connector.sent[0].text == "echo: hello"


async def test_concurrent_duplicates_store_one_message(make_app: AppFactory) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector)
    results = await asyncio.gather(*(app.submit(message("hi", "same-key")) for _ in range(10)))
    assert results.count(True) == 1
    await wait_for(lambda: len(connector.sent) == 1)
    assert len(await app.store.list_runs()) == 1


async def test_fifty_messages_on_one_thread_never_overlap_and_coalesce(
    make_app: AppFactory,
) -> None:
    release = asyncio.Event()
    first_turn_started = asyncio.Event()

    async def hook(ctx: TurnContext) -> None:
        if not first_turn_started.is_set():
            first_turn_started.set()
            await release.wait()
        await asyncio.sleep(0.01)

    runner, connector = ScriptedRunner(hook=hook), RecordingConnector()
    app = await make_app(runner, connector, pipeline={"concurrency": 8})
    await app.submit(message("m0", "k0"))
    await asyncio.wait_for(first_turn_started.wait(), 20)
    # 49 more arrive, concurrently, while the first turn is still running.
    await asyncio.gather(*(app.submit(message(f"m{i}", f"k{i}")) for i in range(1, 50)))
    release.set()
    await wait_for(lambda: len(connector.sent) == 2)
    await asyncio.sleep(0.3)

    assert runner.max_active_per_thread == 1
    assert [len(t.messages) for t in runner.turns] == [1, 49]
    answered = [m.dedup_key for t in runner.turns for m in t.messages]
    assert sorted(answered) == sorted(f"k{i}" for i in range(50))
    # The second turn saw the first in its history.
    assert [r.output_text for r in runner.turns[1].history] == ["echo: m0"]
    assert (await app.store.inbox_counts()) == {"done": 50}


async def test_global_concurrency_is_bounded(make_app: AppFactory) -> None:
    async def hook(ctx: TurnContext) -> None:
        await asyncio.sleep(0.05)

    runner, connector = ScriptedRunner(hook=hook), RecordingConnector()
    app = await make_app(runner, connector, pipeline={"concurrency": 3})
    await asyncio.gather(
        *(app.submit(message("hi", f"k{i}", thread=f"test:t{i}", smith=f"test:u{i}")) for i in range(12))
    )
    await wait_for(lambda: len(connector.sent) == 12)
    assert runner.max_active <= 3
    assert runner.max_active > 1, "turns on different threads should run side by side"
    assert len({t.thread.id for t in runner.turns}) == 12


async def test_a_thread_under_human_control_is_skipped(make_app: AppFactory) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector)
    await app.submit(message("first", "k1"))
    await wait_for(lambda: len(connector.sent) == 1)
    thread = (await app.store.list_threads())[0]
    await app.store.update_thread(thread.id, ThreadChange(control=Control.HUMAN))

    await app.submit(message("second", "k2"))
    await wait_for(
        lambda: _status_of(app, "k2", InboxStatus.SKIPPED)
    )
    assert len(runner.turns) == 1 and len(connector.sent) == 1


async def test_someone_else_in_the_thread_never_gets_the_customers_turn(
    make_app: AppFactory,
) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector)
    await app.submit(message("my invoice", "k1", smith="test:alice"))
    await wait_for(lambda: len(connector.sent) == 1)
    await app.submit(message("show me alice's invoice", "k2", smith="test:mallory"))
    await wait_for(lambda: _status_of(app, "k2", InboxStatus.SKIPPED))
    assert len(runner.turns) == 1
    assert [s.external_id for s in await app.store.list_smiths()] == ["test:alice"]


async def test_run_and_actions_are_recorded_with_the_agent_version(make_app: AppFactory) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector)
    await app.store.publish_agent(app.definition("support"), "v1")
    await app.submit(message("Where is my refund? It has been two weeks", "k1"))
    await wait_for(lambda: len(connector.sent) == 1)
    [run] = await app.store.list_runs()
    assert run.agent_version == 1
    assert run.input == [{"role": "user", "content": "Where is my refund? It has been two weeks", "attachments": []}]
    thread = await app.store.get_thread(run.thread_id)
    assert thread.title == "Where is my refund? It has been two weeks"
    # The connector has sent; the entry is marked done in the sender's next store unit.
    await wait_for(lambda: _outbox_done(app))
    [entry] = await app.store.outbox_entries()
    assert entry.status is OutboxStatus.DONE and entry.remote_id == "remote-1"
    assert entry.action.run_id == run.id


async def test_a_turn_runs_its_smith_s_pin_on_known_and_new_tickets(
    make_app: AppFactory,
) -> None:
    """The claim reads the agent version with the ticket (``statements.TICKET``): the pin of
    the thread's smith, of the sender's smith on a new ticket, else the live version."""
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector)
    await app.store.publish_agent(app.definition("support"), "v1")
    await app.submit(message("first", "k1", thread="test:t1", smith="test:u1"))
    await wait_for(lambda: len(connector.sent) == 1)
    [smith] = await app.store.list_smiths()
    await app.store.pin_smith(smith.id, 1)
    await app.store.publish_agent(app.definition("support"), "v2")
    await app.store.set_live_version("support", 2)

    await app.submit(message("again", "k2", thread="test:t1", smith="test:u1"))
    await wait_for(lambda: len(connector.sent) == 2)
    await app.submit(message("new ticket", "k3", thread="test:t2", smith="test:u1"))
    await wait_for(lambda: len(connector.sent) == 3)
    await app.submit(message("new customer", "k4", thread="test:t3", smith="test:u2"))
    await wait_for(lambda: len(connector.sent) == 4)

    versions = {run.input[0]["content"]: run.agent_version for run in await app.store.list_runs()}
    assert versions == {"first": 1, "again": 1, "new ticket": 1, "new customer": 2}


async def _outbox_done(app: Application) -> bool:
    return all(e.status is OutboxStatus.DONE for e in await app.store.outbox_entries())


async def _status_of(app: Application, key: str, status: InboxStatus) -> bool:
    items = await app.store.inbox_items()
    return any(i["dedup_key"] == key and i["status"] == status.value for i in items)


async def test_a_returning_customer_s_profile_is_refreshed(make_app: AppFactory) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()
    app = await make_app(runner, connector)
    first = InboundMessage(source="test", dedup_key="k1", thread_external_id="test:t1",
                           smith_external_id="test:u1", text="hi", display_name="Ada",
                           profile={"plan": "free"})
    await app.submit(first)
    await wait_for(lambda: len(connector.sent) == 1)
    again = InboundMessage(source="test", dedup_key="k2", thread_external_id="test:t1",
                           smith_external_id="test:u1", text="upgraded", display_name="Ada L.",
                           profile={"plan": "pro"})
    await app.submit(again)
    await wait_for(lambda: len(connector.sent) == 2)
    [smith] = await app.store.list_smiths()
    assert (smith.display_name, smith.metadata) == ("Ada L.", {"plan": "pro"})
    assert runner.turns[1].smith.metadata == {"plan": "pro"}


class ResolvingConnector(RecordingConnector):
    """Fills in the author's name at turn time; ``fail`` makes resolving raise, ``hang`` makes
    it outlast the turn's patience."""

    def __init__(self, *, fail: bool = False, hang: bool = False):
        super().__init__()
        self.fail, self.hang = fail, hang

    async def resolve_turn(
        self, smith: Smith, thread: Thread, messages: tuple[InboundMessage, ...]
    ) -> tuple[InboundMessage, ...]:
        if self.fail:
            raise RuntimeError("the platform is down")
        if self.hang:
            await asyncio.sleep(60)
        return tuple(replace(m, display_name="Ada at turn time") for m in messages)


def with_file(key: str, thread: str) -> InboundMessage:
    return replace(message("see the file", key, thread=thread),
                   attachments=(Attachment("log.txt", "text/plain", 10, url="ref://log"),))


async def test_what_a_message_refers_to_is_resolved_when_its_turn_starts(
    make_app: AppFactory,
) -> None:
    runner, connector = ScriptedRunner(), ResolvingConnector()
    app = await make_app(runner, connector)
    await app.submit(message("hi", "k1"))
    await wait_for(lambda: len(connector.sent) == 1)
    assert runner.turns[0].smith.display_name == "Ada at turn time"
    [smith] = await app.store.list_smiths()
    assert smith.display_name == "Ada at turn time"


async def test_a_connector_that_cannot_resolve_a_turn_does_not_fail_it(
    make_app: AppFactory,
) -> None:
    runner = ScriptedRunner()
    failing, hanging = ResolvingConnector(fail=True), ResolvingConnector(hang=True)
    app = await make_app(runner, failing, pipeline={"resolve_timeout_seconds": 0.2})
    await app.submit(with_file("k1", "test:t1"))
    await wait_for(lambda: len(failing.sent) == 1)
    assert runner.turns[0].messages[0].attachments[0].fetch_error == "failed"
    assert runner.turns[0].smith.display_name is None
    await app.stop()

    app = await make_app(runner, hanging, pipeline={"resolve_timeout_seconds": 0.2})
    await app.submit(with_file("k2", "test:t2"))
    await wait_for(lambda: len(hanging.sent) == 1)
    assert runner.turns[1].messages[0].attachments[0].fetch_error == "timed out"
    assert (await app.store.inbox_counts()).get("failed") is None
