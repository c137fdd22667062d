"""Stored rows to domain values and back: agents, versions, smiths, threads, runs, tool calls
and actions. Plain functions of a ``RowMapping``; the store's own records (inbox items, outbox
entries) are mapped next to their types in ``inbox`` and ``outbox``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import RowMapping

from bot.domain import (
    Action,
    ActionKind,
    Agent,
    AgentDefinition,
    AgentVersion,
    Control,
    Run,
    Smith,
    StopReason,
    Thread,
    ThreadState,
    ToolCallRecord,
    Usage,
)


def to_agent(row: RowMapping) -> Agent:
    return Agent(row["id"], row["slug"], row["name"], row["live_version"], row["created_at"])


def to_agent_version(row: Mapping[Any, Any]) -> AgentVersion:
    return AgentVersion(
        agent_id=row["agent_id"],
        version=row["version"],
        definition=AgentDefinition.from_json(row["definition"]),
        note=row["note"],
        created_at=row["created_at"],
    )


def to_smith(row: Mapping[Any, Any]) -> Smith:
    return Smith(
        id=row["id"],
        agent_id=row["agent_id"],
        external_id=row["external_id"],
        display_name=row["display_name"],
        customer_id=row["customer_id"],
        metadata=dict(row["metadata"] or {}),
        auto_memory=bool(row["auto_memory"]),
        pinned_version=row["pinned_version"],
        archived_at=row["archived_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def to_thread(row: Mapping[Any, Any]) -> Thread:
    return Thread(
        id=row["id"],
        smith_id=row["smith_id"],
        agent_id=row["agent_id"],
        external_id=row["external_id"],
        channel=row["channel"],
        state=ThreadState(row["state"]),
        control=Control(row["control"]),
        title=row["title"],
        metadata=dict(row["metadata"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def to_run(row: Mapping[Any, Any], calls: tuple[ToolCallRecord, ...]) -> Run:
    usage = row["usage"] or {}
    return Run(
        id=row["id"],
        thread_id=row["thread_id"],
        smith_id=row["smith_id"],
        agent_id=row["agent_id"],
        agent_version=row["agent_version"],
        input=list(row["input"]),
        output_text=row["output_text"],
        stop_reason=StopReason(row["stop_reason"]),
        model=row["model"],
        usage=Usage.from_json(usage),
        rag_results=list(row["rag_results"]),
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        tool_calls=calls,
    )


def run_values(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "thread_id": run.thread_id,
        "smith_id": run.smith_id,
        "agent_id": run.agent_id,
        "agent_version": run.agent_version,
        "input": run.input,
        "output_text": run.output_text,
        "stop_reason": run.stop_reason.value,
        "model": run.model,
        "usage": run.usage.to_json(),
        "rag_results": run.rag_results,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def to_tool_call(row: Mapping[Any, Any]) -> ToolCallRecord:
    return ToolCallRecord(
        seq=row["seq"],
        call_id=row["call_id"],
        name=row["name"],
        arguments=row["arguments"],
        result=row["result"],
        error=row["error"],
        latency_ms=row["latency_ms"],
    )


def tool_call_values(run: Run) -> list[dict[str, Any]]:
    return [{"run_id": run.id, **call.to_json()} for call in run.tool_calls]


def to_action(row: RowMapping, *, attempt: int) -> Action:
    payload = row["payload"] or {}
    return Action(
        id=row["id"],
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        channel=row["channel"],
        kind=ActionKind(row["kind"]),
        text=payload.get("text"),
        tag=payload.get("tag"),
        assignee=payload.get("assignee"),
        emoji=payload.get("emoji"),
        until=payload.get("until"),
        ref=dict(payload.get("ref") or {}),
        attempt=attempt,
    )
