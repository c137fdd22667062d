"""Slack: support channels and DMs answered in threads (Events API over HTTP or Socket Mode)."""

from __future__ import annotations

from bot.connector import ConnectorRuntime
from connectors.slack.connector import SlackConnector


def create(runtime: ConnectorRuntime) -> SlackConnector | None:
    """The ``supportbot.connectors`` entry point: None while ``slack.bot_token`` is unset."""
    if runtime.settings.slack.bot_token is None:
        return None
    return SlackConnector(runtime)


__all__ = ["SlackConnector", "create"]
