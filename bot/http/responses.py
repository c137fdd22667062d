"""OpenAI's Responses API over our turns, so the ``openai`` client library drives a turn
unchanged: ``POST /v1/responses`` with ``conversation`` and ``input`` sends the customer's
message and answers with OpenAI's response object, or with ``"stream": true`` OpenAI's stream
events. Plus the item routes the library has beside ``items.list``: reading one item, and a
clear refusal to write items (they are the record of the turns, reconstructed from runs).

The turn is the same one ``POST /v1/conversations/{id}/messages`` runs (``bot.http.turns``);
only the shape differs. Mapping of the turn's events:

- ``run.started`` → ``response.created``, ``response.in_progress``
- the first ``message.delta`` → ``response.output_item.added``, ``response.content_part.added``;
  every ``message.delta`` → ``response.output_text.delta``
- ``message.reset`` (a fallback model replaces an answer that failed mid-stream; OpenAI has no
  such event) → ``response.output_item.done`` for the message with ``status: "incomplete"``,
  then, with the next delta, ``response.output_item.added`` again for the same ``item_id`` and
  ``output_index`` with empty content: the item starts over, its earlier text is withdrawn
- ``run.completed`` → ``response.output_text.done``, ``response.content_part.done``,
  ``response.output_item.done``, ``response.completed``
- ``run.failed`` → the same with ``response.failed`` (``error`` set; the output holds what the
  customer was told, e.g. the apology after an escalation)
- ``run.skipped`` (a person holds the conversation) → ``response.incomplete`` with
  ``incomplete_details.reason = "human_handoff"`` and no output
- ``tool.*`` → nothing: the agent's tools run on the server; they are not the caller's to run.

``model`` is ignored unless it names an agent, which must then be the conversation's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.domain import JSON, Run, Smith, new_id, now
from bot.http.auth import READ, WRITE, Principal, api_error, require_scope
from bot.http.context import CONTEXT_KEY, ApiContext
from bot.http.conversations import (
    _annotation,
    _json_body,
    items_are_read_only,
    transcript,
)
from bot.http.turns import StreamEvent, citations, customer_message, submitted, write_sse
from bot.store.store import NotFound
from bot.store.web import Conversation

log = logging.getLogger(__name__)

MAX_FILES = 10
# Parameters whose meaning the server keeps for itself: accepting and ignoring them would
# leave a caller believing they took effect.
REFUSED = {
    "instructions": "the agent's instructions are configured on the server",
    "previous_response_id": "continue a conversation with `conversation` instead",
    "tools": "the agent's tools are configured on the server",
}


# -- the request ------------------------------------------------------------------------------


def _text_and_files(value: Any) -> tuple[str, list[str]]:
    """``input`` as a string, or input items: the customer's messages (``role: user``) whose
    content is a string or ``input_text`` / ``input_image`` / ``input_file`` parts (files by
    ``file_id`` from ``POST /v1/files``)."""
    if isinstance(value, str):
        return value.strip(), []
    if not isinstance(value, list) or not value:
        raise api_error(400, "input is a string or a non-empty list of input items",
                        code="invalid_input")
    texts: list[str] = []
    files: list[str] = []
    for item in value:
        if not isinstance(item, dict):
            raise api_error(400, "input items are objects", code="invalid_input")
        kind = item.get("type", "message")
        role = item.get("role", "user")
        if kind != "message" or role != "user":
            raise api_error(
                400,
                f"only the customer's messages (type message, role user) are accepted as input, "
                f"not {kind}/{role}: the agent's instructions and the history are the "
                "conversation's own",
                code="invalid_input",
            )
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        if not isinstance(content, list):
            raise api_error(400, "a message's content is a string or a list of parts",
                            code="invalid_input")
        for part in content:
            part_kind = part.get("type") if isinstance(part, dict) else None
            if part_kind == "input_text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part_kind in ("input_image", "input_file") and isinstance(
                part.get("file_id"), str
            ):
                files.append(part["file_id"])
            elif part_kind in ("input_image", "input_file"):
                raise api_error(400, f"{part_kind} parts name a file uploaded with "
                                "POST /v1/files by its file_id", code="invalid_input")
            else:
                raise api_error(400, f"unsupported content part {part_kind!r}",
                                code="invalid_input")
    if len(files) > MAX_FILES:
        raise api_error(400, f"at most {MAX_FILES} files per message", code="invalid_input")
    return "\n\n".join(t.strip() for t in texts if t.strip()), files


def _conversation_id(value: Any) -> str | None:
    """``conversation`` as an id or as ``{"id": …}``."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise api_error(400, "conversation is a conversation id or {\"id\": …}",
                        code="invalid_conversation")
    return value


# -- the response object ----------------------------------------------------------------------


def _usage(run: Run | None) -> JSON | None:
    if run is None:
        return None
    used = run.usage
    return {
        "input_tokens": used.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": used.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used.input_tokens + used.output_tokens,
    }


def _message_item(item_id: str, status: str, text: str | None,
                  annotations: list[JSON] | None = None) -> JSON:
    content = [] if text is None else [
        {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}
    ]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": content}


@dataclass
class _Response:
    """One response as it is being written; ``json()`` is OpenAI's response object."""

    conversation_id: str
    model: str
    metadata: JSON
    id: str = ""
    created_at: int = field(default_factory=lambda: int(now()))
    status: str = "in_progress"
    output: list[JSON] = field(default_factory=list)
    error: JSON | None = None
    incomplete_details: JSON | None = None
    usage: JSON | None = None

    def json(self) -> JSON:
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "background": False,
            "conversation": {"id": self.conversation_id},
            "error": self.error,
            "incomplete_details": self.incomplete_details,
            "instructions": None,
            "max_output_tokens": None,
            "metadata": self.metadata,
            "model": self.model,
            "output": self.output,
            "parallel_tool_calls": False,
            "previous_response_id": None,
            "store": True,
            "temperature": None,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": None,
            "truncation": "disabled",
            "usage": self.usage,
        }


def _response_id(run_id: str | None) -> str:
    # The response and the run are one: its id leads to the run (GET /v1/runs/run_…).
    return f"resp_{run_id.removeprefix('run_')}" if run_id else new_id("resp")


class _Translator:
    """Turns the turn's events into OpenAI's Responses stream events, in order."""

    def __init__(self, ctx: ApiContext, response: _Response):
        self._ctx = ctx
        self.response = response
        self._sequence = 0
        self._item_id = ""
        self._open = False  # a message item has been added and not yet done
        self._text = ""

    def _event(self, kind: str, **fields: Any) -> StreamEvent:
        data: JSON = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return StreamEvent(kind, data)

    def _started(self, run_id: str | None) -> list[StreamEvent]:
        self.response.id = self.response.id or _response_id(run_id)
        self._item_id = f"{run_id}.o" if run_id else new_id("msg")
        snapshot = self.response.json()
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def _open_item(self) -> list[StreamEvent]:
        self._open = True
        self._text = ""
        return [
            self._event("response.output_item.added", output_index=0,
                        item=_message_item(self._item_id, "in_progress", None)),
            self._event("response.content_part.added", item_id=self._item_id, output_index=0,
                        content_index=0,
                        part={"type": "output_text", "text": "", "annotations": []}),
        ]

    def _delta(self, delta: str) -> list[StreamEvent]:
        events = [] if self._open else self._open_item()
        self._text += delta
        events.append(self._event("response.output_text.delta", item_id=self._item_id,
                                  output_index=0, content_index=0, delta=delta, logprobs=[]))
        return events

    def _withdrawn(self) -> list[StreamEvent]:
        if not self._open:
            return []
        self._open = False
        return [self._event("response.output_item.done", output_index=0,
                            item=_message_item(self._item_id, "incomplete", self._text))]

    async def _ended(self, frame: StreamEvent) -> list[StreamEvent]:
        data = frame.data
        run_id = data.get("run_id")
        run = await self._run(run_id if isinstance(run_id, str) else None)
        events = [] if self.response.id else self._started(run.id if run else None)
        response = self.response
        response.usage = _usage(run)
        if frame.name == "run.skipped":
            if self._open:
                events += self._withdrawn()
            response.status = "incomplete"
            response.incomplete_details = {"reason": "human_handoff"}
            return [*events, self._event("response.incomplete", response=response.json())]
        text = str(data.get("output_text") or "")
        if text:
            annotations = [_annotation(c, text) for c in citations(run)] if run else []
            if not self._open:
                events += self._open_item()
            part = {"type": "output_text", "text": text, "annotations": annotations}
            item = _message_item(self._item_id, "completed", text, annotations)
            events += [
                self._event("response.output_text.done", item_id=self._item_id, output_index=0,
                            content_index=0, text=text, logprobs=[]),
                self._event("response.content_part.done", item_id=self._item_id,
                            output_index=0, content_index=0, part=part),
                self._event("response.output_item.done", output_index=0, item=item),
            ]
            self._open = False
            response.output = [item]
        elif self._open:
            events += self._withdrawn()
        if frame.name == "run.completed":
            response.status = "completed"
            return [*events, self._event("response.completed", response=response.json())]
        response.status = "failed"
        response.error = {"code": "server_error",
                          "message": str(data.get("error") or "the turn failed")}
        return [*events, self._event("response.failed", response=response.json())]

    async def _run(self, run_id: str | None) -> Run | None:
        if run_id is None:
            return None
        try:
            return await self._ctx.store.get_run(run_id)
        except NotFound:
            return None

    async def translate(
        self, frames: AsyncIterator[StreamEvent]
    ) -> AsyncGenerator[StreamEvent, None]:
        async for frame in frames:
            if frame.name == "run.started":
                run_id = frame.data.get("run_id")
                for event in self._started(run_id if isinstance(run_id, str) else None):
                    yield event
            elif frame.name == "message.delta":
                for event in self._delta(str(frame.data.get("delta") or "")):
                    yield event
            elif frame.name == "message.reset":
                for event in self._withdrawn():
                    yield event
            elif frame.name in ("run.completed", "run.failed", "run.skipped"):
                for event in await self._ended(frame):
                    yield event
                return
        # The turn's events ended without saying how (its run went missing): say it failed
        # rather than leave the caller waiting for a terminal event.
        ended = StreamEvent("run.failed", {"error": "the turn's outcome is unknown"})
        for event in await self._ended(ended):
            yield event


# -- the handlers -----------------------------------------------------------------------------


class ResponsesApi:
    """The handlers; routes are added by ``bot.http.api``."""

    async def _caller(self, request: web.Request, scope: str) -> tuple[ApiContext, Principal]:
        ctx = request.app[CONTEXT_KEY]
        principal = await ctx.principal(request)
        require_scope(principal, scope)
        return ctx, principal

    async def _conversation(self, ctx: ApiContext, smith: Smith, conversation_id: str
                            ) -> Conversation:
        try:
            return await ctx.web.get_conversation(conversation_id, smith.id)
        except NotFound:
            raise api_error(404, "no such conversation", code="not_found") from None

    async def create(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/responses``: the customer's message into ``conversation`` (a new one
        when none is named), answered as OpenAI's response object or its stream events."""
        ctx, principal = await self._caller(request, WRITE)
        body = await _json_body(request)
        for name, why in REFUSED.items():
            if body.get(name):
                raise api_error(400, f"{name} is not accepted here: {why}",
                                code="unsupported_parameter")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise api_error(400, "metadata is an object", code="invalid_metadata")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise api_error(400, "stream is true or false", code="invalid_stream")
        text, file_ids = _text_and_files(body.get("input"))
        smith = await ctx.smith(principal)
        conversation_id = _conversation_id(body.get("conversation"))
        if conversation_id is None:
            conversation = await ctx.web.create_conversation(smith)
        else:
            conversation = await self._conversation(ctx, smith, conversation_id)
        agent = await ctx.store.get_agent_by_id(smith.agent_id)
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise api_error(400, "model is a string", code="invalid_model")
        if model and model != agent.slug:
            try:
                await ctx.store.get_agent(model)
            except NotFound:
                pass  # a model name such as "gpt-4o": the conversation's agent answers
            else:
                raise api_error(400, f"this conversation is with agent {agent.slug!r}, "
                                f"not {model!r}", code="invalid_model")
        message = await customer_message(ctx, smith, conversation, text=text, file_ids=file_ids)
        translator = _Translator(ctx, _Response(conversation.id, agent.slug, dict(metadata)))
        async with submitted(ctx, message, conversation) as frames:
            events = translator.translate(frames)
            if stream:
                return await write_sse(request, events)
            async for _ in events:
                pass  # the response object gathers what the events say
        return web.json_response(translator.response.json())

    async def item(self, request: web.Request) -> web.Response:
        """``GET /v1/conversations/{id}/items/{item_id}``: one item of the transcript."""
        ctx, principal = await self._caller(request, READ)
        smith = await ctx.smith(principal)
        conversation = await self._conversation(ctx, smith, request.match_info["id"])
        wanted = request.match_info["item_id"]
        for item in await transcript(ctx, conversation):
            if item["id"] == wanted:
                return web.json_response(item)
        raise api_error(404, "no such item in this conversation", code="not_found")

    async def create_items(self, request: web.Request) -> web.Response:
        """``POST /v1/conversations/{id}/items``: refused, items are read-only."""
        ctx, principal = await self._caller(request, WRITE)
        smith = await ctx.smith(principal)
        await self._conversation(ctx, smith, request.match_info["id"])
        raise items_are_read_only()
