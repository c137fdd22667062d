"""The one way the intent modules build a pattern: alternatives, each grouped, matched in any
case (``bot.agent.intents``, ``outcomes``, ``sensitive``, ``demands``, ``scope``)."""

from __future__ import annotations

import re


def any_of(*patterns: str) -> re.Pattern[str]:
    """A pattern matching any of ``patterns``, ignoring case."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
