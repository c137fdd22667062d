"""The Intercom channel: signed webhooks and a poller in; replies, notes, tags, assignment and
conversation state out (``python-intercom``'s ``AsyncIntercom``, pinned ``Intercom-Version``)."""

from __future__ import annotations

from bot.connector import ConnectorRuntime
from connectors.intercom.connector import IntercomConnector


def create(runtime: ConnectorRuntime) -> IntercomConnector | None:
    """The entry-point factory: a connector when ``intercom.token`` is set, else None."""
    if not runtime.settings.intercom.enabled:
        return None
    return IntercomConnector(runtime)


__all__ = ["IntercomConnector", "create"]
