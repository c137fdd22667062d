"""The built-in tools: USER_INFO_LOOKUP, ESCALATE, CLOSE and REMEMBER.

USER_INFO_LOOKUP is bound to the turn's own smith: whatever ``user_id`` the model passes, it only
ever returns the current customer's data, and names nobody else. ESCALATE and CLOSE are
end-state tools: their actions come from the thread's connector (or the channel-neutral defaults
when no connector serves the thread), they change the thread's state and end the turn.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.agent import placeholders
from bot.agent.context import conversation_summary
from bot.agent.tools import ToolCallContext, ToolError, ToolOutcome, ToolRegistry, http_json
from bot.config import USER_INFO_ALIASES, ConfigError, UserInfoSettings, env_headers
from bot.connector import default_close_actions, default_escalation_actions
from bot.domain import (
    JSON,
    ActionKind,
    Control,
    PlannedAction,
    Smith,
    StopReason,
    ThreadChange,
    ThreadState,
)
from bot.pipeline.announce import escalation_announcement

log = logging.getLogger(__name__)

USER_INFO_LOOKUP = "USER_INFO_LOOKUP"
ESCALATE = "ESCALATE"
CLOSE = "CLOSE"
REMEMBER = "REMEMBER"
END_STATE_TOOLS = frozenset({ESCALATE, CLOSE})
PRIORITIES = ("low", "normal", "high", "urgent")
MEMORY_FACT_CHARS = 500

NOT_THE_CURRENT_CUSTOMER = {
    "found": False,
    "message": "You can only look up the current customer. "
    "No information about any other user is available.",
}


def register_builtin_tools(
    registry: ToolRegistry, *, user_info: UserInfoSettings, client: aiohttp.ClientSession
) -> None:
    """Add the four built-in tools to ``registry``."""
    lookup = _UserInfoLookup(user_info, client)

    @registry.tool(
        USER_INFO_LOOKUP,
        description=(
            "Look up the current customer: name, account and contact details. Only the customer "
            "you are talking to can be looked up; leave user_id empty for them."
        ),
        parameters={
            "type": "object",
            "properties": {
                "user_id": {
                    "type": "string",
                    "description": "The current customer's id or email; may be left empty.",
                }
            },
            "additionalProperties": False,
        },
    )
    async def user_info_lookup(arguments: JSON, call: ToolCallContext) -> Any:
        return await lookup(arguments, call)

    @registry.tool(
        ESCALATE,
        description=(
            "Hand the conversation to human support: when you cannot answer confidently, when "
            "the customer asks for a person, or when the issue needs a human."
        ),
        parameters={
            "type": "object",
            "properties": {
                "reason": {"type": "string", "minLength": 1, "description": "Brief reason"},
                "priority": {"type": "string", "enum": list(PRIORITIES)},
            },
            "required": ["reason"],
            "additionalProperties": False,
        },
    )
    async def escalate(arguments: JSON, call: ToolCallContext) -> ToolOutcome:
        return escalation(
            call,
            reason=str(arguments["reason"]),
            priority=str(arguments.get("priority") or "normal"),
        )

    @registry.tool(
        CLOSE,
        description="Close the conversation as resolved, once the customer confirms it is solved.",
        parameters={
            "type": "object",
            "properties": {
                "resolution_summary": {"type": "string", "minLength": 1},
            },
            "required": ["resolution_summary"],
            "additionalProperties": False,
        },
    )
    async def close(arguments: JSON, call: ToolCallContext) -> ToolOutcome:
        summary = str(arguments["resolution_summary"])
        if call.connector is not None:
            actions = call.connector.close_actions(resolution_summary=summary, thread=call.thread)
        else:
            actions = default_close_actions(resolution_summary=summary)
        return ToolOutcome(
            result={"closed": True},
            actions=tuple(actions),
            thread_change=ThreadChange(state=ThreadState.CLOSED),
            stop=StopReason.CLOSED,
        )

    @registry.tool(
        REMEMBER,
        description=(
            "Remember a durable fact about this customer for later conversations (their plan, "
            "preferences, setup). Never store passwords, card numbers or other secrets."
        ),
        parameters={
            "type": "object",
            "properties": {
                "fact": {"type": "string", "minLength": 3, "maxLength": MEMORY_FACT_CHARS}
            },
            "required": ["fact"],
            "additionalProperties": False,
        },
    )
    async def remember(arguments: JSON, call: ToolCallContext) -> ToolOutcome:
        if not call.smith.auto_memory or call.smith.is_anonymous:
            raise ToolError("memory is off for this customer")
        fact = " ".join(str(arguments["fact"]).split())
        return ToolOutcome(result={"remembered": True}, memories=(fact,))


def escalation(
    call: ToolCallContext, *, reason: str, priority: str, reply: str | None = None
) -> ToolOutcome:
    """ESCALATE's effect; also used by guardrails and the last-resort fallback. With ``reply``,
    that text replaces the channel's own "a person will follow up" message."""
    summary = conversation_summary(call.turn)
    if call.connector is not None:
        actions = call.connector.escalation_actions(
            reason=reason, priority=priority, summary=summary, thread=call.thread
        )
    else:
        actions = default_escalation_actions(reason=reason, priority=priority, summary=summary)
    if reply is not None:
        actions = [PlannedAction(ActionKind.REPLY, text=reply)] + [
            a for a in actions if a.kind is not ActionKind.REPLY
        ]
    # Told to people beyond the channel (another channel's escalation room, webhooks).
    actions = [*actions, escalation_announcement(reason=reason, priority=priority,
                                                 summary=summary)]
    return ToolOutcome(
        result={"escalated": True, "priority": priority},
        actions=tuple(actions),
        thread_change=ThreadChange(state=ThreadState.ESCALATED, control=Control.HUMAN),
        stop=StopReason.ESCALATED,
    )


class _UserInfoLookup:
    def __init__(self, settings: UserInfoSettings, client: aiohttp.ClientSession):
        self._settings = settings
        self._client = client

    async def __call__(self, arguments: JSON, call: ToolCallContext) -> JSON:
        smith = call.smith
        contact: JSON = {}
        if call.connector is not None:
            try:
                contact = dict(await call.connector.user_info(smith, call.thread))
            except Exception as exc:  # noqa: BLE001 - the smith's own data is still worth returning
                log.warning("connector user_info failed: %s", type(exc).__name__)
                contact = {"error": "contact details unavailable"}
        requested = str(arguments.get("user_id") or "").strip()
        if requested and not is_current_customer(requested, smith, contact):
            # Nothing about whoever was asked for, not even whether they exist.
            return dict(NOT_THE_CURRENT_CUSTOMER)
        info: JSON = {
            "found": True,
            "user_id": smith.external_id or smith.id,
            "name": smith.display_name or contact.get("name"),
            "customer_id": smith.customer_id,
            "metadata": smith.metadata,
        }
        if contact:
            info["contact"] = contact
        if self._settings.url:
            info["account"] = await self._account(smith)
        return info

    async def _account(self, smith: Smith) -> Any:
        """The team's service, asked about this smith only: every placeholder of the URL is a
        field of the smith, proven by the channel (signed claims, the helpdesk's record)."""
        try:
            url, _ = placeholders.fill(
                self._settings.url or "", smith, encode=lambda v: quote(v, safe=""),
                aliases=USER_INFO_ALIASES,
            )
        except placeholders.MissingSmithField as exc:
            # An empty id could make the service answer with someone else, or with everyone.
            return {"error": f"the account service was not asked: {exc}"}
        try:
            headers = env_headers(self._settings.headers_from_env)
        except ConfigError as exc:
            log.error("user_info endpoint is misconfigured: %s", exc)
            return {"error": "the account service is not configured"}
        try:
            return await http_json(
                self._client, "GET", url, headers=headers, timeout=self._settings.timeout_seconds
            )
        except ToolError as exc:
            # The contact data is still worth returning without the account service.
            return {"error": str(exc)}


def is_current_customer(requested: str, smith: Smith, contact: JSON) -> bool:
    """Does ``requested`` name the smith of this turn (its id, external id, the id inside the
    namespace, or its email)?"""
    wanted = requested.strip().casefold()
    names: set[str] = {smith.id}
    if smith.external_id:
        names.add(smith.external_id)
        parts = smith.external_id.split(":")
        if len(parts) > 1:
            names.add(":".join(parts[1:]))
            names.add(parts[-1])
    for source in (smith.metadata, contact):
        for key in ("email", "id", "user_id", "external_id"):
            value = source.get(key)
            if isinstance(value, str) and value:
                names.add(value)
    return wanted in {n.casefold() for n in names}
