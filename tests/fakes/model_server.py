"""A scripted OpenAI-compatible model server over real HTTP on 127.0.0.1.

Script it reply by reply, or hand it a rule that decides each reply from the request::

    async with ScriptedModelServer() as server:
        server.enqueue(
            ScriptedReply.calls(ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": "u1"})),
            ScriptedReply.say("Hi Ada!"),
        )
        settings = make_settings(db_url, model={"provider": "openai", "base_url": server.url,
                                               "api_key": "test-key", "name": "scripted"})
        ...
        assert server.requests[1].messages[-1]["role"] == "tool"

    # rule mode: drive a whole scenario file without counting turns
    def rule(request: RecordedRequest) -> ScriptedReply:
        if "human" in request.last_user_text.lower():
            return ScriptedReply.calls(ScriptedToolCall("ESCALATE", {"reason": "asked"}))
        return ScriptedReply.say("Here is how …")

    async with ScriptedModelServer(rule=rule) as server: ...

Queued replies are used first (in order), then the rule; with neither the server answers 500
``no scripted reply`` (and ``server.unscripted`` counts it). ``answer_with(provider)`` is a rule
that lets an in-process provider (the offline responder) decide every answer. A reply follows
the request's ``stream`` flag unless it forces one. Options cover what real servers do:
tool-call deltas that repeat ``id``/``name`` every time (``repeat_ids``), malformed arguments
(pass a string), ``ScriptedReply.error(429, retry_after="1")``, 500, hanging forever
(``ScriptedReply.hanging()``; ``server.wait_abandoned()`` returns once the client gave up), a
stream cut before its end (``cut_after``, ``cut_mode``), an ``{"error": …}`` frame inside a 200
stream (``stream_error``), frames without blank lines between them (``blank_lines=False``),
CRLF line ends (``line_end="\\r\\n"``), non-ASCII text sent as raw UTF-8 rather than ``\\u``
escapes (``escape_non_ascii=False``), a stream written in pieces of a few bytes that cut lines
and characters anywhere (``write_size``).
Like strict real servers it rejects (400) an assistant message whose ``content`` is null, and
with ``reject_stream_options=True`` it refuses ``stream_options`` as older servers do. With
``streamed_tools="empty"``, ``"cut"`` or ``"error"`` it plays llama-cpp-python, which cannot
stream a call made with ``tool_choice: "auto"``: a 200 with an empty body, a 200 whose
connection drops before the first frame (what 0.3.36 was measured doing), or a 500 saying
"Automatic streaming tool choice is not supported" (``server.refused_streams`` counts them; no
queued reply is used).
A reply with ``report_usage=False`` carries no usage, as servers that ignore ``stream_options``.

``POST /v1/embeddings`` answers like OpenAI's (``{"data": [{"index", "embedding"}], …}``) with
the vectors ``embed`` computes per input text (default ``concept_vectors`` with no concepts: a
hashed bag of words); ``server.embedding_requests`` lists those requests, and
``server.fail_embeddings(503, times=2)`` makes the next calls fail; ``server.hold_embeddings()``
keeps every embeddings request waiting until ``await server.release_embeddings(n)`` lets ``n``
through (a slow model whose pace the test sets).

``FakeHTTPServer`` is the base the xAI and Ingram fakes share.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from aiohttp import web

CutMode = Literal["abort", "eof"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        if isinstance(self.json, dict) and isinstance(self.json.get("messages"), list):
            return list(self.json["messages"])
        return []

    @property
    def last_user_text(self) -> str:
        """The newest user message's text (chat-completions shape), for rules."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class FakeHTTPServer:
    """An aiohttp app on 127.0.0.1:<ephemeral> that records every request it gets."""

    base_path = ""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.abandoned = 0
        self._abandoned_event = asyncio.Event()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # lifecycle
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        self.routes(app)
        # handler_cancellation: a client that gives up cancels the handler, which is how a
        # hung request is seen to be abandoned.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The base URL a provider is configured with."""
        return self.origin + self.base_path

    # helpers for handlers
    async def record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=body,
            json=parsed,
            received_at=time.monotonic(),
        )
        self.requests.append(recorded)
        return recorded

    async def hang(self) -> web.StreamResponse:
        """Never answer; count the request as abandoned once the client drops it."""
        try:
            await self._release.wait()
        except asyncio.CancelledError:
            self.abandoned += 1
            self._abandoned_event.set()
            raise
        raise web.HTTPServiceUnavailable(text="server stopping")

    async def wait_abandoned(self, timeout: float = 10.0) -> None:
        """Return once a hung request was dropped by its client (fails after ``timeout``)."""
        await asyncio.wait_for(self._abandoned_event.wait(), timeout)

    @staticmethod
    async def sse_response(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        await response.prepare(request)
        return response

    @staticmethod
    async def cut(
        request: web.Request, response: web.StreamResponse, mode: CutMode
    ) -> web.StreamResponse:
        """End a stream early: ``abort`` drops the connection mid-body, ``eof`` ends it
        politely but without the frames that should have closed it."""
        if mode == "abort":
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response


# -- OpenAI-compatible --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call the scripted model makes. ``arguments`` as a string is sent verbatim, so a
    malformed string makes malformed arguments."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer (or failure) of the model server."""

    text: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    stream: bool | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None
    repeat_ids: bool = False
    chunk_size: int = 5
    cut_after: int | None = None
    cut_mode: CutMode = "abort"
    hang: bool = False
    usage: tuple[int, int] = (11, 7)
    model: str = "scripted-model"
    finish_reason: str | None = None
    delay_between_chunks: float = 0.0
    stream_error: dict[str, Any] | None = None
    blank_lines: bool = True  # False: frames not separated by blank lines (a broken server)
    line_end: str = "\n"
    escape_non_ascii: bool = True
    write_size: int | None = None  # stream body written in pieces of this many bytes
    report_usage: bool = True  # False: no usage in the answer, whatever the request asked

    # builders
    @classmethod
    def say(cls, text: str, **options: Any) -> ScriptedReply:
        return cls(text=text, **options)

    @classmethod
    def calls(cls, *calls: ScriptedToolCall, text: str = "", **options: Any) -> ScriptedReply:
        return cls(text=text, tool_calls=tuple(calls), **options)

    @classmethod
    def error(
        cls, status: int, *, retry_after: str | None = None, message: str = "scripted failure"
    ) -> ScriptedReply:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(
            status=status,
            headers=headers,
            error_body={"error": {"message": message, "type": "scripted", "code": str(status)}},
        )

    @classmethod
    def hanging(cls) -> ScriptedReply:
        return cls(hang=True)


Rule = Callable[[RecordedRequest], "ScriptedReply | Awaitable[ScriptedReply]"]


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


class ScriptedModelServer(FakeHTTPServer):
    """An OpenAI-compatible ``/v1/chat/completions`` that answers from a script or a rule."""

    base_path = "/v1"

    def __init__(
        self,
        *,
        rule: Rule | None = None,
        reject_null_content: bool = True,
        reject_stream_options: bool = False,
        streamed_tools: Literal["ok", "empty", "cut", "error"] = "ok",
        tokenizer: Literal["llama-cpp-python", "llama.cpp"] | None = None,
        embed: Callable[[str], list[float]] | None = None,
    ) -> None:
        """``tokenizer``: the token-counting route the server offers, as that server names it
        (its "tokenizer" counts words, so a test can tell its counts from an estimate)."""
        super().__init__()
        self.embed = embed or concept_vectors({})
        self._embedding_failures: deque[int] = deque()
        self._embeddings_held = False
        self._embedding_permits = 0
        self._embedding_turn = asyncio.Condition()
        self.embeddings_answered = 0
        self.rule = rule
        self.tokenizer = tokenizer
        self.reject_null_content = reject_null_content
        self.reject_stream_options = reject_stream_options
        self.streamed_tools = streamed_tools
        self.refused_streams = 0
        self.unscripted = 0
        self._queue: deque[ScriptedReply] = deque()

    def enqueue(self, *replies: ScriptedReply) -> None:
        """Add replies to answer the next requests, in order."""
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Queued replies not used yet."""
        return len(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    def fail_embeddings(self, status: int, *, times: int = 1) -> None:
        """Answer the next ``times`` embeddings requests with ``status``."""
        self._embedding_failures.extend([status] * times)

    def hold_embeddings(self) -> None:
        """Keep embeddings requests waiting (recorded on arrival) until released."""
        self._embeddings_held = True

    async def release_embeddings(self, requests: int | None = None) -> None:
        """Let ``requests`` more held embeddings requests through; None: all, from now on."""
        async with self._embedding_turn:
            if requests is None:
                self._embeddings_held = False
            else:
                self._embedding_permits += requests
            self._embedding_turn.notify_all()

    async def _embedding_permit(self) -> None:
        async with self._embedding_turn:
            await self._embedding_turn.wait_for(
                lambda: not self._embeddings_held or self._embedding_permits > 0
            )
            if self._embeddings_held:
                self._embedding_permits -= 1

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        if self.tokenizer == "llama-cpp-python":
            app.router.add_post("/extras/tokenize/count", self._count_tokens)
        elif self.tokenizer == "llama.cpp":
            app.router.add_post("/tokenize", self._tokenize)
        else:  # asked all the same: recorded, and answered as a server without them would
            app.router.add_post("/extras/tokenize/count", self._not_found)
            app.router.add_post("/tokenize", self._not_found)

    async def _not_found(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"detail": "Not Found"}, status=404)

    @staticmethod
    def words(text: str) -> int:
        """The fake tokenizer: one token per word."""
        return len(text.split())

    async def _count_tokens(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        return web.json_response({"count": self.words(recorded.json["input"])})

    async def _tokenize(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        return web.json_response({"tokens": list(range(self.words(recorded.json["content"])))})

    async def _embeddings(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        await self._embedding_permit()
        self.embeddings_answered += 1
        if self._embedding_failures:
            status = self._embedding_failures.popleft()
            return web.json_response({"error": {"message": "scripted failure"}}, status=status)
        body = recorded.json if isinstance(recorded.json, dict) else {}
        given = body.get("input")
        inputs = [given] if isinstance(given, str) else given
        if not body.get("model") or not isinstance(inputs, list) or not inputs or not all(
            isinstance(text, str) and text for text in inputs
        ):
            return web.json_response(
                {"error": {"message": "model and a non-empty input are required"}}, status=400
            )
        data = [
            {"object": "embedding", "index": i, "embedding": self.embed(text)}
            for i, text in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "scripted-model"}]})

    async def _next(self, recorded: RecordedRequest) -> ScriptedReply | None:
        if self._queue:
            return self._queue.popleft()
        if self.rule is not None:
            reply = self.rule(recorded)
            if inspect.isawaitable(reply):
                reply = await reply
            assert isinstance(reply, ScriptedReply)
            return reply
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        body = recorded.json if isinstance(recorded.json, dict) else {}
        if self.reject_null_content:
            for message in body.get("messages") or ():
                if message.get("role") == "assistant" and message.get("content") is None:
                    return web.json_response(
                        {"error": {"message": "assistant content must not be null"}}, status=400
                    )
        if self.reject_stream_options and "stream_options" in body:
            return web.json_response(
                {"error": {"message": "Unrecognized request argument: stream_options"}}, status=400
            )
        if (
            self.streamed_tools != "ok"
            and body.get("stream")
            and body.get("tools")
            and body.get("tool_choice") == "auto"
        ):
            return await self._refuse_streamed_tools(request)
        reply = await self._next(recorded)
        if reply is None:
            self.unscripted += 1
            return web.json_response({"error": {"message": "no scripted reply"}}, status=500)
        if reply.hang:
            return await self.hang()
        if reply.status != 200:
            return web.json_response(
                reply.error_body or {"error": {"message": "scripted"}},
                status=reply.status,
                headers=reply.headers,
            )
        stream = reply.stream if reply.stream is not None else bool(body.get("stream"))
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, reply, include_usage)
        return web.json_response(self._whole(reply), headers=reply.headers)

    async def _refuse_streamed_tools(self, request: web.Request) -> web.StreamResponse:
        """What llama-cpp-python 0.3 does with a streamed ``tool_choice: "auto"`` call."""
        self.refused_streams += 1
        if self.streamed_tools == "error":
            return web.json_response(
                {
                    "error": {
                        "message": "Automatic streaming tool choice is not supported",
                        "type": "internal_server_error",
                    }
                },
                status=500,
            )
        # The event stream is opened, then its generator raises before the first event.
        response = await self.sse_response(request)
        if self.streamed_tools == "cut":
            return await self.cut(request, response, "abort")
        await response.write_eof()
        return response

    @staticmethod
    def _whole(reply: ScriptedReply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_text()},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
        if reply.report_usage:
            answer["usage"] = {
                "prompt_tokens": reply.usage[0],
                "completion_tokens": reply.usage[1],
                "total_tokens": sum(reply.usage),
            }
        return answer

    @staticmethod
    def _chunks(reply: ScriptedReply, include_usage: bool) -> list[dict[str, Any]]:
        base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": reply.model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": piece}) for piece in _pieces(reply.text, reply.chunk_size)]
        for i, call in enumerate(reply.tool_calls):
            call_id = call.id or f"call_{i}"
            head = {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            chunks.append(chunk({"tool_calls": [{"index": i, **head}]}))
            for piece in _pieces(call.arguments_text(), reply.chunk_size):
                fragment: dict[str, Any] = {"index": i, "function": {"arguments": piece}}
                if reply.repeat_ids:
                    fragment = {
                        "index": i,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": piece},
                    }
                chunks.append(chunk({"tool_calls": [fragment]}))
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        chunks.append(chunk({}, finish))
        if include_usage and reply.report_usage:
            chunks.append(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": reply.usage[0],
                        "completion_tokens": reply.usage[1],
                        "total_tokens": sum(reply.usage),
                    },
                }
            )
        return chunks

    async def _stream(
        self, request: web.Request, reply: ScriptedReply, include_usage: bool
    ) -> web.StreamResponse:
        response = await self.sse_response(request)
        chunks = self._chunks(reply, include_usage)
        if reply.stream_error is not None:
            # Some servers report a failure as a frame after a 200, then stop.
            chunks = chunks[:-2] + [{"error": reply.stream_error}]
        end = reply.line_end * (2 if reply.blank_lines else 1)
        for sent, chunk in enumerate(chunks):
            if reply.cut_after is not None and sent >= reply.cut_after:
                return await self.cut(request, response, reply.cut_mode)
            data = json.dumps(chunk, ensure_ascii=reply.escape_non_ascii)
            await self._write(response, f"data: {data}{end}".encode(), reply.write_size)
            if reply.delay_between_chunks:
                await asyncio.sleep(reply.delay_between_chunks)
        await self._write(response, f"data: [DONE]{end}".encode(), reply.write_size)
        await response.write_eof()
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, data: bytes, size: int | None) -> None:
        if size is None:
            await response.write(data)
            return
        for start in range(0, len(data), size):
            await response.write(data[start : start + size])
            # Client and server share the loop: yield so the client reads each piece alone.
            await asyncio.sleep(0)


def answer_with(provider: Any) -> Rule:
    """A rule that lets an in-process ``ModelProvider`` (the offline responder, say) decide
    every answer: the chat-completions request is turned back into a ``ModelRequest``, the
    provider's text and tool calls go back on the wire. With it a scenario file written for
    the offline responder runs through the ``openai`` provider over real HTTP::

        async with ScriptedModelServer(rule=answer_with(OfflineProvider(...))) as server: ...
    """
    from bot.providers.base import ChatMessage, ModelRequest, ToolCall, ToolSpec
    from bot.providers.transport import parse_arguments

    def message_of(item: dict[str, Any]) -> ChatMessage:
        content = item.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        calls = []
        for call in item.get("tool_calls") or ():
            function = call.get("function") or {}
            raw = str(function.get("arguments") or "")
            arguments, error = parse_arguments(raw)
            calls.append(
                ToolCall(str(call.get("id")), str(function.get("name")), raw, arguments, error)
            )
        return ChatMessage(
            role=item.get("role", "user"),
            content=str(content or ""),
            tool_calls=tuple(calls),
            tool_call_id=item.get("tool_call_id"),
            name=item.get("name"),
        )

    async def rule(recorded: RecordedRequest) -> ScriptedReply:
        body = recorded.json if isinstance(recorded.json, dict) else {}
        tools = tuple(
            ToolSpec(
                name=str(t["function"]["name"]),
                description=str(t["function"].get("description") or ""),
                parameters=dict(t["function"].get("parameters") or {}),
            )
            for t in body.get("tools") or ()
        )
        request = ModelRequest(
            messages=tuple(message_of(m) for m in recorded.messages),
            tools=tools,
            model=body.get("model"),
        )
        response = await provider.complete(request)
        calls = tuple(
            ScriptedToolCall(c.name, c.raw_arguments or json.dumps(c.arguments or {}), id=c.id)
            for c in response.tool_calls
        )
        return ScriptedReply(
            text=response.text, tool_calls=calls, model=response.model or "scripted-model"
        )

    return rule


def text_of(messages: Sequence[dict[str, Any]], role: str) -> list[str]:
    """The string contents of the messages with ``role`` (chat-completions shape)."""
    return [str(m.get("content")) for m in messages if m.get("role") == role]


def concept_vectors(
    concepts: dict[str, Sequence[str]], *, hashed: int = 32
) -> Callable[[str], list[float]]:
    """A scripted embedding model: one dimension per concept, counting the concept's phrases in
    the text (so texts sharing no word can mean the same thing), then ``hashed`` dimensions of a
    hashed bag of words, weighted less."""
    import hashlib
    import re

    names = list(concepts)

    def embed(text: str) -> list[float]:
        lowered = text.lower()
        vector = [float(sum(lowered.count(p.lower()) for p in concepts[n])) for n in names]
        words = [0.0] * hashed
        for word in re.findall(r"\w+", lowered):
            words[int(hashlib.md5(word.encode()).hexdigest(), 16) % hashed] += 0.1
        return vector + words

    return embed
