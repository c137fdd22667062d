"""The model-provider seam: a chat request with tools in, text and tool calls out.

Providers are stateless from the caller's view: every call carries the whole context. A
provider that keeps server-side state (Ingram) uses ``thread_key``/``smith_key`` to find it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.domain import JSON, Usage
from bot.retry import RemoteError

Role = Literal["system", "user", "assistant", "tool"]


class DeltaSink(Protocol):
    """Where a model call's streamed text goes as it arrives.

    ``reset()`` withdraws all the text sent so far: a provider that failed after streaming
    part of an answer is followed by another that answers afresh, and the customer must see
    the second answer, not both run together. A sink is a Protocol rather than a bare
    callable so that every consumer has to say what a reset means to it.
    """

    async def __call__(self, text: str, /) -> None: ...

    async def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DeltaHandlers:
    """A ``DeltaSink`` made of two coroutine functions: ``send`` text, ``withdraw`` it all."""

    send: Callable[[str], Awaitable[None]]
    withdraw: Callable[[], Awaitable[None]]

    async def __call__(self, text: str, /) -> None:
        await self.send(text)

    async def reset(self) -> None:
        await self.withdraw()


@dataclass(frozen=True, slots=True)
class ContentPart:
    """A non-text part of a user message: an image or a file, inlined as a data URL."""

    kind: Literal["image", "file"]
    name: str
    content_type: str
    data_url: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for. ``arguments`` is None when ``raw_arguments`` is not
    valid JSON; ``error`` then says why, and the loop hands that back to the model."""

    id: str
    name: str
    raw_arguments: str
    arguments: JSON | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    parts: tuple[ContentPart, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: JSON


@dataclass(frozen=True, slots=True)
class ModelRequest:
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    model: str | None = None
    temperature: float | None = None
    stream: bool = False
    thread_key: str | None = None
    smith_key: str | None = None


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()  # noqa: RUF009 — Usage is a frozen value, one shared default is safe
    model: str = ""
    finish_reason: str = "stop"
    rag_results: tuple[JSON, ...] = field(default_factory=tuple)


class ProviderError(RemoteError):
    """A model call that failed. ``retryable`` errors (429, 5xx, timeouts) may be retried."""


class ModelProvider(Protocol):
    name: str

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """One model call. With ``on_delta`` (and ``request.stream``) text arrives as it comes."""
        ...

    async def aclose(self) -> None: ...
