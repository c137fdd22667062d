"""What the bot is told to be and may call: agents (``[[agents]]``), the team's own HTTP tools
(``[[tools]]``) and the user service USER_INFO_LOOKUP asks (``[user_info]``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bot.config.base import EnvList, Section

DEFAULT_INSTRUCTIONS = (
    "You are the support assistant for {company}. Be concise, friendly and accurate. "
    "Answer from the knowledge passages you are given and cite them. If you do not know, say "
    "so and escalate to a human. The customer's name is {display_name}."
)


class AgentSettings(Section):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str
    instructions: str = DEFAULT_INSTRUCTIONS
    model: str = ""
    tools: EnvList[str] = ["USER_INFO_LOOKUP", "ESCALATE", "CLOSE"]
    knowledge: EnvList[str] = []
    guardrails: dict[str, Any] = {}
    max_tool_loops: int = Field(default=5, ge=1, le=50)
    variables: dict[str, str] = {"company": "Acme Cloud"}


class CustomToolSettings(Section):
    """A tool the model may call that is an HTTP request to the team's own service
    (``[[tools]]``). Arguments are validated against ``parameters`` before any call.

    ``url``, ``headers`` and ``body`` may use ``{smith.…}`` fields (see
    ``bot.agent.placeholders``), filled by the daemon from the turn's own customer; ``url`` may
    also use ``{argument}`` placeholders. A model argument can never choose the customer: a
    parameter may not be named ``smith…``, nor like a smith field the tool uses
    (``customer_id`` next to ``{smith.customer_id}``), nor like a query or body key the daemon
    fills; only declared parameters are sent.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
    description: str
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = {}
    headers_from_env: dict[str, str] = {}
    # JSON fields sent with every call (POST, PUT, PATCH), over the model's arguments.
    body: dict[str, Any] = {}
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _customer_fields_come_from_the_daemon(self) -> CustomToolSettings:
        from urllib.parse import parse_qsl, urlsplit

        from bot.agent import placeholders as ph

        declared = set(self.parameters.get("properties") or {})
        fixed = [*self.headers.values(), *_strings(self.body)]
        for name in {n for t in [self.url, *fixed] for n in ph.names(t)}:
            if ph.is_smith_field(name):
                ph.check_smith_field(name)
        for template in fixed:
            if any(not ph.is_smith_field(n) for n in ph.names(template)):
                raise ValueError("headers and body take only {smith.…} fields; model arguments "
                                 "go in the url or are sent as the query/body")
        for name in ph.names(self.url):
            if not ph.is_smith_field(name) and name not in declared:
                raise ValueError(f"url placeholder {{{name}}} is neither a declared parameter "
                                 "nor a {smith.…} field")
        if self.body and self.method in ("GET", "DELETE"):
            raise ValueError(f"{self.method} sends no body: put {{smith.…}} fields in the url")
        used = ph.smith_names([self.url, *fixed])
        query_keys = {k for k, _ in parse_qsl(urlsplit(self.url).query, keep_blank_values=True)}
        daemon_keys = {*self.body, *query_keys}
        for parameter in declared:
            if ph.is_smith_field(parameter):
                raise ValueError(f"parameter {parameter!r}: names starting with 'smith' are "
                                 "the daemon's")
            if parameter in {ph.shadowed_name(n) for n in used} or parameter in daemon_keys:
                raise ValueError(f"parameter {parameter!r} would let the model choose what the "
                                 "daemon fills from the customer's proven identity; remove it")
        return self

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        if value.get("type", "object") != "object":
            raise ValueError("tool parameters must be a JSON schema of type 'object'")
        return value


class UserInfoSettings(Section):
    """The team's own user service that USER_INFO_LOOKUP asks about the current customer.

    ``url`` is a template of ``{smith.…}`` fields (``bot.agent.placeholders``), filled from the
    customer's proven identity and URL-quoted; the older names ``{external_id}``,
    ``{external_id_local}`` and ``{customer_id}`` mean the same smith fields.
    """

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _only_smith_fields(cls, value: str | None) -> str | None:
        from bot.agent import placeholders as ph

        for name in ph.names(value or ""):
            ph.check_smith_field(USER_INFO_ALIASES.get(name, name))
        return value
    headers_from_env: dict[str, str] = {}
    timeout_seconds: float = Field(default=5.0, gt=0)


# The placeholders ``[user_info] url`` had before ``{smith.…}``; they keep working.
USER_INFO_ALIASES = {
    "external_id": "smith.external_id",
    "external_id_local": "smith.external_id_local",
    "customer_id": "smith.customer_id",
}


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value (the templates of a tool's ``body``)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
