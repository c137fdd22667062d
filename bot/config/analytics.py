"""How the operator's reports count (``[analytics]``): reopen window, content gaps, prices."""

from __future__ import annotations

from pydantic import Field

from bot.config.base import Section


class ModelPrice(Section):
    """What one model's tokens cost, in any one currency, per million tokens."""

    input_per_million: float = Field(default=0.0, ge=0)
    output_per_million: float = Field(default=0.0, ge=0)


class AnalyticsSettings(Section):
    """How ``GET /v1/analytics`` and the console count (``[analytics]``).

    ``reopen_hours``: a thread the bot answered or closed that the customer writes in again
    within this many hours was not resolved. ``gap_score``: a customer question whose best
    retrieved passage scored below this is a content gap. ``prices``: per model name, what its
    tokens cost (``[analytics.prices."gpt-4o-mini"] input_per_million = 0.15``); a model with no
    price costs nothing in the report.
    """

    reopen_hours: float = Field(default=24.0, gt=0)
    gap_score: float = Field(default=0.3, ge=0, le=1)
    prices: dict[str, ModelPrice] = {}
