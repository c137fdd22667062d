"""Slack: support channels and DMs answered in threads (Events API over HTTP or Socket Mode)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.connector import ConnectorRuntime

if TYPE_CHECKING:
    from connectors.slack.connector import SlackConnector


def create(runtime: ConnectorRuntime) -> SlackConnector | None:
    """The ``supportbot.connectors`` entry point: None while ``slack.bot_token`` is unset."""
    if runtime.settings.slack.bot_token is None:
        return None
    # Imported only now: a start that does not configure this channel skips its libraries.
    from connectors.slack.connector import SlackConnector

    return SlackConnector(runtime)


def __getattr__(name: str) -> Any:
    """``SlackConnector`` on first use, so discovering this entry point imports little."""
    if name == "SlackConnector":
        from connectors.slack.connector import SlackConnector

        return SlackConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SlackConnector", "create"]
