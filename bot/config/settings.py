"""The whole: ``Settings`` built from the sections, how it is loaded (file, environment, secret
files), and how it is shown (masked) or searched for secrets."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bot.config.agents import AgentSettings, CustomToolSettings, UserInfoSettings
from bot.config.analytics import AnalyticsSettings
from bot.config.base import ENV_PREFIX, ConfigError, EnvList
from bot.config.channels import (
    HandoffSettings,
    IntercomSettings,
    NotifySettings,
    SlackSettings,
    WebSettings,
)
from bot.config.knowledge import KnowledgeSettings
from bot.config.model import ModelSettings, OfflineSettings
from bot.config.schedules import RetentionSettings, TriageSettings
from bot.config.server import (
    AdminSettings,
    DatabaseSettings,
    HttpSettings,
    LogSettings,
    PipelineSettings,
)
from bot.redact import database_password, mask_text, mask_url

DEFAULT_CONFIG_FILE = Path("supportbot.toml")


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
    analytics: AnalyticsSettings = AnalyticsSettings()
    log: LogSettings = LogSettings()
    agents: list[AgentSettings] = Field(default_factory=_default_agents, min_length=1)
    default_agent: str = "support"
    connectors: EnvList[str] | None = None
    tools: list[CustomToolSettings] = []
    user_info: UserInfoSettings = UserInfoSettings()
    notify: list[NotifySettings] = []

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
