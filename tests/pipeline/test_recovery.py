"""Crash recovery: a worker killed mid-turn, and a drain on stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from bot.app import Application
from bot.domain import InboxStatus
from bot.pipeline.turn import TurnContext
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.pipeline.fakes import RecordingConnector, ScriptedRunner, wait_for
from tests.pipeline.test_spine import message

# A worker in its own process: it claims the message, starts the turn and hangs there until
# the test kills it with SIGKILL — no cleanup, no release, exactly like a crash.
DOOMED_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from bot.app import Application
    from bot.domain import InboundMessage
    from tests.conftest import make_settings
    from tests.pipeline.fakes import RecordingConnector

    class Hang:
        async def run(self, ctx):
            print("TURN STARTED", flush=True)
            await asyncio.Event().wait()

    async def main():
        async def factory(app):
            return Hang()
        settings = make_settings(sys.argv[1], pipeline={"lease_seconds": 1.0, "poll_interval_seconds": 0.05})
        app = Application(settings, runner_factory=factory, connectors=[RecordingConnector()], serve_http=False)
        await app.start()
        await app.submit(InboundMessage(source="test", dedup_key="only-once", thread_external_id="test:t1",
                                        smith_external_id="test:u1", text="help"))
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_a_worker_killed_mid_turn_leaves_the_message_to_the_next_one_once(
    db_url: str, tmp_path: Path
) -> None:
    settings = make_settings(db_url, pipeline={"lease_seconds": 1.0})
    script = tmp_path / "doomed.py"
    script.write_text(DOOMED_WORKER)
    bootstrap = Application(settings, serve_http=False, run_pipeline=False,
                            runner_factory=_never_used)
    await upgrade(bootstrap.db.engine)
    await bootstrap.db.dispose()

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), db_url,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).parents[2]),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"TURN STARTED"
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    runner, connector = ScriptedRunner(), RecordingConnector()

    async def factory(_: Application) -> ScriptedRunner:
        return runner

    app = Application(settings, runner_factory=factory, connectors=[connector], serve_http=False)
    await app.start()
    try:
        await wait_for(lambda: len(connector.sent) == 1)
        await asyncio.sleep(1.5)  # longer than a lease: no second worker may answer again
        assert [m.dedup_key for t in runner.turns for m in t.messages] == ["only-once"]
        assert len(await app.store.list_runs()) == 1
        assert await app.store.inbox_counts() == {InboxStatus.DONE.value: 1}
    finally:
        await app.stop()


async def _never_used(_: Application) -> ScriptedRunner:
    return ScriptedRunner()


async def test_stop_drains_running_turns_and_leaves_the_rest_in_the_inbox(sqlite_url: str) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def hook(ctx: TurnContext) -> None:
        if ctx.thread.external_id == "test:slow":
            started.set()
            await release.wait()

    runner, connector = ScriptedRunner(hook=hook), RecordingConnector()

    async def factory(_: Application) -> ScriptedRunner:
        return runner

    settings = make_settings(sqlite_url, pipeline={"concurrency": 1, "drain_timeout_seconds": 10})
    app = Application(settings, runner_factory=factory, connectors=[connector], serve_http=False)
    await app.start()
    await app.submit(message("slow one", "k1", thread="test:slow"))
    await asyncio.wait_for(started.wait(), 20)
    await app.submit(message("waiting", "k2", thread="test:other", smith="test:u2"))

    stopping = asyncio.create_task(app.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "stop must wait for the running turn"
    release.set()
    await asyncio.wait_for(stopping, 20)

    app2 = Application(settings, runner_factory=factory, connectors=[RecordingConnector()],
                       serve_http=False, run_pipeline=False)
    await app2.start()
    try:
        items = {i["dedup_key"]: i["status"] for i in await app2.store.inbox_items()}
        assert items == {"k1": "done", "k2": "pending"}
    finally:
        await app2.stop()
    assert [a.text for a in connector.sent] == ["echo: slow one"]


async def test_no_task_is_left_running_after_stop(sqlite_url: str) -> None:
    before = {t for t in asyncio.all_tasks() if not t.done()}
    runner, connector = ScriptedRunner(), RecordingConnector()

    async def factory(_: Application) -> ScriptedRunner:
        return runner

    app = Application(make_settings(sqlite_url), runner_factory=factory, connectors=[connector])
    await app.start()
    assert app.http_port
    for i in range(5):
        await app.submit(message("hi", f"k{i}", thread=f"test:t{i}", smith=f"test:u{i}"))
    await wait_for(lambda: len(connector.sent) == 5)
    during = {t.get_name() for t in asyncio.all_tasks() if not t.done()} - {t.get_name() for t in before}
    assert {"dispatcher", "outbox"} <= during
    await app.stop()
    left = [t for t in asyncio.all_tasks() if not t.done() and t not in before]
    assert left == [], [t.get_name() for t in left]
    with_runner_error = Application(make_settings(sqlite_url), runner_factory=factory,
                                    connectors=[connector])
    await with_runner_error.start()
    try:
        await with_runner_error.start()
    except RuntimeError as exc:
        assert "already running" in str(exc)
    else:
        raise AssertionError("starting a running Application twice must raise")
    finally:
        await with_runner_error.stop()
