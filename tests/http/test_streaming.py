"""Following a message to its own turn: not a turn already running when it arrived, and also a
turn run by another replica (no in-process events: the inbox row and the run are the truth)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.app import Application
from tests.conftest import make_settings
from tests.http.harness import (
    ADMIN,
    SECRET,
    Daemon,
    ScriptedEngine,
    json_call,
    read_sse,
    running,
    session,
)


async def test_a_stream_follows_its_own_turn_not_the_one_already_running(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as visitor:
        engine = daemon.engine
        assert engine is not None
        engine.gate = asyncio.Event()
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        path = f"/v1/conversations/{conversation['id']}/messages"

        async def stream(text: str) -> list[tuple[str, dict[str, Any]]]:
            async with visitor.post(path, json={"content": text}) as response:
                return await read_sse(response)

        first = asyncio.create_task(stream("first"))
        while not engine.turns:  # the first turn is running (held at the gate)
            await asyncio.sleep(0.01)
        second = asyncio.create_task(stream("second"))
        while await daemon.app.store.inbox_counts() != {"pending": 2}:
            await asyncio.sleep(0.01)
        engine.gate.set()
        first_frames, second_frames = await asyncio.gather(first, second)

        first_runs = {data["run_id"] for _, data in first_frames}
        second_runs = {data["run_id"] for _, data in second_frames}
        assert len(first_runs) == 1 and len(second_runs) == 1 and first_runs != second_runs
        assert second_frames[0][0] == "run.started"
        assert second_frames[-1][0] == "run.completed"
        assert [m.text for m in engine.turns[1].messages] == ["second"]


async def test_a_turn_run_by_another_replica_is_still_streamed(sqlite_url: str) -> None:
    engine = ScriptedEngine()

    async def factory(app: Application) -> Any:
        return engine

    sections: dict[str, Any] = {"connectors": ["web"], "admin": {"token": ADMIN},
                                "web": {"identity_secret": SECRET}}
    # The replica that serves HTTP runs no turns; the other one runs them and serves nothing.
    front = Application(make_settings(sqlite_url, **sections), runner_factory=factory,
                        run_pipeline=False)
    worker = Application(make_settings(sqlite_url, **sections), runner_factory=factory,
                         serve_http=False)
    await front.start()
    await worker.start()
    try:
        daemon = Daemon(front, engine)
        async with daemon.client() as visitor:
            await session(visitor)
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            async with visitor.post(f"/v1/conversations/{conversation['id']}/messages",
                                    json={"content": "reset password"}) as response:
                frames = await read_sse(response)
        names = [name for name, _ in frames]
        assert names == ["run.started", "message.delta", "run.completed"]
        assert frames[1][1]["delta"] == frames[2][1]["output_text"] != ""
        assert len({data["run_id"] for _, data in frames}) == 1
    finally:
        await worker.stop()
        await front.stop()


async def test_a_visitor_who_leaves_mid_stream_still_gets_the_answer_kept(
    sqlite_url: str, caplog: Any
) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as visitor:
        engine = daemon.engine
        assert engine is not None
        engine.gate = asyncio.Event()
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        response = await visitor.post(f"/v1/conversations/{conversation['id']}/messages",
                                      json={"content": "reset password"})
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"event: run.started")
        response.close()  # the tab is closed mid-turn
        engine.gate.set()
        while not await daemon.app.store.list_runs():
            await asyncio.sleep(0.02)
        items = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}/items")
        assert [i["role"] for i in items["data"]] == ["user", "assistant"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
