"""Client-side cost of one model call per provider, against zero-latency fakes on 127.0.0.1.

Each call goes through the same stack as in the daemon — ``ResilientProvider`` (deadline,
retries) around the provider, HTTP to the scripted fake, parsing — with a short answer of a
few deltas and, on every other call, a tool call. The fake's own time is in the figures too,
so they are an upper bound on what the providers add to a turn.

    PYTHONPATH=. python bench/provider_overhead.py [--calls 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from bot.providers.base import ChatMessage, ModelProvider, ModelRequest, ToolSpec
from bot.providers.ingram import IngramProvider
from bot.providers.openai import OpenAIProvider
from bot.providers.resilience import ResilientProvider
from bot.providers.xai import XaiSupportAgentProvider
from tests.fakes.ingram_server import IngramServer, IngramStep
from tests.fakes.model_server import (
    RecordedRequest,
    ScriptedModelServer,
    ScriptedReply,
    ScriptedToolCall,
)
from tests.fakes.xai_server import XaiReply, XaiSupportAgentServer

TEXT = "Thanks for reaching out! Your order left our warehouse yesterday and arrives on Friday."
CALL = ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": "u_1"})
TOOLS = (
    ToolSpec("USER_INFO_LOOKUP", "Look the customer up.", {"type": "object", "properties": {}}),
)
HISTORY = tuple(
    ChatMessage("user" if i % 2 == 0 else "assistant", f"message {i} " + "words " * 30)
    for i in range(10)
)


async def measure(
    provider: ModelProvider, calls: int, request_for: Callable[[int], ModelRequest]
) -> list[float]:
    async def sink(_: str) -> None:
        return None

    timings = []
    for i in range(calls):
        started = time.perf_counter()
        await provider.complete(request_for(i), sink)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def row(name: str, timings: list[float]) -> str:
    ordered = sorted(timings)
    p50 = statistics.median(ordered)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    rate = 1000 / statistics.fmean(ordered)
    return f"| {name:<28} | {p50:7.2f} | {p95:7.2f} | {rate:9.0f} |"


async def bench_openai(calls: int, stream: bool) -> list[float]:
    def rule(request: RecordedRequest) -> ScriptedReply:
        if len(request.messages) % 2:
            return ScriptedReply.calls(CALL, text="One moment.", chunk_size=12)
        return ScriptedReply.say(TEXT, chunk_size=12)

    async with ScriptedModelServer(rule=rule) as server:
        provider = ResilientProvider(
            OpenAIProvider(api_key="k", base_url=server.url, timeout_seconds=10),
            timeout_seconds=10,
            max_retries=3,
        )

        def request_for(i: int) -> ModelRequest:
            return ModelRequest(messages=HISTORY[: 9 + i % 2], tools=TOOLS, stream=stream)

        try:
            return await measure(provider, calls, request_for)
        finally:
            await provider.aclose()


async def bench_xai(calls: int, stream: bool) -> list[float]:
    def rule(request: RecordedRequest) -> XaiReply:
        return XaiReply(text=TEXT, chunk_size=12, rag_results=({"text": "chunk", "score": 0.9},))

    async with XaiSupportAgentServer(rule=rule) as server:
        provider = ResilientProvider(
            XaiSupportAgentProvider(api_key="k", support_agent_id="sa", base_url=server.url),
            timeout_seconds=10,
            max_retries=3,
        )
        try:
            return await measure(
                provider,
                calls,
                lambda i: ModelRequest(messages=HISTORY, stream=stream, thread_key="t"),
            )
        finally:
            await provider.aclose()


async def bench_ingram(calls: int, stream: bool) -> list[float]:
    async with IngramServer() as server:
        server.enqueue(*[IngramStep(text=TEXT, chunk_size=12) for _ in range(calls)])
        provider = ResilientProvider(
            IngramProvider(api_key="k", base_url=server.url, agent_id="agt"),
            timeout_seconds=10,
            max_retries=3,
        )

        def request_for(i: int) -> ModelRequest:
            return ModelRequest(
                messages=HISTORY[:9],
                tools=TOOLS,
                stream=stream,
                thread_key=f"t{i % 20}",
                smith_key=f"s{i % 20}",
            )

        try:
            return await measure(provider, calls, request_for)
        finally:
            await provider.aclose()


async def main(calls: int) -> None:
    cases: list[tuple[str, Callable[[], Awaitable[list[float]]]]] = []
    for stream in (False, True):
        mode = "streamed" if stream else "whole"
        cases += [
            (f"openai ({mode})", lambda s=stream: bench_openai(calls, s)),
            (f"xai-support-agent ({mode})", lambda s=stream: bench_xai(calls, s)),
            (f"ingram ({mode})", lambda s=stream: bench_ingram(calls, s)),
        ]
    print(f"{calls} calls each, zero-latency fake on 127.0.0.1, ResilientProvider included\n")
    print("| provider                     | p50 ms  | p95 ms  | calls/s   |")
    print("|------------------------------|---------|---------|-----------|")
    for name, run in cases:
        print(row(name, await run()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    asyncio.run(main(parser.parse_args().calls))
