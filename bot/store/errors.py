"""What the store raises besides ``bot.domain.NotFound``."""

from __future__ import annotations


class LeaseLost(RuntimeError):
    """A lane's or an action's lease expired and was taken by another worker; what this
    worker was doing under it is void."""
