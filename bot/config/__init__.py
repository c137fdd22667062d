"""Settings: one typed object built from a TOML file and ``SUPPORTBOT_*`` environment variables.

This is the only package that reads the environment. Precedence, highest first: environment
variables (nested with ``__``), secret files in ``SUPPORTBOT_SECRETS_DIR``, the TOML file, the
embedded defaults. The file is ``--config PATH``, else ``$SUPPORTBOT_CONFIG``, else
``./supportbot.toml`` when present; with no file the embedded defaults run.

The sections live by concern — ``base`` (what they share, small parsers), ``server``
(database, HTTP, pipeline, logs), ``model`` (providers, offline responder), ``channels``
(a section per channel, handoff), ``knowledge``, ``schedules`` (triage, retention), ``analytics``, ``agents``
(agents, tools, user service) — and ``settings`` puts them together; everything is imported
from here, ``bot.config``.
"""

from bot.config.agents import (
    DEFAULT_INSTRUCTIONS,
    USER_INFO_ALIASES,
    AgentSettings,
    CustomToolSettings,
    UserInfoSettings,
)
from bot.config.analytics import AnalyticsSettings, ModelPrice
from bot.config.base import (
    ENV_PREFIX,
    ConfigError,
    EnvList,
    Section,
    env_headers,
    normalise_origin,
    parse_duration,
)
from bot.config.channels import (
    HandoffSettings,
    IntercomSettings,
    NotifySettings,
    SlackChannelSettings,
    SlackSettings,
    WebSettings,
)
from bot.config.knowledge import (
    BUNDLED_KNOWLEDGE,
    PATHS_SOURCE,
    EmbeddingsSettings,
    KnowledgeSettings,
    KnowledgeSourceSettings,
    SourceKind,
)
from bot.config.model import ModelEndpoint, ModelSettings, OfflineSettings, ProviderName
from bot.config.schedules import RetentionSettings, TriageSettings
from bot.config.server import (
    AdminSettings,
    DatabaseSettings,
    DatabaseUrl,
    HttpSettings,
    LogSettings,
    PipelineSettings,
)
from bot.config.settings import (
    DEFAULT_CONFIG_FILE,
    Settings,
    find_config_file,
    load_settings,
    masked,
    secret_values,
)

__all__ = [
    "BUNDLED_KNOWLEDGE",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_INSTRUCTIONS",
    "ENV_PREFIX",
    "PATHS_SOURCE",
    "USER_INFO_ALIASES",
    "AdminSettings",
    "AgentSettings",
    "AnalyticsSettings",
    "ConfigError",
    "CustomToolSettings",
    "DatabaseSettings",
    "DatabaseUrl",
    "EmbeddingsSettings",
    "EnvList",
    "HandoffSettings",
    "HttpSettings",
    "IntercomSettings",
    "KnowledgeSettings",
    "KnowledgeSourceSettings",
    "LogSettings",
    "ModelEndpoint",
    "ModelPrice",
    "ModelSettings",
    "NotifySettings",
    "OfflineSettings",
    "PipelineSettings",
    "ProviderName",
    "RetentionSettings",
    "Section",
    "Settings",
    "SlackChannelSettings",
    "SlackSettings",
    "SourceKind",
    "TriageSettings",
    "UserInfoSettings",
    "WebSettings",
    "env_headers",
    "find_config_file",
    "load_settings",
    "masked",
    "normalise_origin",
    "parse_duration",
    "secret_values",
]
