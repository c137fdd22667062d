"""A scripted xAI Support Agents API (``/v1/support-agent/chat`` and ``/chat-stream``).

Like a protobuf JSON gateway it is strict about what it is sent: unknown top-level fields,
roles outside ``ROLE_*``, content that is not a list of ``{"text"}``/``{"image_url"}`` parts
and ``ROLE_TOOL`` messages without ``tool_call_id`` get a 400. The streaming format is not
documented, so a reply can stream in several plausible shapes (``stream_format``), each
sprinkled with fields a client does not know::

    async with XaiSupportAgentServer() as server:
        server.enqueue(XaiReply(text="Your order shipped.", rag_results=({"text": "…"},)))
        provider = XaiSupportAgentProvider(api_key="k", support_agent_id="sa_1", base_url=server.url)
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.fakes.model_server import CutMode, FakeHTTPServer, RecordedRequest, ScriptedToolCall

StreamFormat = Literal["sse", "ndjson", "sse-snapshot", "grpc-gateway"]
ROLES = {"ROLE_USER", "ROLE_ASSISTANT", "ROLE_SYSTEM", "ROLE_TOOL", "ROLE_FUNCTION"}
REQUEST_FIELDS = {"support_agent_id", "deployment_id", "conversation_id", "messages", "environment"}


@dataclass(frozen=True)
class XaiReply:
    """One scripted answer of the Support Agents API."""

    text: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    rag_results: tuple[dict[str, Any], ...] = ()
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stream_format: StreamFormat = "sse"
    chunk_size: int = 5
    role: str = "ROLE_ASSISTANT"
    legacy_function: bool = False
    usage: tuple[int, int] = (30, 9)
    cut_after: int | None = None
    cut_mode: CutMode = "abort"
    hang: bool = False

    @classmethod
    def error(cls, status: int, *, retry_after: str | None = None) -> XaiReply:
        return cls(status=status, headers={"Retry-After": retry_after} if retry_after else {})


XaiRule = Callable[[RecordedRequest], "XaiReply | Awaitable[XaiReply]"]


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be an object"
    unknown = set(body) - REQUEST_FIELDS
    if unknown:
        return f"unknown fields: {sorted(unknown)}"
    for required in ("support_agent_id", "conversation_id", "messages", "environment"):
        if not body.get(required):
            return f"{required} is required"
    if body["environment"] not in ("ENVIRONMENT_PROD", "ENVIRONMENT_STAGING"):
        return "bad environment"
    for message in body["messages"]:
        if message.get("role") not in ROLES:
            return f"bad role {message.get('role')!r}"
        content = message.get("content")
        if not isinstance(content, list):
            return "content must be a list of parts"
        for part in content:
            if (
                not isinstance(part, dict)
                or len(part) != 1
                or not ({"text", "image_url"} & set(part))
            ):
                return f"bad content part {part!r}"
        if message["role"] == "ROLE_TOOL" and not message.get("tool_call_id"):
            return "ROLE_TOOL needs tool_call_id"
    return None


class XaiSupportAgentServer(FakeHTTPServer):
    """The scripted Support Agents endpoints; ``url`` is the provider's base URL."""

    def __init__(self, *, rule: XaiRule | None = None) -> None:
        super().__init__()
        self.rule = rule
        self._queue: deque[XaiReply] = deque()

    def enqueue(self, *replies: XaiReply) -> None:
        self._queue.extend(replies)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/support-agent/chat", self._chat)
        app.router.add_post("/v1/support-agent/chat-stream", self._chat_stream)

    async def _reply(self, request: web.Request) -> tuple[RecordedRequest, XaiReply | web.Response]:
        recorded = await self.record(request)
        problem = _invalid(recorded.json)
        if problem:
            return recorded, web.json_response(
                {"code": 3, "message": problem, "details": []}, status=400
            )
        if self._queue:
            return recorded, self._queue.popleft()
        if self.rule is not None:
            reply = self.rule(recorded)
            if inspect.isawaitable(reply):
                reply = await reply
            assert isinstance(reply, XaiReply)
            return recorded, reply
        return recorded, web.json_response({"code": 13, "message": "no scripted reply"}, status=500)

    @staticmethod
    def _calls(reply: XaiReply) -> list[dict[str, Any]]:
        return [
            {
                "id": call.id or f"call_{i}",
                "type": "TOOL_CALL_TYPE_CLIENT_SIDE_TOOL",
                "function": {"name": call.name, "arguments": call.arguments_text()},
            }
            for i, call in enumerate(reply.tool_calls)
        ]

    def _message(self, reply: XaiReply, text: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": reply.role,
            "content": [{"text": reply.text if text is None else text}],
        }
        if reply.tool_calls:
            if reply.legacy_function:
                call = self._calls(reply)[0]
                message.update(role="ROLE_FUNCTION", id=call["id"], function=call["function"])
            else:
                message["tool_calls"] = self._calls(reply)
        return message

    def _usage(self, reply: XaiReply) -> dict[str, int]:
        return {
            "prompt_tokens": reply.usage[0],
            "completion_tokens": reply.usage[1],
            "total_tokens": sum(reply.usage),
        }

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        _, reply = await self._reply(request)
        if isinstance(reply, web.Response):
            return reply
        if reply.hang:
            return await self.hang()
        if reply.status != 200:
            return web.json_response(
                {"code": 8, "message": "scripted failure"},
                status=reply.status,
                headers=reply.headers,
            )
        return web.json_response(
            {
                "id": "resp_1",
                "message": self._message(reply),
                "system_fingerprint": "fp_fake",
                "usage": self._usage(reply),
                "created": "2026-05-01T00:00:00Z",
                "rag_results": list(reply.rag_results),
            }
        )

    def _frames(self, reply: XaiReply) -> list[tuple[str | None, dict[str, Any]]]:
        pieces = [
            reply.text[i : i + reply.chunk_size]
            for i in range(0, len(reply.text), reply.chunk_size)
        ]
        unknown = {"x_trace": "abc", "server_timing": {"ms": 3}}
        frames: list[tuple[str | None, dict[str, Any]]] = []
        if reply.stream_format == "sse":
            for piece in pieces:
                frames.append(
                    (
                        None,
                        {
                            "id": "c1",
                            "choices": [{"index": 0, "delta": {"content": piece}}],
                            **unknown,
                        },
                    )
                )
            for i, call in enumerate(self._calls(reply)):
                frames.append(
                    (
                        None,
                        {
                            "choices": [
                                {"index": 0, "delta": {"tool_calls": [{"index": i, **call}]}}
                            ]
                        },
                    )
                )
            frames.append(
                (
                    None,
                    {
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": self._usage(reply),
                        "rag_results": list(reply.rag_results),
                    },
                )
            )
        elif reply.stream_format == "ndjson":
            for piece in pieces:
                frames.append((None, {"delta": {"content": [{"text": piece}]}, **unknown}))
            frames.append(
                (
                    None,
                    {
                        "message": self._message(reply),
                        "usage": self._usage(reply),
                        "rag_results": list(reply.rag_results),
                    },
                )
            )
        elif reply.stream_format == "sse-snapshot":
            so_far = ""
            for piece in pieces:
                so_far += piece
                frames.append(
                    (
                        "message",
                        {
                            "message": {"role": "ROLE_ASSISTANT", "content": [{"text": so_far}]},
                            **unknown,
                        },
                    )
                )
            frames.append(
                (
                    "done",
                    {
                        "message": self._message(reply),
                        "usage": self._usage(reply),
                        "rag_results": list(reply.rag_results),
                    },
                )
            )
        else:  # grpc-gateway server streaming: one {"result": …} JSON object per line
            for piece in pieces:
                frames.append((None, {"result": {"delta": {"content": [{"text": piece}]}}}))
            frames.append(
                (
                    None,
                    {
                        "result": {
                            "message": self._message(reply),
                            "usage": self._usage(reply),
                            "rag_results": list(reply.rag_results),
                        }
                    },
                )
            )
        return frames

    async def _chat_stream(self, request: web.Request) -> web.StreamResponse:
        _, reply = await self._reply(request)
        if isinstance(reply, web.Response):
            return reply
        if reply.hang:
            return await self.hang()
        if reply.status != 200:
            return web.json_response(
                {"code": 8, "message": "scripted failure"},
                status=reply.status,
                headers=reply.headers,
            )
        ndjson = reply.stream_format in ("ndjson", "grpc-gateway")
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/x-ndjson" if ndjson else "text/event-stream"},
        )
        await response.prepare(request)
        for sent, (event, frame) in enumerate(self._frames(reply)):
            if reply.cut_after is not None and sent >= reply.cut_after:
                return await self.cut(request, response, reply.cut_mode)
            if ndjson:
                await response.write((json.dumps(frame) + "\n").encode())
            else:
                head = f"event: {event}\n" if event else ""
                await response.write(f"{head}data: {json.dumps(frame)}\n\n".encode())
            await asyncio.sleep(0)
        if reply.stream_format == "sse":
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
