"""The Intercom channel: signed webhooks and a poller in; replies, notes, tags, assignment and
conversation state out (``python-intercom``'s ``AsyncIntercom``, pinned ``Intercom-Version``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.connector import ConnectorRuntime

if TYPE_CHECKING:
    from connectors.intercom.connector import IntercomConnector


def create(runtime: ConnectorRuntime) -> IntercomConnector | None:
    """The entry-point factory: a connector when ``intercom.token`` is set, else None."""
    if not runtime.settings.intercom.enabled:
        return None
    # Imported only now: a start that does not configure this channel skips its libraries.
    from connectors.intercom.connector import IntercomConnector

    return IntercomConnector(runtime)


def __getattr__(name: str) -> Any:
    """``IntercomConnector`` on first use, so discovering this entry point imports little."""
    if name == "IntercomConnector":
        from connectors.intercom.connector import IntercomConnector

        return IntercomConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["IntercomConnector", "create"]
