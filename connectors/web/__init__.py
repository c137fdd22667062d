"""The web chat channel: the embeddable widget (``/widget.js``), the ``/chat`` page, and the
visitor sessions (anonymous cookie or signed identity, claim on login) behind them."""

from __future__ import annotations

from bot.connector import ConnectorRuntime
from connectors.web.connector import WebConnector
from connectors.web.visitors import IdentityClaims, sign_identity, verify_identity


def create(runtime: ConnectorRuntime) -> WebConnector | None:
    """The ``supportbot.connectors`` entry point: on unless ``web.enabled`` is false."""
    if not runtime.settings.web.enabled:
        return None
    return WebConnector(runtime)


__all__ = ["IdentityClaims", "WebConnector", "create", "sign_identity", "verify_identity"]
