"""A provider that streams half an answer and then fails: the fallback's answer replaces it.

The customer's SSE stream says ``message.reset`` before the fallback's first delta, so whoever
renders it shows exactly the fallback's answer, which is also what the run stores."""

from __future__ import annotations

from typing import Any

from tests.fakes.model_server import ScriptedModelServer, ScriptedReply
from tests.http.harness import json_call, read_sse, running, session

HALF_ANSWER = "To reset your password, you need to log into your Apple ID account first and "


def half_then_cut() -> ScriptedReply:
    # The role frame and four text frames reach the customer, then the connection drops.
    return ScriptedReply.say(HALF_ANSWER, chunk_size=10, cut_after=5)


def model_settings(server: ScriptedModelServer) -> dict[str, Any]:
    return {"provider": "openai", "base_url": server.url, "api_key": "test-key",
            "name": "scripted", "max_retries": 0}


def after_reset(frames: list[tuple[str, dict[str, Any]]]) -> tuple[str, str]:
    """The text streamed before the (one) reset, and after it."""
    names = [name for name, _ in frames]
    assert names.count("message.reset") == 1, names
    split = names.index("message.reset")
    before = "".join(d["delta"] for n, d in frames[:split] if n == "message.delta")
    after = "".join(d["delta"] for n, d in frames[split:] if n == "message.delta")
    return before, after


async def test_the_sse_stream_resets_before_the_fallback_answers(sqlite_url: str) -> None:
    async with ScriptedModelServer() as server:
        server.enqueue(half_then_cut())
        async with running(sqlite_url, real_engine=True, model=model_settings(server)) as daemon, \
                daemon.client() as visitor:
            await session(visitor)
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            path = f"/v1/conversations/{conversation['id']}/messages"
            async with visitor.post(path, json={"content": "How do I reset my password?"}) as r:
                assert r.status == 200
                frames = await read_sse(r)

            before, after = after_reset(frames)
            assert before and HALF_ANSWER.startswith(before)
            name, final = frames[-1]
            assert name == "run.completed"
            # The offline responder answered; its answer alone follows the reset.
            assert final["output_text"] and after.strip() == final["output_text"].strip()
            assert HALF_ANSWER.strip() not in after
            run = await daemon.app.store.get_run(final["run_id"])
            assert run.output_text == final["output_text"]
            assert run.model.startswith("offline")
