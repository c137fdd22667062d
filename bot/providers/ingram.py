"""``ingram``: Ingram Cloud agents over the native runs API.

Each customer is a smith (``POST /v1/smiths`` upserts on ``external_id`` = the request's
``smith_key``); each conversation is a thread (``thread_id`` = ``thread_key``) whose history
Ingram keeps, so a turn sends only the customer's new input. Runs stream the native envelope:
SSE ``event:`` names with ``data: {"v":1, "run_id": …, …}`` (``run.started``,
``message.delta``, ``tool.*``, ``run.paused``, ``approval.required``, ``run.completed``,
``run.failed``). Every request carries ``IC-Api-Version: 2026-05-01``.

Client-side tools: a run that pauses for a tool call (``paused_for_tool``) comes back as a
``ModelResponse`` with ``tool_calls``; the provider remembers the paused run per thread, and
the next call — whose last messages are the tool results — resumes it with
``POST …/runs/{id}/submit`` instead of starting a new run. A stream that ends without a
terminal frame leaves the run's status unknown: that is a retryable ``ProviderError``. A stream
whose connection breaks once the run is known (a reset, a read timeout) is not answered by a
second run — that would put the customer's message into the thread twice — but by following
the first one's record until it ends.

Ingram takes behaviour from the smith's agent, not from a system message, so system messages
(instructions, retrieved knowledge) are not sent; configure them on the Ingram agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

from bot.domain import JSON, Usage
from bot.providers.base import (
    ChatMessage,
    DeltaSink,
    ModelRequest,
    ModelResponse,
    ProviderError,
    ToolCall,
)
from bot.providers.openai import to_openai_tools, tool_calls_from
from bot.providers.transport import (
    HTTPStream,
    ProviderHTTP,
    ProviderHTTPError,
    ProviderTransportError,
    decode_json,
    iter_frames,
    scrub,
    usage_from,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cloud.ingram.tech"
API_VERSION = "2026-05-01"
TERMINAL_EVENTS = frozenset(
    {"run.completed", "run.failed", "run.cancelled", "run.paused", "run.duplicate"}
)
# Run failures worth another run: the upstream model or Ingram itself hiccuped.
RETRYABLE_FAILURES = frozenset(
    {
        "model_request_failed",
        "internal_error",
        "service_overloaded",
        "rate_limit_exceeded",
        "concurrency_limit_exceeded",
        "broker_unavailable",
    }
)
POLL_INTERVAL = 0.5


@dataclass
class _PausedRun:
    """A run waiting for client-side tool results."""

    smith_id: str
    run_id: str
    pending: tuple[str, ...]
    submitted: set[str] = field(default_factory=set)


@dataclass
class _RunOutcome:
    """What one run stream or run record said."""

    run_id: str = ""
    text: str = ""
    status: str = "unknown"
    stop_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    error: str | None = None
    error_code: str | None = None
    approval: JSON | None = None
    # The stream broke before its end: what it showed may be only the text's beginning.
    interrupted: bool = False


# -- mapping -------------------------------------------------------------------------------------


def _content(message: ChatMessage) -> str | list[JSON]:
    if not message.parts:
        return message.content
    parts: list[JSON] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for part in message.parts:
        if part.kind == "image":
            parts.append({"type": "image", "image": part.data_url})
        else:
            parts.append({"type": "file", "filename": part.name, "data": part.data_url})
    return parts


def new_input(messages: Sequence[ChatMessage]) -> list[JSON]:
    """The customer's input since the last assistant or tool message (Ingram has the rest)."""
    tail: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role == "user":
            tail.append(message)
        elif message.role in ("assistant", "tool"):
            break
    if not tail:
        last_user = next((m for m in reversed(messages) if m.role == "user"), None)
        tail = [last_user] if last_user else []
    return [{"role": "user", "content": _content(m)} for m in reversed(tail)]


def trailing_tool_results(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The tool messages at the end of the history, in order."""
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    return list(reversed(results))


def tool_result_object(content: str) -> JSON:
    """A tool's output as the object ``submit`` takes (non-objects are wrapped)."""
    try:
        value = json.loads(content)
    except ValueError:
        return {"output": content}
    return value if isinstance(value, dict) else {"output": value}


def _normalised_calls(items: Any) -> tuple[ToolCall, ...]:
    """Tool calls given OpenAI-style (``{id, function}``) or natively (``{tool_call_id, tool, args}``)."""
    if not isinstance(items, list):
        return ()
    shaped: list[JSON] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("function"), dict):
            shaped.append(item)
            continue
        shaped.append(
            {
                "id": item.get("id") or item.get("tool_call_id"),
                "function": {
                    "name": item.get("name") or item.get("tool"),
                    "arguments": item.get("arguments", item.get("args")),
                },
            }
        )
    return tool_calls_from(shaped)


def _calls_in(data: JSON) -> tuple[ToolCall, ...]:
    for source in (data, data.get("output") if isinstance(data.get("output"), dict) else None):
        if not isinstance(source, dict):
            continue
        for key in ("tool_calls", "pending_tool_calls"):
            calls = _normalised_calls(source.get(key))
            if calls:
                return calls
    return ()


def _frame_data(event: str | None, payload: JSON) -> tuple[str, JSON]:
    """The event name and a flat data object, whether fields sit beside ``v``/``run_id``
    (the live stream) or under ``data`` (recorded events)."""
    name = event or str(payload.get("event") or payload.get("type") or "")
    data = dict(payload)
    nested = payload.get("data")
    if isinstance(nested, dict):
        data = {**nested, **{k: v for k, v in payload.items() if k != "data"}}
    return name, data


# -- the provider --------------------------------------------------------------------------------


class IngramProvider:
    """Ingram Cloud smiths and runs behind the model-provider interface."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        agent_id: str | None = None,
        timeout_seconds: float = 30.0,
        stream: bool = True,
        name: str = "ingram",
        max_tracked: int = 10_000,
    ) -> None:
        self.name = name
        self.agent_id = agent_id
        self._secret = api_key
        self._stream = stream
        # The most recently used smith ids (smith key → smt_…) and paused runs (thread key →
        # run), ``max_tracked`` of each: the least recently used goes first.
        self._smiths: LRUCache[str, str] = LRUCache(maxsize=max_tracked)
        self._paused: LRUCache[str, _PausedRun] = LRUCache(maxsize=max_tracked)
        self._client = ProviderHTTP(
            provider=name,
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=api_key,
            timeout_seconds=timeout_seconds,
            headers={"IC-Api-Version": API_VERSION},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def paused_run(self, thread_key: str) -> str | None:
        """The id of the run paused for tool results on ``thread_key``, if any."""
        paused = self._paused.get(thread_key)
        return paused.run_id if paused else None

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        smith_key = request.smith_key or (
            f"anon:thread:{request.thread_key}" if request.thread_key else None
        )
        if smith_key is None:
            raise ProviderError(f"{self.name}: a request needs a smith_key or a thread_key")
        key = request.thread_key or smith_key
        stream = self._stream and request.stream
        results = trailing_tool_results(request.messages)
        if results:
            outcome = await self._resume(key, results, stream, on_delta)
        else:
            cached = smith_key in self._smiths
            smith_id = await self._smith(smith_key)
            await self._cancel_stale(key)
            try:
                outcome = await self._start(smith_id, key, request, stream, on_delta)
            except ProviderHTTPError as exc:
                # A smith archived since we cached its id: upsert it afresh, once.
                if exc.status != 404 or not cached:
                    raise
                self._smiths.pop(smith_key, None)
                smith_id = await self._smith(smith_key)
                outcome = await self._start(smith_id, key, request, stream, on_delta)
        return self._response(outcome)

    # smiths

    async def _smith(self, smith_key: str) -> str:
        cached = self._smiths.get(smith_key)
        if cached is not None:
            return cached
        body: JSON = {"external_id": smith_key}
        if self.agent_id:
            body["agent_id"] = self.agent_id
        if smith_key.startswith("anon:"):
            body["auto_memory"] = False
        answer = await self._client.request("POST", "v1/smiths", json=body)
        data = decode_json(self.name, answer.body, secret=self._secret)
        smith_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(smith_id, str) or not smith_id:
            raise ProviderError(f"{self.name}: smith upsert returned no id", retryable=True)
        self._smiths[smith_key] = smith_id
        return smith_id

    # runs

    async def _start(
        self,
        smith_id: str,
        key: str,
        request: ModelRequest,
        stream: bool,
        on_delta: DeltaSink | None,
    ) -> _RunOutcome:
        body: JSON = {"input": new_input(request.messages), "thread_id": key, "stream": stream}
        if request.tools:
            # Client-side tools: the agent's external-execution tools of the same names pause
            # the run for us to execute.
            body["tools"] = to_openai_tools(request.tools)
        path = f"v1/smiths/{smith_id}/runs"
        try:
            outcome = await self._run_call(path, body, stream, on_delta)
        except ProviderHTTPError as exc:
            # 409: the thread is held by a run paused before this process knew of it (a
            # restart mid-turn). Cancel what waits there and start once more.
            if exc.status != 409 or not await self._cancel_orphans(smith_id, key):
                raise
            outcome = await self._run_call(path, body, stream, on_delta)
        return await self._settle(smith_id, key, outcome)

    async def _cancel_orphans(self, smith_id: str, key: str) -> bool:
        """Cancel the runs paused on thread ``key``; True when there were any."""
        cancelled = False
        for status in ("paused_for_tool", "paused_for_approval"):
            answer = await self._client.request(
                "GET", f"v1/smiths/{smith_id}/runs", params={"status": status, "limit": 50}
            )
            page = decode_json(self.name, answer.body, secret=self._secret)
            runs = page.get("data") if isinstance(page, dict) else None
            for run in runs if isinstance(runs, list) else ():
                if not isinstance(run, dict) or run.get("thread_id") != key or not run.get("id"):
                    continue
                log.warning("cancelling Ingram run %s left paused on this thread", run["id"])
                await self._client.request(
                    "POST",
                    f"v1/smiths/{smith_id}/runs/{run['id']}/submit",
                    json={"kind": "cancel", "reason": "left paused by an interrupted turn"},
                )
                cancelled = True
        return cancelled

    async def _resume(
        self, key: str, results: list[ChatMessage], stream: bool, on_delta: DeltaSink | None
    ) -> _RunOutcome:
        paused = self._paused.get(key)
        if paused is None:
            raise ProviderError(
                f"{self.name}: tool results arrived but no run is paused on this thread"
            )
        to_submit = [
            m
            for m in results
            if m.tool_call_id in paused.pending and m.tool_call_id not in paused.submitted
        ]
        if not to_submit:
            raise ProviderError(f"{self.name}: the tool results match no pending tool call")
        path = f"v1/smiths/{paused.smith_id}/runs/{paused.run_id}/submit"
        for message in to_submit[:-1]:
            await self._client.request("POST", path, json=self._submission(message, stream=False))
            paused.submitted.add(str(message.tool_call_id))
        last = to_submit[-1]
        outcome = await self._run_call(
            path, self._submission(last, stream=stream), stream, on_delta, run_id=paused.run_id
        )
        self._paused.pop(key, None)
        return await self._settle(paused.smith_id, key, outcome)

    @staticmethod
    def _submission(message: ChatMessage, *, stream: bool) -> JSON:
        return {
            "kind": "tool_result",
            "tool_call_id": message.tool_call_id,
            "result": tool_result_object(message.content),
            "stream": stream,
        }

    async def _cancel_stale(self, key: str) -> None:
        """A new customer message while a run waits for tools: that run is abandoned."""
        paused = self._paused.pop(key, None)
        if paused is None:
            return
        path = f"v1/smiths/{paused.smith_id}/runs/{paused.run_id}/submit"
        try:
            await self._client.request(
                "POST",
                path,
                json={"kind": "cancel", "reason": "superseded by a new customer message"},
            )
        except ProviderError as exc:
            log.warning("could not cancel paused Ingram run %s: %s", paused.run_id, exc)

    async def _run_call(
        self,
        path: str,
        body: JSON,
        stream: bool,
        on_delta: DeltaSink | None,
        *,
        run_id: str = "",
    ) -> _RunOutcome:
        if not stream:
            answer = await self._client.request("POST", path, json=body)
            record = decode_json(self.name, answer.body, secret=self._secret)
            if not isinstance(record, dict):
                raise ProviderError(f"{self.name}: run answer is not an object", retryable=True)
            return self._from_record(record)
        async with self._client.stream(
            "POST", path, json=body, headers={"Accept": "text/event-stream"}
        ) as response:
            return await self._read_stream(response, on_delta, run_id)

    async def _read_stream(
        self, response: HTTPStream, on_delta: DeltaSink | None, run_id: str
    ) -> _RunOutcome:
        outcome = _RunOutcome(run_id=run_id)
        candidates: list[JSON] = []
        try:
            await self._read_frames(response, on_delta, outcome, candidates)
        except ProviderTransportError as exc:
            if not outcome.run_id:
                raise
            # The run goes on at Ingram whatever happened to this connection: follow it.
            log.warning("Ingram run %s stream broke (%s); following its record", outcome.run_id, exc)
            outcome.status = "running"
            outcome.interrupted = True
            return outcome
        if outcome.status == "paused_for_tool" and not outcome.tool_calls:
            outcome.tool_calls = _normalised_calls(candidates)
        return outcome

    async def _read_frames(
        self,
        response: HTTPStream,
        on_delta: DeltaSink | None,
        outcome: _RunOutcome,
        candidates: list[JSON],
    ) -> None:
        async for frame in iter_frames(response.lines()):
            payload = decode_json(self.name, frame.data, secret=self._secret)
            if not isinstance(payload, dict):
                continue
            event, data = _frame_data(frame.event, payload)
            if isinstance(data.get("run_id"), str):
                outcome.run_id = data["run_id"]
            if event == "message.delta":
                delta = data.get("delta")
                if isinstance(delta, str) and delta:
                    outcome.text += delta
                    if on_delta is not None:
                        await on_delta(delta)
            elif event == "message.completed":
                content = data.get("content")
                if isinstance(content, str) and content and not outcome.text:
                    outcome.text = content
                    if on_delta is not None:
                        await on_delta(content)
            elif event.startswith("tool."):
                if data.get("tool_call_id") and ("args" in data or "arguments" in data):
                    candidates.append(data)
            elif event == "approval.required":
                outcome.approval = data
            if event in TERMINAL_EVENTS:
                self._apply_terminal(outcome, event, data)
                break

    def _apply_terminal(self, outcome: _RunOutcome, event: str, data: JSON) -> None:
        outcome.usage = usage_from(data.get("usage"))
        if data.get("model"):
            outcome.model = str(data["model"])
        if event == "run.completed":
            outcome.status = "completed"
            outcome.stop_reason = str(data.get("stop_reason") or "end_turn")
        elif event == "run.paused":
            status = str(data.get("status") or "")
            outcome.tool_calls = _calls_in(data)
            if outcome.approval is not None or status == "paused_for_approval":
                outcome.status = "paused_for_approval"
            else:
                outcome.status = "paused_for_tool"
        elif event == "run.failed":
            outcome.status = "failed"
            error = data.get("error")
            if isinstance(error, dict):
                outcome.error_code = str(error.get("code") or "") or None
                outcome.error = str(error.get("message") or error)
            else:
                outcome.error = str(error or "run failed")
                outcome.error_code = str(data.get("code") or "") or None
        elif event == "run.cancelled":
            outcome.status = "cancelled"
            outcome.error = str(data.get("reason") or "run cancelled")
        else:  # run.duplicate: an idempotent replay we never ask for
            outcome.status = "duplicate"
            outcome.error = "Ingram reported a duplicate run"

    def _from_record(self, record: JSON) -> _RunOutcome:
        output = record.get("output") if isinstance(record.get("output"), dict) else {}
        assert isinstance(output, dict)
        error = record.get("error")
        outcome = _RunOutcome(
            run_id=str(record.get("id") or record.get("run_id") or ""),
            text=str(output.get("content") or ""),
            status=str(record.get("status") or "unknown"),
            stop_reason=str(record.get("stop_reason") or "") or None,
            tool_calls=_calls_in(record),
            usage=usage_from(record.get("usage")),
            model=str(record.get("model") or ""),
        )
        if isinstance(error, dict):
            outcome.error = str(error.get("message") or error)
            outcome.error_code = str(error.get("code") or "") or None
        elif error:
            outcome.error = str(error)
        return outcome

    async def _settle(self, smith_id: str, key: str, outcome: _RunOutcome) -> _RunOutcome:
        """Follow a run that is still going, find the calls of a bare pause, remember pauses,
        and turn every unhappy ending into a ``ProviderError``."""
        while outcome.status in ("queued", "running") and outcome.run_id:
            await asyncio.sleep(POLL_INTERVAL)
            outcome = await self._fetch(smith_id, outcome.run_id, outcome)
        if outcome.status == "paused_for_tool" and not outcome.tool_calls and outcome.run_id:
            outcome = await self._fetch(smith_id, outcome.run_id, outcome)
        status = outcome.status
        if outcome.error:
            outcome.error = scrub(outcome.error, self._secret)[:300]
        if status == "completed":
            return outcome
        if status == "paused_for_tool" and outcome.tool_calls:
            self._paused[key] = _PausedRun(
                smith_id=smith_id,
                run_id=outcome.run_id,
                pending=tuple(call.id for call in outcome.tool_calls),
            )
            return outcome
        if status == "unknown":
            raise ProviderError(
                f"{self.name}: run {outcome.run_id or '?'} stream ended without a terminal frame"
                " (status unknown)",
                retryable=True,
            )
        if status == "paused_for_approval":
            raise ProviderError(
                f"{self.name}: run {outcome.run_id} is waiting for a human approval in Ingram Cloud"
            )
        if status == "failed":
            retryable = outcome.error_code is None or outcome.error_code in RETRYABLE_FAILURES
            raise ProviderError(
                f"{self.name}: run {outcome.run_id} failed: {outcome.error or 'no reason given'}"
                + (f" ({outcome.error_code})" if outcome.error_code else ""),
                retryable=retryable,
            )
        raise ProviderError(
            f"{self.name}: run {outcome.run_id} ended as {status}: {outcome.error or ''}".rstrip(
                ": "
            )
        )

    async def _fetch(self, smith_id: str, run_id: str, seen: _RunOutcome) -> _RunOutcome:
        answer = await self._client.request("GET", f"v1/smiths/{smith_id}/runs/{run_id}")
        record = decode_json(self.name, answer.body, secret=self._secret)
        if not isinstance(record, dict):
            raise ProviderError(f"{self.name}: run record is not an object", retryable=True)
        fetched = self._from_record(record)
        # Text already streamed stays the answer; the record fills in what the stream lacked.
        # After a broken stream the record's text is the whole answer, the streamed only its
        # beginning.
        if seen.text and not (seen.interrupted and fetched.text):
            fetched.text = seen.text
        fetched.interrupted = seen.interrupted
        return fetched

    def _response(self, outcome: _RunOutcome) -> ModelResponse:
        paused = outcome.status == "paused_for_tool"
        return ModelResponse(
            text=outcome.text,
            tool_calls=outcome.tool_calls if paused else (),
            usage=outcome.usage,
            model=outcome.model or self.agent_id or self.name,
            finish_reason="tool_calls" if paused else (outcome.stop_reason or "stop"),
        )
