"""``openai``: any OpenAI-compatible chat-completions endpoint (OpenAI, xAI chat, Azure, vLLM,
Ollama, llama.cpp server, LM Studio …), with tools, streamed or not, over aiohttp
(``transport.ProviderHTTP``).

Quirks of real servers this handles: streamed tool-call fragments are joined by ``index`` and
servers that repeat ``id``/``name`` in every delta are not doubled; arguments that are not
valid JSON become a ``ToolCall`` with ``error`` set (the loop hands that back to the model);
assistant messages carrying tool calls go out with ``content: ""`` (some servers reject null).

What every request carries, and why:

- ``tool_choice`` (``model.tool_choice``, default ``"auto"``) whenever tools are offered:
  llama-cpp-python takes a missing ``tool_choice`` as ``"none"`` and never calls a tool.
- An output cap (``model.max_output_tokens``): ``max_tokens`` — the field llama.cpp, vLLM,
  Ollama, LM Studio and Azure all read — except on api.openai.com, which deprecated it for
  ``max_completion_tokens`` and rejects ``max_tokens`` on its reasoning models.

A server that cannot stream tool calls (llama-cpp-python answers a streamed request with
``tool_choice: "auto"`` with "Automatic streaming tool choice is not supported", as an error
or as a 200 with an empty body) is noticed on the first such answer: that call is repeated
whole, and every later call that offers tools goes whole from the start (``model.stream_tools
= false`` says so up front). An answer stopped by the cap (``finish_reason: length``) is cut
at its last sentence with a note, and usage a server does not report is estimated and marked
so (``base.settle_answer``).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from yarl import URL

from bot.domain import JSON, Usage
from bot.providers.base import (
    ChatMessage,
    ContentPart,
    DeltaSink,
    ModelRequest,
    ModelResponse,
    ProviderError,
    ToolCall,
    ToolSpec,
    settle_answer,
)
from bot.providers.tokens import ServerTokenizer
from bot.providers.transport import (
    Frame,
    ProviderHTTP,
    ProviderHTTPError,
    ProviderTransportError,
    decode_json,
    is_deterministic,
    iter_frames,
    parse_arguments,
    raw_arguments,
    scrub,
    usage_from,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_MAX_OUTPUT_TOKENS = 1024

ToolChoice = Literal["auto", "none", "required"]


# -- request mapping -----------------------------------------------------------------------------


def _content_part(part: ContentPart) -> JSON:
    if part.kind == "image":
        return {"type": "image_url", "image_url": {"url": part.data_url}}
    return {"type": "file", "file": {"filename": part.name, "file_data": part.data_url}}


def _assistant_arguments(call: ToolCall) -> str:
    # Arguments the model got wrong go back as "{}": servers that re-parse the history
    # reject invalid JSON here, and the tool error already tells the model what went wrong.
    if call.arguments is None:
        return "{}"
    return call.raw_arguments or json.dumps(call.arguments, ensure_ascii=False)


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[JSON]:
    """Chat messages in the chat-completions wire shape."""
    out: list[JSON] = []
    for message in messages:
        item: JSON = {"role": message.role}
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id or ""
            item["content"] = message.content
        elif message.role == "assistant":
            item["content"] = message.content or ""
            if message.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": _assistant_arguments(call)},
                    }
                    for call in message.tool_calls
                ]
        elif message.parts:
            parts: list[JSON] = []
            if message.content:
                parts.append({"type": "text", "text": message.content})
            parts.extend(_content_part(part) for part in message.parts)
            item["content"] = parts
        else:
            item["content"] = message.content
        if message.name and message.role in ("user", "system", "assistant"):
            item["name"] = message.name
        out.append(item)
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[JSON]:
    """Tool specs as chat-completions ``tools`` (``{"type": "function", "function": …}``)."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
    ]


# -- response mapping ----------------------------------------------------------------------------


def make_tool_call(call_id: Any, name: Any, arguments: Any, *, position: int) -> ToolCall:
    """A ``ToolCall`` from wire values; a missing id gets a local one so results can refer to it."""
    parsed, error = parse_arguments(arguments)
    text_id = str(call_id) if call_id else f"call_{position}_{uuid.uuid4().hex[:8]}"
    return ToolCall(
        id=text_id,
        name=str(name or ""),
        raw_arguments=raw_arguments(arguments),
        arguments=parsed,
        error=error,
    )


def tool_calls_from(items: Any) -> tuple[ToolCall, ...]:
    """Tool calls from a complete message: ``[{id, function: {name, arguments}}]``."""
    if not isinstance(items, list):
        return ()
    calls = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        function = item["function"] if isinstance(item.get("function"), dict) else item
        calls.append(
            make_tool_call(
                item.get("id") or item.get("tool_call_id"),
                function.get("name"),
                function.get("arguments", function.get("args")),
                position=position,
            )
        )
    return tuple(calls)


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Joins streamed tool-call fragments into whole calls.

    Fragments are matched by ``index``. ``id`` and ``name`` are taken once: a server that
    repeats them in every delta does not get them doubled, and a name streamed in pieces is
    still joined. A fragment with a new ``id`` at an index already in use starts a new call
    (servers that number every call 0).
    """

    def __init__(self) -> None:
        self._calls: list[_PartialCall] = []
        self._by_index: dict[Any, int] = {}

    def add(self, fragment: JSON, position: int = 0) -> None:
        index = fragment.get("index", position)
        call_id = str(fragment.get("id") or "")
        slot = self._by_index.get(index)
        if (
            slot is not None
            and call_id
            and self._calls[slot].id
            and call_id != self._calls[slot].id
        ):
            slot = None
        if slot is None:
            self._calls.append(_PartialCall())
            slot = len(self._calls) - 1
            self._by_index[index] = slot
        call = self._calls[slot]
        if call_id and not call.id:
            call.id = call_id
        function = fragment.get("function")
        if not isinstance(function, dict):
            return
        name = function.get("name")
        if isinstance(name, str) and name:
            if not call.name or name.startswith(call.name):
                call.name = name
            elif name != call.name:
                call.name += name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call.arguments.append(arguments)
        elif isinstance(arguments, dict):
            call.arguments = [json.dumps(arguments, ensure_ascii=False)]

    def __bool__(self) -> bool:
        return bool(self._calls)

    def result(self) -> tuple[ToolCall, ...]:
        return tuple(
            make_tool_call(call.id, call.name, "".join(call.arguments), position=position)
            for position, call in enumerate(self._calls)
        )


def _stream_error(provider: str, error: Any, secret: str | None) -> ProviderError:
    """An error the server reported inside a 200 answer (a stream frame or the body)."""
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        kind = f"{error.get('type') or ''} {error.get('code') or ''}".lower()
    else:
        message, kind = str(error), ""
    retryable = any(
        word in kind for word in ("rate", "server", "overload", "timeout", "unavailable")
    ) and not is_deterministic(message)
    text = scrub(message, secret)[:300]
    return ProviderError(f"{provider}: error in answer: {text}", retryable=retryable)


class EmptyAnswerError(ProviderError):
    """A 200 whose body held nothing at all: what llama-cpp-python sends when it cannot do
    what was asked (stream a tool call). Asking again the same way gets the same nothing."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"{provider}: the server answered 200 with an empty body", retryable=False)


class CutBeforeAnswerError(ProviderTransportError):
    """A 200 whose connection dropped before its first frame: how llama-cpp-python 0.3.36
    (its SSE task raising before the first event) refuses to stream a tool call. Retryable
    for a call without tools, where it can only be the network."""


def cannot_stream_tools(exc: ProviderError) -> bool:
    """Whether a failed streamed call with tools says the server cannot stream tool calls:
    an empty 200, a 200 cut before its first frame, or the error text. A network cut taken
    for one costs only streaming for calls that offer tools; answers still come, whole."""
    return isinstance(exc, (EmptyAnswerError, CutBeforeAnswerError)) or is_deterministic(
        str(exc)
    )


# -- the provider --------------------------------------------------------------------------------


class OpenAIProvider:
    """Chat completions with ``tools`` against an OpenAI-compatible base URL (``…/v1``)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        timeout_seconds: float = 30.0,
        stream: bool = True,
        temperature: float | None = None,
        stream_usage: bool = True,
        tool_choice: ToolChoice = "auto",
        stream_tools: bool = True,
        max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        name: str = "openai",
    ) -> None:
        self.name = name
        self.model = model or DEFAULT_MODEL
        self._secret = api_key
        self._stream = stream
        self._temperature = temperature
        self._stream_usage = stream_usage
        self._tool_choice = tool_choice
        # Turned off for the rest of the process by the first sign the server cannot do it.
        self.stream_tools = stream_tools
        self._max_output_tokens = max_output_tokens
        url = base_url or DEFAULT_BASE_URL
        # OpenAI itself wants the newer name (its reasoning models reject ``max_tokens``);
        # every other compatible server reads ``max_tokens`` (llama.cpp, vLLM, Ollama …).
        self._max_tokens_key = (
            "max_completion_tokens" if URL(url).host == "api.openai.com" else "max_tokens"
        )
        # Azure OpenAI takes its key in an ``api-key`` header rather than as a bearer token.
        azure = (URL(url).host or "").endswith(".azure.com")
        self._client = ProviderHTTP(
            provider=name,
            base_url=url,
            api_key=api_key,
            timeout_seconds=timeout_seconds,
            headers={"api-key": api_key} if azure and api_key else None,
        )
        # Servers other than OpenAI's own may leave usage out; theirs may count it instead.
        self._tokenizer = (
            None if URL(url).host == "api.openai.com" or azure
            else ServerTokenizer(provider=name, base_url=url, api_key=api_key)
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._tokenizer is not None:
            await self._tokenizer.aclose()

    def body(self, request: ModelRequest, *, stream: bool) -> JSON:
        """The JSON body for one call (public so tests and tools can inspect it)."""
        body: JSON = {
            "model": request.model or self.model,
            "messages": to_openai_messages(request.messages),
            "stream": stream,
        }
        if request.tools:
            body["tools"] = to_openai_tools(request.tools)
            body["tool_choice"] = self._tool_choice
        body[self._max_tokens_key] = self._max_output_tokens
        temperature = request.temperature if request.temperature is not None else self._temperature
        if temperature is not None:
            body["temperature"] = temperature
        if stream and self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        stream = self._stream and request.stream and (self.stream_tools or not request.tools)
        if stream:
            try:
                body = self.body(request, stream=True)
                response = await self._stream_call(body, on_delta)
            except ProviderError as exc:
                if not request.tools or not cannot_stream_tools(exc):
                    raise
                # Nothing reached ``on_delta``: the server refused before the first token.
                log.warning(
                    "%s cannot stream tool calls (%s); calls that offer tools go unstreamed "
                    "from now on (set model.stream_tools = false to skip this first try)",
                    self.name,
                    exc,
                )
                self.stream_tools = False
                stream = False
        if not stream:
            body = self.body(request, stream=False)
            response = await self._whole(body)
        if self._tokenizer is not None and not (response.usage.input_tokens or response.usage.output_tokens):
            counted = await self._tokenizer.usage(request, response, request.model or self.model)
            if counted is not None:
                response = replace(response, usage=counted)
        return await settle_answer(
            request, response, provider=self.name, streamed_to=on_delta if stream else None
        )

    async def _stream_call(self, body: JSON, on_delta: DeltaSink | None) -> ModelResponse:
        try:
            return await self._streamed(body, on_delta)
        except ProviderHTTPError as exc:
            # Older servers reject ``stream_options``: ask once more without it, and
            # never again (usage is then unknown for streamed calls).
            if exc.status not in (400, 422) or "stream_options" not in str(exc):
                raise
            log.warning("%s rejects stream_options; streaming without usage", self.name)
            self._stream_usage = False
            body.pop("stream_options", None)
            return await self._streamed(body, on_delta)

    async def _whole(self, body: JSON) -> ModelResponse:
        answer = await self._client.request("POST", "chat/completions", json=body)
        if not answer.body.strip():
            raise EmptyAnswerError(self.name)
        data = decode_json(self.name, answer.body, secret=self._secret)
        if not isinstance(data, dict):
            raise ProviderError(f"{self.name}: answer is not a JSON object", retryable=True)
        if "error" in data and not data.get("choices"):
            raise _stream_error(self.name, data["error"], self._secret)
        choices = data.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise ProviderError(f"{self.name}: answer has no choices", retryable=True)
        choice = choices[0]
        message = choice.get("message") or {}
        content = message.get("content")
        text = content if isinstance(content, str) else _text_of_parts(content)
        calls = tool_calls_from(message.get("tool_calls"))
        if not calls and isinstance(message.get("function_call"), dict):
            legacy = message["function_call"]
            calls = (make_tool_call(None, legacy.get("name"), legacy.get("arguments"), position=0),)
        return ModelResponse(
            text=text,
            tool_calls=calls,
            usage=usage_from(data.get("usage")),
            model=str(data.get("model") or body["model"]),
            finish_reason=str(choice.get("finish_reason") or ("tool_calls" if calls else "stop")),
        )

    def _frames(self, lines: AsyncIterator[str]) -> AsyncIterator[Frame]:
        return _guard_first_frame(iter_frames(lines))

    async def _streamed(self, body: JSON, on_delta: DeltaSink | None) -> ModelResponse:
        text: list[str] = []
        calls = ToolCallAccumulator()
        usage = Usage()
        model = str(body["model"])
        finish_reason: str | None = None
        done = False
        frames = 0
        async with self._client.stream("POST", "chat/completions", json=body) as response:
            async for frame in self._frames(response.lines()):
                frames += 1
                if frame.data.strip() == "[DONE]":
                    done = True
                    break
                chunk = decode_json(self.name, frame.data, secret=self._secret)
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):
                    raise _stream_error(self.name, chunk["error"], self._secret)
                if chunk.get("model"):
                    model = str(chunk["model"])
                if chunk.get("usage"):
                    usage = usage_from(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    piece = delta.get("content")
                    if isinstance(piece, str) and piece:
                        text.append(piece)
                        if on_delta is not None:
                            await on_delta(piece)
                    for position, fragment in enumerate(delta.get("tool_calls") or ()):
                        if isinstance(fragment, dict):
                            calls.add(fragment, position)
                    if choice.get("finish_reason"):
                        finish_reason = str(choice["finish_reason"])
        if not frames:
            raise EmptyAnswerError(self.name)
        if not done and finish_reason is None:
            raise ProviderError(f"{self.name}: stream ended before its last chunk", retryable=True)
        tool_calls = calls.result()
        return ModelResponse(
            text="".join(text),
            tool_calls=tool_calls,
            usage=usage,
            model=model,
            finish_reason=finish_reason or ("tool_calls" if tool_calls else "stop"),
        )


async def _guard_first_frame(frames: AsyncIterator[Frame]) -> AsyncIterator[Frame]:
    """``frames``, with a connection cut before the first one raised as ``CutBeforeAnswerError``."""
    seen = False
    try:
        async for frame in frames:
            seen = True
            yield frame
    except ProviderTransportError as exc:
        if seen:
            raise
        raise CutBeforeAnswerError(str(exc), retryable=True) from None


def _text_of_parts(content: Any) -> str:
    """Text from a content given as parts (``[{"type": "text", "text": …}]``) or nothing."""
    if not isinstance(content, list):
        return ""
    return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
