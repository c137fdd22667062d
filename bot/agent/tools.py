"""Tools the model may call: a registry, argument validation, and HTTP tools from config.

A tool is a name, a description, a JSON schema for its arguments and an async handler. Tools are
registered on a ``ToolRegistry`` instance (``@registry.tool(...)`` or ``registry.add``), never in
a global. The loop validates arguments against the schema before any call; whatever goes wrong
(bad JSON, schema violations, a handler that raises, a timeout) becomes a ``ToolError`` that goes
back to the model as the tool's result, so a failing tool never ends a turn by itself.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from bot.agent import placeholders
from bot.config import ConfigError, CustomToolSettings, env_headers
from bot.domain import JSON, PlannedAction, Smith, StopReason, Thread, ThreadChange
from bot.providers.base import ToolSpec

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from bot.connector import Connector
    from bot.pipeline.turn import TurnContext

log = logging.getLogger(__name__)

RESULT_TEXT_CHARS = 8000


class ToolError(Exception):
    """A tool call that failed; the message goes back to the model (keep secrets out of it)."""


@dataclass(frozen=True, slots=True)
class ToolCallContext:
    """What a tool knows about the turn it runs in: whose turn it is, and on which thread."""

    turn: TurnContext
    connector: Connector | None

    @property
    def smith(self) -> Smith:
        return self.turn.smith

    @property
    def thread(self) -> Thread:
        return self.turn.thread


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A tool's result plus its effects: actions, a thread change, an end to the turn, facts."""

    result: Any
    actions: tuple[PlannedAction, ...] = ()
    thread_change: ThreadChange | None = None
    stop: StopReason | None = None
    memories: tuple[str, ...] = ()


ToolHandler = Callable[[JSON, ToolCallContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: JSON
    handler: ToolHandler

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


class ToolRegistry:
    """The tools one runner knows; an agent's ``tools`` list picks which a turn offers."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        # Built at a tool's first call, so a start imports no jsonschema before its first turn.
        # Configured tools' schemas are checked when the configuration loads
        # (``bot.config.agents``); the built-in ones by their tests.
        self._validators: dict[str, Draft202012Validator] = {}

    def add(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        if not inspect.iscoroutinefunction(tool.handler) and not inspect.iscoroutinefunction(
            type(tool.handler).__call__  # an object with an async __call__ (HttpTool)
        ):
            raise TypeError(f"tool {tool.name!r}: the handler must be an async function")
        self._tools[tool.name] = tool
        return tool

    def tool(
        self, name: str, *, description: str, parameters: JSON | None = None
    ) -> Callable[[ToolHandler], ToolHandler]:
        """Register an async function as a tool; the function is returned unchanged.

        ``@registry.tool("ORDER_STATUS", description=…, parameters={…})``
        ``async def order_status(arguments, call): …``
        """

        def register(handler: ToolHandler) -> ToolHandler:
            self.add(
                Tool(
                    name=name,
                    description=description,
                    parameters=parameters or {"type": "object", "properties": {}},
                    handler=handler,
                )
            )
            return handler

        return register

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def offered(self, names: Iterable[str]) -> list[Tool]:
        """The registered tools among ``names``, in that order (unknown names are skipped)."""
        return [self._tools[n] for n in names if n in self._tools]

    def validation_errors(self, name: str, arguments: JSON) -> list[str]:
        validator = self._validators.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator

            parameters = self._tools[name].parameters
            Draft202012Validator.check_schema(parameters)
            validator = self._validators[name] = Draft202012Validator(parameters)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        return [
            (f"{'/'.join(str(p) for p in e.path)}: " if e.path else "") + e.message for e in errors
        ]

    async def invoke(self, name: str, arguments: JSON, call: ToolCallContext) -> ToolOutcome:
        """Validate and run one call; raise ``ToolError`` for anything the model should hear."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}")
        problems = self.validation_errors(name, arguments)
        if problems:
            raise ToolError("invalid arguments: " + "; ".join(problems))
        try:
            value = await tool.handler(arguments, call)
        except ToolError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("tool %s raised %s", name, type(exc).__name__, exc_info=True)
            raise ToolError(f"the tool failed: {type(exc).__name__}") from exc
        return value if isinstance(value, ToolOutcome) else ToolOutcome(result=value)


# -- HTTP tools from config ------------------------------------------------------------------


class HttpTool:
    """A ``[[tools]]`` entry: ``{smith.…}`` fields in the URL, headers and body come from the
    turn's own customer; the model's declared arguments fill ``{argument}`` placeholders in the
    URL, and the rest go as the query string (GET, DELETE) or the JSON body — never over a key
    the daemon fills. Header values from ``headers_from_env`` are read at call time, never
    logged or echoed back."""

    def __init__(self, settings: CustomToolSettings, client: aiohttp.ClientSession):
        self.settings = settings
        self._client = client
        # Only declared arguments are sent: an extra one could name another customer.
        self._declared = frozenset(settings.parameters.get("properties") or {})

    def as_tool(self) -> Tool:
        return Tool(
            name=self.settings.name,
            description=self.settings.description,
            parameters=self.settings.parameters,
            handler=self,
        )

    async def __call__(self, arguments: JSON, call: ToolCallContext) -> Any:
        s = self.settings
        given = {k: v for k, v in arguments.items() if k in self._declared}
        try:
            url, used = placeholders.fill(s.url, call.smith, arguments=given,
                                          encode=lambda v: quote(v, safe=""))
            fixed_headers = {k: placeholders.fill(v, call.smith)[0] for k, v in s.headers.items()}
            body = _fill_json(s.body, call.smith)
        except placeholders.MissingSmithField as exc:
            raise ToolError(f"not available for this customer: {exc}") from None
        try:
            headers = {**fixed_headers, **env_headers(s.headers_from_env)}
        except ConfigError as exc:
            log.error("tool %s is misconfigured: %s", s.name, exc)
            raise ToolError("the tool is not configured on this server") from None
        target = URL(url)
        in_url = set(target.query)
        remaining = {k: v for k, v in given.items()
                     if k not in used and k not in in_url and k not in body}
        payload: Any = None
        if s.method in ("GET", "DELETE"):
            # Added to the URL's own query (``params=`` would replace it); its keys, which the
            # daemon may have filled, were kept out of ``remaining`` above.
            target = target.extend_query({k: _query_value(v) for k, v in remaining.items()})
        else:
            payload = {**remaining, **body}
        return await http_json(
            self._client, s.method, target, headers=headers, timeout=s.timeout_seconds,
            json_body=payload,
        )


def _fill_json(value: Any, smith: Smith) -> Any:
    """A ``body`` template with its ``{smith.…}`` fields filled."""
    if isinstance(value, str):
        return placeholders.fill(value, smith)[0]
    if isinstance(value, dict):
        return {k: _fill_json(v, smith) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_json(v, smith) for v in value]
    return value


def _query_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def http_json(
    client: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    *,
    headers: dict[str, str],
    timeout: float,
    json_body: Any = None,
) -> Any:
    """One HTTP call whose answer becomes a tool result; failures become ``ToolError``s.
    ``timeout`` bounds each phase (connecting, each read), not the whole call."""
    started = time.perf_counter()
    target = URL(url) if isinstance(url, str) else url
    try:
        async with client.request(
            method,
            target,
            headers=headers,
            json=json_body,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
            ),
        ) as response:
            status = response.status
            content_type = response.headers.get("content-type", "")
            text = await response.text(errors="replace")
    except TimeoutError:
        raise ToolError(f"the service did not answer within {timeout}s") from None
    except aiohttp.ClientError as exc:
        raise ToolError(f"the service could not be reached ({type(exc).__name__})") from None
    log.debug(
        "%s %s → %d in %.0f ms",
        method,
        str(target.with_query(None)),
        status,
        (time.perf_counter() - started) * 1000,
    )
    body = text[:RESULT_TEXT_CHARS]
    if status >= 400:
        raise ToolError(f"the service answered HTTP {status}: {body[:300]}")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            pass
    return {"text": body}
