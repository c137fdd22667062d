"""The model-provider seam: a chat request with tools in, text and tool calls out.

Providers are stateless from the caller's view: every call carries the whole context. A
provider that keeps server-side state (Ingram) uses ``thread_key``/``smith_key`` to find it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
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


# -- answers cut at the output cap ---------------------------------------------------------------

# Said after an answer that stopped at ``model.max_output_tokens``, so the customer knows
# the rest is missing rather than reading a half-finished instruction as the whole of it.
TRUNCATION_NOTE = "(This answer was cut short. Ask me to continue if you need the rest.)"
# Less than this left after cutting at a sentence end is no answer: the fallback gives one.
MIN_CUT_CHARS = 40

# A sentence end: . ! ? … (and CJK forms), closing quotes/brackets/emphasis after it, then
# white space or the end of the text.
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]\u00bb*_]*(?=\s|$)")
# "1." opening a numbered list item is no sentence end.
_LIST_NUMBER = re.compile(r"(?:^|\n)\s*\d+\.$")


def cut_at_sentence(text: str) -> str | None:
    """``text`` up to its last complete sentence (or line), or None when less than
    ``MIN_CUT_CHARS`` would remain."""
    ends = [
        m.end()
        for m in _SENTENCE_END.finditer(text)
        if not _LIST_NUMBER.search(text[: m.end()])
    ]
    # A finished line (a list item, a heading) is as complete as a sentence.
    line_end = text.rstrip().rfind("\n")
    cut = max([*ends, max(line_end, 0)])
    kept = text[:cut].rstrip()
    return kept if len(kept) >= MIN_CUT_CHARS else None


def _settle_length(response: ModelResponse, *, provider: str) -> ModelResponse:
    """An answer that stopped at the output cap (``finish_reason: length``), made fit to send:
    cut at its last sentence with ``TRUNCATION_NOTE`` after it, and marked ``truncated`` in its
    usage. Raises a non-retryable ``ProviderError`` when nothing sensible remains, so the next
    provider in the fallback chain answers instead. Other answers pass unchanged."""
    if response.finish_reason != "length":
        return response
    usage = replace(response.usage, truncated=True)
    if response.tool_calls:
        # Cut-off arguments are invalid JSON already and go back to the model as a tool error.
        return replace(response, usage=usage)
    kept = cut_at_sentence(response.text)
    if kept is None:
        raise ProviderError(
            f"{provider}: the answer reached the output cap (max_output_tokens) "
            "before a sentence was complete",
            retryable=False,
        )
    return replace(response, text=f"{kept}\n\n{TRUNCATION_NOTE}", usage=usage)


# -- usage a server did not report ---------------------------------------------------------------

# Tokens per character of text when a server reports no usage and cannot count it either
# (``bot.providers.tokens`` asks the server's own tokenizer first): OpenAI's rule of thumb for
# English ("~4 characters per token"). No tokenizer runs here offline for the models served
# (see ``bot.providers.tokens`` for why), and none is worth a dependency for a cost figure.
CHARS_PER_TOKEN = 4
# What a chat template adds around each message (role markers, separators): OpenAI's
# cookbook counts 3-4.
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` would take, from its length (``CHARS_PER_TOKEN``): good to tens of
    percent on English prose, worse on code and on languages written without spaces."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_usage(request: ModelRequest, response: ModelResponse) -> Usage:
    """Usage for a call whose server reported none, from the text that went each way (text
    only: what an image part costs depends on the model, so parts are not counted)."""
    sent = 0
    for message in request.messages:
        sent += TOKENS_PER_MESSAGE + estimate_tokens(message.content)
        for call in message.tool_calls:
            sent += estimate_tokens(call.name) + estimate_tokens(call.raw_arguments)
    if request.tools:
        specs = [
            {"name": t.name, "description": t.description, "parameters": t.parameters}
            for t in request.tools
        ]
        sent += estimate_tokens(json.dumps(specs, ensure_ascii=False))
    said = estimate_tokens(response.text) + sum(
        estimate_tokens(call.name) + estimate_tokens(call.raw_arguments)
        for call in response.tool_calls
    )
    return Usage(sent, said, estimated=True)


async def settle_answer(
    request: ModelRequest,
    response: ModelResponse,
    *,
    provider: str,
    streamed_to: DeltaSink | None,
) -> ModelResponse:
    """A provider's answer made fit for the turn: usage estimated (and marked) when the
    server reported none, an answer stopped by the output cap cut at its last sentence with
    ``TRUNCATION_NOTE`` (and marked ``truncated``), or a non-retryable ``ProviderError`` when
    nothing sensible remains of it, so the next provider in the fallback chain answers.

    ``streamed_to``: the sink the answer's text was streamed to, if it was. The cut-off words
    are on screen already; the note follows them there too (the stored run keeps the cut).
    """
    if not response.usage.input_tokens and not response.usage.output_tokens:
        response = replace(response, usage=estimate_usage(request, response))
    settled = _settle_length(response, provider=provider)
    if settled.text != response.text and streamed_to is not None:
        await streamed_to(f"\n\n{TRUNCATION_NOTE}")
    return settled
