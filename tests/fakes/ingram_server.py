"""A scripted Ingram Cloud: smiths (upsert on ``external_id`` + ``agent_id``), runs on
threads, the native SSE envelope, runs paused for client-side tools and resumed with
``submit``. Every request must carry ``IC-Api-Version: 2026-05-01`` (else 400
``unsupported_api_version``).

Each run start or final tool-result submit takes the next ``IngramStep``::

    async with IngramServer() as server:
        server.enqueue(
            IngramStep(tool_calls=(ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": "u"}),)),
            IngramStep(text="Hi Ada, your plan is active."),
        )
        provider = IngramProvider(api_key="k", base_url=server.url, agent_id="agt_1")

``server.smiths``, ``server.runs`` and ``server.submits`` show what the client did.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.model_server import CutMode, FakeHTTPServer, ScriptedToolCall

API_VERSION = "2026-05-01"


@dataclass(frozen=True)
class IngramStep:
    """What a run does until it ends or pauses."""

    text: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    fail: str | None = None
    fail_code: str = "model_request_failed"
    approval: bool = False
    hosted_tool: str | None = None
    calls_in_pause_frame: bool = True
    nested_data: bool = False
    cut_after: int | None = None
    cut_mode: CutMode = "abort"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    usage: tuple[int, int] = (50, 10)
    chunk_size: int = 6


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        },
        status=status,
        headers=headers,
    )


class IngramServer(FakeHTTPServer):
    """The scripted Ingram Cloud API; ``url`` is the provider's base URL."""

    def __init__(self) -> None:
        super().__init__()
        self.smiths: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.submits: list[dict[str, Any]] = []
        self._smith_serial = 0
        self._queue: deque[IngramStep] = deque()

    def enqueue(self, *steps: IngramStep) -> None:
        self._queue.extend(steps)

    @property
    def run_requests(self) -> list[Any]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/runs")]

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._version_check)
        app.router.add_post("/v1/smiths", self._upsert_smith)
        app.router.add_post("/v1/smiths/{sid}/runs", self._create_run)
        app.router.add_get("/v1/smiths/{sid}/runs", self._list_runs)
        app.router.add_get("/v1/smiths/{sid}/runs/{rid}", self._get_run)
        app.router.add_post("/v1/smiths/{sid}/runs/{rid}/submit", self._submit)

    @web.middleware
    async def _version_check(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("IC-Api-Version") != API_VERSION:
            await self.record(request)
            return _error(400, "unsupported_api_version", "IC-Api-Version 2026-05-01 required")
        response: web.StreamResponse = await handler(request)
        return response

    async def _upsert_smith(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        body = recorded.json or {}
        key = f"{body.get('external_id')}|{body.get('agent_id')}"
        if key in self.smiths:
            return web.json_response(self.smiths[key], status=200)
        self._smith_serial += 1
        smith = {
            "id": f"smt_{self._smith_serial}",
            "external_id": body.get("external_id"),
            "agent_id": body.get("agent_id"),
            "auto_memory": body.get("auto_memory", True),
        }
        self.smiths[key] = smith
        return web.json_response(smith, status=201)

    def archive_smith(self, external_id: str, agent_id: str | None) -> None:
        """Soft-delete a smith (``DELETE /v1/smiths/{id}``): its external id is free again."""
        del self.smiths[f"{external_id}|{agent_id}"]

    def _smith_exists(self, smith_id: str) -> bool:
        return any(s["id"] == smith_id for s in self.smiths.values())

    async def _create_run(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        smith_id = request.match_info["sid"]
        if not self._smith_exists(smith_id):
            return _error(404, "not_found", "no such smith")
        body = recorded.json or {}
        thread_id = body.get("thread_id") or "thr_minted"
        for other in self.runs.values():
            if (
                other["smith_id"] == smith_id
                and other["thread_id"] == thread_id
                and other["status"].startswith("paused")
            ):
                return _error(
                    409, "conversation_locked", f"run {other['id']} is paused on this thread"
                )
        run = {
            "id": f"run_{len(self.runs) + 1}",
            "smith_id": smith_id,
            "thread_id": thread_id,
            "status": "running",
            "input": body.get("input") or [],
            "output": None,
            "stop_reason": None,
            "usage": None,
            "pending": [],
        }
        self.runs[run["id"]] = run
        return await self._advance(request, run, bool(body.get("stream")))

    async def _list_runs(self, request: web.Request) -> web.Response:
        await self.record(request)
        smith_id = request.match_info["sid"]
        status = request.query.get("status")
        data = [
            self._record_of(run)
            for run in reversed(list(self.runs.values()))
            if run["smith_id"] == smith_id and (status is None or run["status"] == status)
        ]
        return web.json_response({"data": data, "has_more": False, "next_cursor": None})

    async def _get_run(self, request: web.Request) -> web.Response:
        await self.record(request)
        run = self.runs.get(request.match_info["rid"])
        if run is None:
            return _error(404, "not_found", "no such run")
        return web.json_response(self._record_of(run))

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        run = self.runs.get(request.match_info["rid"])
        if run is None or run["smith_id"] != request.match_info["sid"]:
            return _error(404, "not_found", "no such run")
        body = recorded.json or {}
        self.submits.append({"run_id": run["id"], **body})
        if run["status"] not in ("paused_for_tool", "paused_for_approval"):
            return _error(409, "run_not_paused", "run is not paused")
        if body.get("kind") == "cancel":
            run["status"] = "cancelled"
            return web.json_response(self._record_of(run))
        if body.get("kind") != "tool_result" or body.get("tool_call_id") not in run["pending"]:
            return _error(400, "invalid_input", "unknown tool_call_id")
        if not isinstance(body.get("result"), dict):
            return _error(400, "invalid_input", "result must be an object")
        run["pending"].remove(body["tool_call_id"])
        if run["pending"]:
            return web.json_response(self._record_of(run))
        run["status"] = "running"
        return await self._advance(request, run, bool(body.get("stream")))

    def _record_of(self, run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if k != "pending"} | {"warnings": []}

    @staticmethod
    def _calls(step: IngramStep) -> list[dict[str, Any]]:
        return [
            {
                "id": call.id or f"call_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_text()},
            }
            for i, call in enumerate(step.tool_calls)
        ]

    def _finish(self, run: dict[str, Any], step: IngramStep) -> tuple[str, dict[str, Any]]:
        """Apply ``step``'s ending to ``run``; return the terminal frame."""
        usage = {
            "input_tokens": step.usage[0],
            "output_tokens": step.usage[1],
            "total_tokens": sum(step.usage),
        }
        run["usage"] = usage
        if step.tool_calls:
            calls = self._calls(step)
            run.update(status="paused_for_tool", output={"content": step.text, "tool_calls": calls})
            run["pending"] = [c["id"] for c in calls]
            frame: dict[str, Any] = {"status": "paused_for_tool"}
            if step.calls_in_pause_frame:
                frame["tool_calls"] = calls
            return "run.paused", frame
        if step.fail:
            run.update(status="failed", output={"content": step.text})
            return "run.failed", {"error": step.fail, "code": step.fail_code}
        if step.approval:
            run.update(status="paused_for_approval", output={"content": step.text})
            return "run.paused", {"status": "paused_for_approval"}
        run.update(status="completed", output={"content": step.text}, stop_reason="end_turn")
        return "run.completed", {"stop_reason": "end_turn", "usage": usage}

    async def _advance(
        self, request: web.Request, run: dict[str, Any], stream: bool
    ) -> web.StreamResponse:
        step = (
            self._queue.popleft()
            if self._queue
            else IngramStep(fail="no scripted step", fail_code="internal_error")
        )
        if step.status != 200:
            run["status"] = "failed"
            return _error(step.status, "scripted", "scripted failure", step.headers)
        terminal = self._finish(run, step)
        if not stream:
            return web.json_response(self._record_of(run))
        frames: list[tuple[str, dict[str, Any]]] = [
            ("run.started", {"smith_id": run["smith_id"], "thread_id": run["thread_id"]})
        ]
        if step.hosted_tool:
            frames += [
                ("tool.executing", {"tool": step.hosted_tool}),
                ("tool.completed", {"tool": step.hosted_tool}),
            ]
        text = step.text
        frames += [
            ("message.delta", {"delta": text[i : i + step.chunk_size]})
            for i in range(0, len(text), step.chunk_size)
        ]
        if step.approval:
            frames.append(
                (
                    "approval.required",
                    {
                        "approval_id": "apr_1",
                        "tool": "delete_record",
                        "tool_call_id": "call_x",
                        "args": {},
                    },
                )
            )
        frames.append(terminal)
        response = await self.sse_response(request)
        await response.write(b": keep-alive\n\n")
        for sent, (event, data) in enumerate(frames):
            if step.cut_after is not None and sent >= step.cut_after:
                return await self.cut(request, response, step.cut_mode)
            envelope = {"v": 1, "run_id": run["id"]}
            payload = {**envelope, "data": data} if step.nested_data else {**envelope, **data}
            await response.write(
                f"id: {sent}\nevent: {event}\ndata: {json.dumps(payload)}\n\n".encode()
            )
            await asyncio.sleep(0)
        await response.write_eof()
        return response
