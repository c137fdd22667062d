"""Settings: one typed object built from a TOML file and ``SUPPORTBOT_*`` environment variables.

This is the only module that reads the environment. Precedence, highest first: environment
variables (nested with ``__``), secret files in ``SUPPORTBOT_SECRETS_DIR``, the TOML file, the
embedded defaults. The file is ``--config PATH``, else ``$SUPPORTBOT_CONFIG``, else
``./supportbot.toml`` when present; with no file the embedded defaults run.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bot.redact import database_password, mask_text, mask_url

ENV_PREFIX = "SUPPORTBOT_"
DEFAULT_CONFIG_FILE = Path("supportbot.toml")
BUNDLED_KNOWLEDGE = Path(__file__).parent / "knowledge" / "example"

DEFAULT_INSTRUCTIONS = (
    "You are the support assistant for {company}. Be concise, friendly and accurate. "
    "Answer from the knowledge passages you are given and cite them. If you do not know, say "
    "so and escalate to a human. The customer's name is {display_name}."
)


class ConfigError(Exception):
    """A configuration that cannot run; the message names the file, the key and the reason."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _list_from_env(value: Any) -> Any:
    """A list setting given as text (an environment variable): a JSON list, or the plain
    comma-separated form people type (``C0SUPPORT`` or ``C01,C02``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a JSON list ({exc}); a comma-separated list works too") from None
    return [item.strip() for item in text.split(",") if item.strip()]


T = TypeVar("T")
# A list of plain values that the environment may give as JSON or comma-separated. ``NoDecode``
# keeps pydantic-settings from insisting on JSON before ``_list_from_env`` sees the text.
EnvList = Annotated[list[T], NoDecode, BeforeValidator(_list_from_env)]


class DatabaseUrl(str):
    """``database.url``: the real URL to whatever uses it as text (the engine), the password
    masked in its ``repr`` — which is what ends up in reprs of the settings, error messages and
    tracebacks. ``str()`` stays the real URL on purpose: string operations and the driver read
    the characters themselves, so masking ``str()`` would hide nothing and only surprise."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url(self))


class DatabaseSettings(Section):
    url: str = DatabaseUrl("sqlite+aiosqlite:///./supportbot.db")
    echo: bool = False
    pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the plain URLs people paste and pick the async driver for them."""
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                return DatabaseUrl(driver + value[len(plain) :])
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("expected a sqlite:// or postgresql:// URL")
        return DatabaseUrl(value)


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    public_url: str | None = None


class AdminSettings(Section):
    token: SecretStr | None = None


ProviderName = Literal["offline", "openai", "xai-support-agent", "ingram"]


class ModelEndpoint(Section):
    """Where a remote provider used as a fallback lives (``[model.endpoints.<provider>]``)."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    name: str | None = None
    agent_id: str | None = None


class ModelSettings(Section):
    provider: ProviderName = "offline"
    base_url: str | None = None
    api_key: SecretStr | None = None
    name: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    # One deadline for a whole turn (model calls, tool calls, guardrail judging); after it the
    # offline responder answers, so a hung provider cannot hold a customer longer than this.
    turn_timeout_seconds: float = Field(default=30.0, gt=0)
    # Per remote provider and per process: this many transient failures in a row open its
    # breaker (0: never), turns then skip it for the cool-down, then one trial call decides.
    breaker_failures: int = Field(default=3, ge=0)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    stream: bool = True
    fallback: EnvList[ProviderName] = ["offline"]
    temperature: float | None = None
    # xAI: the support_agent_id (falls back to ``name``); Ingram: the agent (agt_…) smiths run.
    agent_id: str | None = None
    # xAI Support Agents only.
    deployment_id: str = "LATEST"
    environment: Literal["ENVIRONMENT_PROD", "ENVIRONMENT_STAGING"] = "ENVIRONMENT_PROD"
    # Remote providers named in ``fallback`` other than ``provider`` take their endpoint here.
    endpoints: dict[ProviderName, ModelEndpoint] = {}

    # -- the wire contract with OpenAI-compatible servers (tools, output cap) --
    # Sent with every request that offers tools: llama-cpp-python takes a missing
    # ``tool_choice`` as "none" and never calls a tool.
    tool_choice: Literal["auto", "none", "required"] = "auto"
    # false: turns that offer tools run non-streamed (servers that cannot stream tool calls,
    # e.g. llama-cpp-python; detected on first failure anyway, this skips the failed try).
    stream_tools: bool = True
    # Cap on the tokens of one answer (``max_tokens``; ``max_completion_tokens`` on OpenAI).
    max_output_tokens: int = Field(default=1024, ge=1)


class OfflineSettings(Section):
    """The embedded responder: phrase lists and the confidence it needs to answer."""

    # Answer when the best passage's score reaches ``confidence_threshold``, or reaches
    # ``confidence_floor`` while leading the next document by ``confidence_margin`` (a share of
    # its score); otherwise escalate.
    confidence_threshold: float = Field(default=0.45, ge=0, le=1)
    # Chosen on the bundled example KB's eval set (examples/eval/), where 0.15–0.2 with a 0.2
    # margin answered the most cases right; 0.2 is the cautious end (a wrong answer costs more
    # than an escalation).
    confidence_floor: float = Field(default=0.2, ge=0, le=1)
    confidence_margin: float = Field(default=0.2, ge=0, le=1)
    # Extra phrases, on top of the built-in intents (bot/agent/intents.py).
    escalate_phrases: EnvList[str] = []
    close_phrases: EnvList[str] = []
    greeting_phrases: EnvList[str] = ["hi", "hello", "hey", "good morning", "good afternoon"]


class IntercomSettings(Section):
    token: SecretStr | None = None
    client_secret: SecretStr | None = None
    base_url: str = "https://api.intercom.io"
    api_version: str = "2.14"
    dry_run: bool = False
    escalation_assignee: str | None = None
    # None: poll every 60 s when there is no client_secret (no webhooks), else off; 0: off.
    poll_interval_seconds: float | None = Field(default=None, ge=0)
    # The older, Intercom-only name of ``handoff.resume_on_reopen``; still honoured (None: unset).
    resume_on_reopen: bool | None = None
    agent: str | None = None
    poll_lookback_seconds: float = Field(default=86_400.0, gt=0)
    poll_page_size: int = Field(default=50, ge=1, le=150)
    timeout_seconds: float = Field(default=15.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=0.5, gt=0)
    rate_limit_headroom: int = Field(default=100, ge=0)
    max_attachments: int = Field(default=10, ge=0, le=100)
    max_attachment_bytes: int = Field(default=20_971_520, ge=0)
    escalation_message: str = (
        "I've passed this to our support team; a person will follow up here shortly."
    )

    @field_validator("escalation_assignee")
    @classmethod
    def _assignee_form(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("team:", "admin:")):
            raise ValueError("expected 'team:<id>' or 'admin:<id>'")
        return value

    @property
    def enabled(self) -> bool:
        return self.token is not None


class SlackChannelSettings(Section):
    """How the bot listens in one Slack channel (``[slack.channels.<channel id>]``)."""

    mode: Literal["all", "mentions"] = "all"
    allow_bots: bool = False


class SlackSettings(Section):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    base_url: str = "https://slack.com/api/"
    support_channels: EnvList[str] = []
    channels: dict[str, SlackChannelSettings] = {}
    escalation_channel: str | None = None
    escalation_mention: str | None = None
    agent: str | None = None
    stream: bool = False
    stream_interval_seconds: float = Field(default=0.5, ge=0)
    working_reaction: str | None = "eyes"
    support_users: EnvList[str] = []
    support_group: str | None = None
    post_interval_seconds: float = Field(default=1.0, ge=0)
    max_file_bytes: int = Field(default=5_242_880, ge=0)
    user_cache_seconds: float = Field(default=3600.0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None

    def channel(self, channel_id: str) -> SlackChannelSettings | None:
        """The listening rule of a support channel; None for a channel that is not one."""
        if channel_id in self.channels:
            return self.channels[channel_id]
        if channel_id in self.support_channels:
            return SlackChannelSettings()
        return None


class WebSettings(Section):
    enabled: bool = True
    identity_secret: SecretStr | None = None
    max_upload_bytes: int = Field(default=5_242_880, ge=1024)
    upload_types: EnvList[str] = [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    ]
    session_hours: float = Field(default=24.0, gt=0)
    agent: str | None = None
    # Origins, besides the bot's own, whose pages may start a visitor session (login CSRF guard).
    allowed_origins: EnvList[str] = []
    # An anonymous visitor's history is claimed on login only with an identity issued this recently.
    claim_window_seconds: float = Field(default=300.0, ge=0)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [normalise_origin(v) for v in values]


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case without a default port; raises ``ValueError`` for
    anything that is not an origin (a path, a wildcard, ``null``)."""
    from yarl import URL

    try:
        url = URL(value.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not an origin such as https://www.example.com") from None
    if (url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/")
            or url.query_string or url.fragment or url.user is not None):
        raise ValueError(f"{value!r} is not an origin such as https://www.example.com")
    return str(url.origin()).lower()


class HandoffSettings(Section):
    """Who holds a thread (``[handoff]``), the same rules on every channel.

    A person's reply or an assignment to a person always takes a thread from the bot; these
    say when the bot may answer in it again.
    """

    # A customer who writes in a closed thread gets the bot again.
    resume_on_reopen: bool = True
    # Assigning the thread to the bot (Intercom: to the bot's own admin) gives it back.
    resume_on_assign: bool = True
    # The bot answers again once nobody on the support side has acted on a thread it gave to a
    # person for this many hours; None: never by itself.
    resume_after_hours: float | None = Field(default=None, gt=0)


SourceKind = Literal["files", "intercom", "sitemap", "urls"]


class KnowledgeSourceSettings(Section):
    """One ``[[knowledge.sources]]`` table: where documents come from and when to sync them.

    Per kind: ``files`` reads ``paths``; ``intercom`` reads the Help Center through the
    ``[intercom]`` token and base URL (``locales``: only these, default all published); ``sitemap``
    crawls the pages ``url`` (a sitemap or sitemap index) lists on its own site; ``urls`` fetches
    ``urls``. The schedule (``interval_seconds`` or ``cron`` in ``timezone``) runs the sync
    inside ``serve``; with neither, ``supportbot kb sync`` is the way to run one.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: SourceKind
    paths: list[Path] = []
    locales: list[str] | None = None
    url: str | None = None
    urls: list[str] = []
    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    timezone: str = "UTC"
    misfire_grace_seconds: float = Field(default=300.0, gt=0)
    # Websites: requests in flight at once, and requests started per second, per source.
    concurrency: int = Field(default=4, ge=1, le=64)
    requests_per_second: float = Field(default=4.0, gt=0)
    user_agent: str = "supportbot"
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Pages a site may list; a bigger sitemap is refused rather than half-synced.
    max_pages: int = Field(default=5000, ge=1)
    # A request answered 429/502/503/504 is tried again up to ``max_retries`` times, after an
    # exponential backoff but never sooner than its ``Retry-After`` (at most 300 s honoured).
    max_retries: int = Field(default=3, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> KnowledgeSourceSettings:
        needed = {"files": "paths", "sitemap": "url", "urls": "urls"}.get(self.kind)
        if needed is not None and not getattr(self, needed):
            raise ValueError(f"knowledge source {self.name!r} ({self.kind}) needs {needed}")
        for url in ([self.url] if self.url else []) + list(self.urls):
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"knowledge source {self.name!r}: {url!r} is not an http(s) URL")
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError(f"knowledge source {self.name!r}: set interval_seconds or cron")
        return self

    @property
    def scheduled(self) -> bool:
        return self.interval_seconds is not None or self.cron is not None


# The source ``knowledge.paths`` becomes.
PATHS_SOURCE = "files"


class KnowledgeSettings(Section):
    paths: EnvList[Path] = [BUNDLED_KNOWLEDGE]
    chunk_chars: int = Field(default=1200, ge=200)
    sources: EnvList[KnowledgeSourceSettings] = []

    @model_validator(mode="after")
    def _unique_source_names(self) -> KnowledgeSettings:
        names = [source.name for source in self.all_sources()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"knowledge sources named twice: {', '.join(twice)}")
        return self

    def all_sources(self) -> list[KnowledgeSourceSettings]:
        """The configured sources, ``knowledge.paths`` first as the ``files`` source.

        With sources configured and ``paths`` left at its default, the bundled example is not
        added: a team that names its own knowledge does not want the demo's.
        """
        sources = list(self.sources)
        if self.paths and ("paths" in self.model_fields_set or not sources):
            sources.insert(
                0, KnowledgeSourceSettings(name=PATHS_SOURCE, kind="files", paths=list(self.paths))
            )
        return sources

    def source(self, name: str) -> KnowledgeSourceSettings:
        """The source named ``name``; raises ``KeyError``."""
        for source in self.all_sources():
            if source.name == name:
                return source
        raise KeyError(name)


class PipelineSettings(Section):
    concurrency: int = Field(default=8, ge=1, le=1024)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    outbox_max_attempts: int = Field(default=8, ge=1)
    # Tries at a customer's messages whose turn raised (not a model failure: the engine answers
    # those) before they are marked failed.
    turn_max_attempts: int = Field(default=5, ge=1)
    # How long a turn waits for what its messages only refer to (a Slack author's profile, shared
    # files) before it runs without them.
    resolve_timeout_seconds: float = Field(default=15.0, gt=0)
    outbox_backoff_seconds: float = Field(default=1.0, gt=0)
    outbox_backoff_max_seconds: float = Field(default=300.0, gt=0)
    drain_timeout_seconds: float = Field(default=20.0, ge=0)


class TriageSettings(Section):
    """Batch triage (``[triage]``): what a sweep takes, and when ``serve`` runs one.

    A schedule is ``interval_seconds`` or ``cron`` (crontab: minute hour day month weekday), in
    ``timezone``; with neither, ``serve`` does not sweep and ``supportbot triage --once`` is the
    way to run one.
    """

    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    timezone: str = "UTC"
    misfire_grace_seconds: float = Field(default=300.0, gt=0)
    # Conversations per sweep (across channels); None: all that are waiting.
    limit: int | None = Field(default=None, ge=1)
    # Turns at once for ``supportbot triage``; None: ``pipeline.concurrency``. Inside ``serve``
    # the sweep shares the daemon's dispatcher, so ``pipeline.concurrency`` bounds it there.
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    # Only conversations updated within this window: a duration (30m, 2h, 1d) or "" for all.
    since: str = "24h"
    # Channels to sweep; None: every enabled connector that can list pending work.
    channels: EnvList[str] | None = None
    # Post each sweep's digest to this Slack channel id (needs the Slack connector).
    digest_slack_channel: str | None = None
    # A sweep stops waiting for its turns and actions after this long (the rest is reported).
    timeout_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as UTC)") from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo

        from bot.crontab import cron_trigger

        try:
            cron_trigger(value, ZoneInfo("UTC"))
        except ValueError as exc:
            raise ValueError(f"not a crontab expression: {exc}") from None
        return value

    @field_validator("since")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        if value and parse_duration(value) is None:
            raise ValueError("expected a duration such as 30m, 2h or 1d, or an empty string")
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> TriageSettings:
        if self.interval_seconds is not None and self.cron is not None:
            raise ValueError("set either triage.interval_seconds or triage.cron, not both")
        return self

    @property
    def scheduled(self) -> bool:
        return self.interval_seconds is not None or self.cron is not None

    @property
    def digest_destinations(self) -> dict[str, str]:
        """Where each sweep's digest is posted: connector name → a destination on its channel."""
        return {"slack": self.digest_slack_channel} if self.digest_slack_channel else {}


class RetentionSettings(Section):
    """How long closed conversations are kept (``[retention]``); ``days`` unset keeps them forever.

    With ``days`` set, ``serve`` erases every thread closed (and untouched since) more than that
    many days ago, and a smith left with no thread, every ``interval_seconds`` on the same
    one-replica-per-tick lock as triage. Erased means gone from the database for good; an
    ``erasures`` row records that it happened, without personal data.
    """

    days: float | None = Field(default=None, gt=0)
    interval_seconds: float = Field(default=3600.0, gt=0)

    # The schedule as the scheduler reads it (``bot.scheduler.Schedule``): an interval in UTC.
    @property
    def cron(self) -> str | None:
        return None

    @property
    def timezone(self) -> str:
        return "UTC"

    @property
    def misfire_grace_seconds(self) -> float:
        return self.interval_seconds

    @property
    def scheduled(self) -> bool:
        return self.days is not None


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(text: str) -> float | None:
    """Seconds in ``90s``, ``30m``, ``2h``, ``1d``, ``1w`` (or ``1h30m``); None when not one."""
    match = re.fullmatch(r"(?:\s*(\d+(?:\.\d+)?)\s*([smhdw]))+\s*", text.strip().lower())
    if not match or not text.strip():
        return None
    return sum(
        float(amount) * _DURATION_UNITS[unit]
        for amount, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.lower())
    )


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"


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


def env_headers(names: Mapping[str, str], *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve ``{"Header": "ENV_VAR_NAME"}`` into header values, read from the environment when
    they are needed (so a rotated token is picked up); a missing variable raises ``ConfigError``
    naming the variable, never a value."""
    env = os.environ if environ is None else environ
    resolved: dict[str, str] = {}
    for header, variable in names.items():
        value = env.get(variable)
        if value is None:
            raise ConfigError(f"environment variable {variable} (for header {header}) is not set")
        resolved[header] = value
    return resolved


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


def _default_agents() -> list[AgentSettings]:
    return [AgentSettings(slug="support", name="Support bot")]


class Settings(BaseSettings):
    """Everything the daemon can be told; see ``config.example.toml``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    admin: AdminSettings = AdminSettings()
    model: ModelSettings = ModelSettings()
    offline: OfflineSettings = OfflineSettings()
    intercom: IntercomSettings = IntercomSettings()
    slack: SlackSettings = SlackSettings()
    web: WebSettings = WebSettings()
    handoff: HandoffSettings = HandoffSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    pipeline: PipelineSettings = PipelineSettings()
    triage: TriageSettings = TriageSettings()
    retention: RetentionSettings = RetentionSettings()
    log: LogSettings = LogSettings()
    agents: list[AgentSettings] = Field(default_factory=_default_agents, min_length=1)
    default_agent: str = "support"
    connectors: EnvList[str] | None = None
    tools: list[CustomToolSettings] = []
    user_info: UserInfoSettings = UserInfoSettings()

    @model_validator(mode="before")
    @classmethod
    def _handoff_aliases(cls, data: Any) -> Any:
        """``intercom.resume_on_reopen`` (from before handoff had its own section) still sets
        ``handoff.resume_on_reopen``, unless that is set itself."""
        if not isinstance(data, Mapping):
            return data
        intercom = data.get("intercom")
        if isinstance(intercom, IntercomSettings):
            old = intercom.resume_on_reopen
        elif isinstance(intercom, Mapping):
            old = intercom.get("resume_on_reopen")
        else:
            old = None
        if old is None:
            return data
        handoff = data.get("handoff")
        if isinstance(handoff, HandoffSettings):
            if "resume_on_reopen" in handoff.model_fields_set:
                return data
            handoff = handoff.model_dump(exclude_unset=True)
        elif isinstance(handoff, Mapping):
            if "resume_on_reopen" in handoff:
                return data
        else:
            handoff = {}
        return {**data, "handoff": {**handoff, "resume_on_reopen": old}}

    @field_validator("agents")
    @classmethod
    def _unique_slugs(cls, agents: list[AgentSettings]) -> list[AgentSettings]:
        slugs = [a.slug for a in agents]
        duplicated = sorted({s for s in slugs if slugs.count(s) > 1})
        if duplicated:
            raise ValueError(f"agent slugs must be unique, repeated: {', '.join(duplicated)}")
        return agents

    def agent(self, slug: str | None = None) -> AgentSettings:
        wanted = slug or self.default_agent
        for agent in self.agents:
            if agent.slug == wanted:
                return agent
        raise KeyError(wanted)

    def without_polling(self) -> Settings:
        """These settings with every connector's own poller off, for a command that lists the
        pending work itself (``supportbot triage``)."""
        return self.model_copy(
            update={"intercom": self.intercom.model_copy(update={"poll_interval_seconds": 0})}
        )


def find_config_file(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The file to read: the explicit path, ``$SUPPORTBOT_CONFIG``, or ``./supportbot.toml``."""
    if explicit:
        return Path(explicit)
    if environ.get("SUPPORTBOT_CONFIG"):
        return Path(environ["SUPPORTBOT_CONFIG"])
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(path: str | Path | None = None) -> Settings:
    """Build the settings or raise ``ConfigError`` naming the file, the key and the reason."""
    env = os.environ
    config_file = find_config_file(path, env)
    file_data: dict[str, Any] = {}
    where = str(config_file) if config_file else "the embedded defaults"
    if config_file is not None:
        try:
            file_data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {config_file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config error in {config_file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {config_file} cannot be read: {exc}") from None

    secrets_dir = env.get("SUPPORTBOT_SECRETS_DIR")

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                # One file per secret, named like its env var: SUPPORTBOT_INTERCOM__TOKEN.
                NestedSecretsSettingsSource(file_secret_settings, secrets_nested_delimiter="__"),
                InitSettingsSource(settings_cls, init_kwargs=file_data),
            )

    try:
        loaded = _Loaded(_secrets_dir=secrets_dir)  # type: ignore[call-arg]  # pydantic-settings init kwarg
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where, env)) from None
    except SettingsError as exc:
        # A source could not read a value at all (an env var that should be JSON and is not);
        # its own message names the field, the cause (chained) says why.
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"config error: {exc}{cause}") from None
    return loaded


def _describe(exc: ValidationError, where: str, env: Mapping[str, str]) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc) or "(top level)"
        # The variable may name a list or a section rather than the failing item itself.
        env_names = [ENV_PREFIX + "__".join(loc[:n]).upper() for n in range(len(loc), 0, -1)]
        env_name = next((name for name in env_names if name in env), None)
        source = f"env {env_name}" if env_name else where
        reason = error["msg"]
        if error["type"] == "extra_forbidden":
            reason = "unknown setting"
        lines.append(f"config error in {source}: {key}: {reason}")
    return "\n".join(lines)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret replaced by ``'***'``: secret
    values whole, credentials inside URLs (database, model, helpdesk, tools) in place."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "***"
        if isinstance(value, str):
            # A whole URL is parsed and masked; free text (instructions) only where it holds one.
            return mask_url(value) if "://" in value and value.split() == [value] else mask_text(value)
        if isinstance(value, BaseModel):
            return {name: walk(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    result = walk(settings)
    assert isinstance(result, dict)
    return result


def secret_values(settings: Settings) -> set[str]:
    """Every secret the settings hold, as text: what the logging filter masks wherever it shows
    up, whichever code path let it into a log line."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(settings)
    password = database_password(settings.database.url)
    if password:
        found.add(password)
    # Very short values would mask ordinary words in every line; a real secret is longer.
    return {s for s in found if len(s) >= 6}
