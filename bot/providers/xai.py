"""``xai-support-agent``: xAI's Support Agents API (``POST /v1/support-agent/chat`` and
``/chat-stream``).

Stateless: every call sends the whole history. Roles are ``ROLE_USER/ASSISTANT/SYSTEM/TOOL``,
content is a list of ``{"text": …}`` parts (images as ``{"image_url": {"image_url": …}}``),
tool results go back as ``ROLE_TOOL`` with ``tool_call_id``. The answer's ``rag_results``
(knowledge chunks the agent retrieved) are kept on ``ModelResponse.rag_results``.

The streaming format is not documented ("streams deltas like /v1/chat/completions"), so the
stream reader is defensive: SSE or NDJSON frames, unknown fields ignored, text taken from
chat-completions deltas (``choices[].delta``), plain ``delta`` fields, or whole ``message``
snapshots (of which only what was not yet seen is new), tool calls from either shape.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from bot.domain import JSON, Usage
from bot.providers.base import (
    ChatMessage,
    DeltaSink,
    ModelRequest,
    ModelResponse,
    ProviderError,
    ToolCall,
    settle_answer,
)
from bot.providers.openai import ToolCallAccumulator, make_tool_call, tool_calls_from
from bot.providers.transport import (
    ProviderHTTP,
    decode_json,
    iter_frames,
    scrub,
    usage_from,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.x.ai"
CHAT_PATH = "v1/support-agent/chat"
STREAM_PATH = "v1/support-agent/chat-stream"

_ROLES = {
    "system": "ROLE_SYSTEM",
    "user": "ROLE_USER",
    "assistant": "ROLE_ASSISTANT",
    "tool": "ROLE_TOOL",
}


# -- request mapping -----------------------------------------------------------------------------


def _assistant_call(call: ToolCall) -> JSON:
    arguments = call.raw_arguments if call.arguments is not None else "{}"
    return {"id": call.id, "function": {"name": call.name, "arguments": arguments or "{}"}}


def to_xai_messages(messages: Sequence[ChatMessage]) -> list[JSON]:
    """Chat messages in the Support Agents wire shape."""
    out: list[JSON] = []
    for message in messages:
        content: list[JSON] = [{"text": message.content}]
        for part in message.parts:
            if part.kind == "image":
                content.append({"image_url": {"image_url": part.data_url}})
            else:
                # The API takes files only as uploaded file ids; say what was attached.
                content.append({"text": f"[attached file: {part.name} ({part.content_type})]"})
        item: JSON = {"role": _ROLES[message.role], "content": content}
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id or ""
        if message.role == "assistant" and message.tool_calls:
            item["tool_calls"] = [_assistant_call(call) for call in message.tool_calls]
        out.append(item)
    return out


# -- response mapping ----------------------------------------------------------------------------


def text_of(content: Any) -> str:
    """Text from ``[{"text": …}, …]``, a plain string, or ``{"text": …}``."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return "".join(text_of(part) for part in content if isinstance(part, (dict, str)))
    return ""


def message_tool_calls(message: JSON) -> tuple[ToolCall, ...]:
    """Tool calls from a whole message: ``tool_calls`` (any role) or legacy ``function``."""
    calls = tool_calls_from(message.get("tool_calls"))
    if not calls and isinstance(message.get("function"), dict):
        function = message["function"]
        calls = (
            make_tool_call(
                message.get("id") or message.get("tool_call_id"),
                function.get("name"),
                function.get("arguments"),
                position=0,
            ),
        )
    return calls


def rag_results_of(data: JSON) -> tuple[JSON, ...]:
    """The retrieved knowledge chunks (``rag_results``) an answer carries, as given."""
    results = data.get("rag_results")
    if not isinstance(results, list):
        return ()
    return tuple(item for item in results if isinstance(item, dict))


class _StreamState:
    """What the defensive stream reader has gathered so far."""

    def __init__(self) -> None:
        self.text = ""
        self.deltas = ToolCallAccumulator()
        self.snapshot_calls: tuple[ToolCall, ...] = ()
        self.rag_results: list[JSON] = []
        self.usage = Usage()
        self.model = ""
        self.finish_reason: str | None = None
        self.finished = False

    def new_text(self, chunk: JSON) -> str:
        """The text this chunk adds, from whichever shape it uses."""
        added = ""
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    added += text_of(delta.get("content"))
                    for position, fragment in enumerate(delta.get("tool_calls") or ()):
                        if isinstance(fragment, dict):
                            self.deltas.add(fragment, position)
                if choice.get("finish_reason"):
                    self.finish_reason = str(choice["finish_reason"])
        delta = chunk.get("delta")
        if isinstance(delta, str):
            added += delta
        elif isinstance(delta, dict):
            added += text_of(delta.get("content", delta.get("text")))
            for position, fragment in enumerate(delta.get("tool_calls") or ()):
                if isinstance(fragment, dict):
                    self.deltas.add(fragment, position)
        message = chunk.get("message")
        if isinstance(message, dict):
            # A snapshot of the message so far (or the final whole message): only the part
            # beyond what was already seen is new.
            whole = text_of(message.get("content"))
            seen = self.text + added
            if whole.startswith(seen):
                added += whole[len(seen) :]
            elif whole and not seen:
                added = whole
            calls = message_tool_calls(message)
            if calls:
                self.snapshot_calls = calls
        if isinstance(chunk.get("text"), str) and not any(
            key in chunk for key in ("delta", "message", "choices")
        ):
            added += chunk["text"]
        return added

    def absorb(self, chunk: JSON) -> str:
        added = self.new_text(chunk)
        self.text += added
        self.rag_results.extend(rag_results_of(chunk))
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_from(chunk["usage"])
        if chunk.get("model"):
            self.model = str(chunk["model"])
        for key in ("finish_reason", "stop_reason"):
            if chunk.get(key):
                self.finish_reason = str(chunk[key])
        if chunk.get("done") is True or chunk.get("is_final") is True:
            self.finished = True
        return added

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.deltas.result() if self.deltas else self.snapshot_calls


def _error_in(chunk: JSON) -> str | None:
    error = chunk.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if isinstance(error, str):
        return error
    # gRPC-gateway status shape: {"code": 8, "message": "...", "details": []}
    if isinstance(chunk.get("code"), int) and chunk.get("code") and "message" in chunk:
        return str(chunk["message"])
    return None


# -- the provider --------------------------------------------------------------------------------


class XaiSupportAgentProvider:
    """The xAI Support Agents API behind the model-provider interface."""

    def __init__(
        self,
        *,
        api_key: str | None,
        support_agent_id: str,
        base_url: str | None = None,
        deployment_id: str = "LATEST",
        environment: str = "ENVIRONMENT_PROD",
        timeout_seconds: float = 30.0,
        stream: bool = True,
        name: str = "xai-support-agent",
    ) -> None:
        self.name = name
        self.support_agent_id = support_agent_id
        self.deployment_id = deployment_id
        self.environment = environment
        self._secret = api_key
        self._stream = stream
        self._client = ProviderHTTP(
            provider=name,
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=api_key,
            timeout_seconds=timeout_seconds,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def body(self, request: ModelRequest) -> JSON:
        """The JSON body for one call. Tools and guardrails live on the agent (xAI console)."""
        return {
            "support_agent_id": self.support_agent_id,
            "deployment_id": self.deployment_id,
            "conversation_id": request.thread_key or f"conv-{uuid.uuid4().hex}",
            "messages": to_xai_messages(request.messages),
            "environment": self.environment,
        }

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        body = self.body(request)
        stream = self._stream and request.stream
        response = await (self._streamed(body, on_delta) if stream else self._whole(body))
        # The API takes no output limit (that lives on the agent, in xAI's console), but an
        # answer it stopped short and missing usage are handled like every provider's.
        return await settle_answer(
            request, response, provider=self.name, streamed_to=on_delta if stream else None
        )

    async def _whole(self, body: JSON) -> ModelResponse:
        answer = await self._client.request("POST", CHAT_PATH, json=body)
        data = decode_json(self.name, answer.body, secret=self._secret)
        if not isinstance(data, dict):
            raise ProviderError(f"{self.name}: answer is not a JSON object", retryable=True)
        error = _error_in(data)
        if error and not isinstance(data.get("message"), dict):
            raise ProviderError(f"{self.name}: {scrub(error, self._secret)[:300]}", retryable=False)
        message = data.get("message")
        if not isinstance(message, dict):
            # Tolerate a chat-completions-shaped answer.
            choices = data.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                message = choices[0].get("message")
        if not isinstance(message, dict):
            raise ProviderError(f"{self.name}: answer has no message", retryable=True)
        calls = message_tool_calls(message)
        return ModelResponse(
            text=text_of(message.get("content")),
            tool_calls=calls,
            usage=usage_from(data.get("usage")),
            model=str(data.get("model") or self.support_agent_id),
            finish_reason=str(data.get("finish_reason") or ("tool_calls" if calls else "stop")),
            rag_results=rag_results_of(data),
        )

    async def _streamed(self, body: JSON, on_delta: DeltaSink | None) -> ModelResponse:
        state = _StreamState()
        frames = 0
        async with self._client.stream(
            "POST", STREAM_PATH, json=body, headers={"Accept": "text/event-stream"}
        ) as response:
            async for frame in iter_frames(response.lines()):
                if frame.data.strip() == "[DONE]":
                    state.finished = True
                    break
                chunk = decode_json(self.name, frame.data, secret=self._secret)
                # grpc-gateway wraps each streamed message as {"result": {...}}.
                if isinstance(chunk, dict) and isinstance(chunk.get("result"), dict):
                    chunk = chunk["result"]
                if not isinstance(chunk, dict):
                    continue
                frames += 1
                error = _error_in(chunk)
                if error:
                    raise ProviderError(
                        f"{self.name}: error in stream: {scrub(error, self._secret)[:300]}",
                        retryable=False,
                    )
                added = state.absorb(chunk)
                if added and on_delta is not None:
                    await on_delta(added)
        if frames == 0:
            raise ProviderError(f"{self.name}: stream carried no answer", retryable=True)
        calls = state.tool_calls()
        return ModelResponse(
            text=state.text,
            tool_calls=calls,
            usage=state.usage,
            model=state.model or self.support_agent_id,
            finish_reason=state.finish_reason or ("tool_calls" if calls else "stop"),
            rag_results=tuple(_unique(state.rag_results)),
        )


def _unique(items: list[JSON]) -> list[JSON]:
    """``items`` without repeats (a stream may send the same rag results more than once)."""
    seen: list[JSON] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
