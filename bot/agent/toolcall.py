"""One tool call of a turn: validated, bounded in time, recorded in the run's audit log and
announced on the turn's event stream. Whatever goes wrong becomes the error the model hears."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from bot.agent.tools import ToolCallContext, ToolError, ToolOutcome, ToolRegistry
from bot.domain import JSON, ToolCallRecord
from bot.pipeline.events import TurnEvent
from bot.providers.base import ToolCall

log = logging.getLogger(__name__)

TOOL_TIMEOUT_SECONDS = 30.0


async def call_tool(
    tools: ToolRegistry,
    scope: ToolCallContext,
    call: ToolCall,
    offered: set[str],
    records: list[ToolCallRecord],
) -> ToolOutcome | str:
    """Run one tool call of the turn ``scope`` belongs to and append its record to ``records``
    (the run's audit log); a string return is the error the model hears."""
    ctx = scope.turn
    arguments: JSON = (
        call.arguments if call.arguments is not None else {"_raw": call.raw_arguments}
    )
    await ctx.emit(
        TurnEvent(
            "tool.executing",
            ctx.run_id,
            ctx.thread.id,
            {"name": call.name, "arguments": arguments},
        )
    )
    started = time.perf_counter()
    outcome: ToolOutcome | str
    if call.arguments is None:
        outcome = f"invalid arguments: {call.error or 'not valid JSON'}"
    elif call.name not in offered:
        outcome = f"tool {call.name!r} is not available in this conversation"
    else:
        try:
            outcome = await asyncio.wait_for(
                tools.invoke(call.name, call.arguments, scope), TOOL_TIMEOUT_SECONDS
            )
        except ToolError as exc:
            outcome = str(exc)
        except TimeoutError:
            outcome = f"the tool did not finish within {TOOL_TIMEOUT_SECONDS:.0f}s"
        except asyncio.CancelledError:
            # The turn's deadline (or shutdown) cut it off: the audit log still shows it.
            records.append(
                ToolCallRecord(
                    len(records),
                    call.id,
                    call.name,
                    arguments,
                    error="cancelled: the turn ended before the tool finished",
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            )
            raise
    latency = (time.perf_counter() - started) * 1000
    if isinstance(outcome, str):
        log.info("tool %s failed: %s", call.name, outcome)
        record = ToolCallRecord(
            len(records), call.id, call.name, arguments, error=outcome, latency_ms=latency
        )
        done: JSON = {"name": call.name, "error": outcome}
    else:
        result = _plain(outcome.result)
        outcome = ToolOutcome(
            result, outcome.actions, outcome.thread_change, outcome.stop, outcome.memories
        )
        record = ToolCallRecord(
            len(records), call.id, call.name, arguments, result=result, latency_ms=latency
        )
        done = {"name": call.name, "result": result}
    records.append(record)
    await ctx.emit(TurnEvent("tool.completed", ctx.run_id, ctx.thread.id, done))
    return outcome


def _plain(value: Any) -> Any:
    """A tool result as plain JSON data (the run stores it; the model reads it)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)
