"""The sections ``serve`` runs on a schedule: batch triage (``[triage]``) and retention
(``[retention]``)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from bot.config.base import EnvList, Section, parse_duration


class TriageSettings(Section):
    """Batch triage (``[triage]``): what a sweep takes, and when ``serve`` runs one.

    A schedule is ``interval_seconds`` or ``cron`` (crontab: minute hour day month weekday), in
    ``timezone``; with neither, ``serve`` does not sweep and ``supportbot triage --once`` is the
    way to run one.
    """

    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    timezone: str = "UTC"
    misfire_grace_seconds: float = Field(default=300.0, gt=0)
    # Conversations per sweep (across channels); None: all that are waiting.
    limit: int | None = Field(default=None, ge=1)
    # Turns at once for ``supportbot triage``; None: ``pipeline.concurrency``. Inside ``serve``
    # the sweep shares the daemon's dispatcher, so ``pipeline.concurrency`` bounds it there.
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    # Only conversations updated within this window: a duration (30m, 2h, 1d) or "" for all.
    since: str = "24h"
    # Channels to sweep; None: every enabled connector that can list pending work.
    channels: EnvList[str] | None = None
    # Post each sweep's digest to this Slack channel id (needs the Slack connector).
    digest_slack_channel: str | None = None
    # A sweep stops waiting for its turns and actions after this long (the rest is reported).
    timeout_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as UTC)") from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo

        from bot.crontab import cron_trigger

        try:
            cron_trigger(value, ZoneInfo("UTC"))
        except ValueError as exc:
            raise ValueError(f"not a crontab expression: {exc}") from None
        return value

    @field_validator("since")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        if value and parse_duration(value) is None:
            raise ValueError("expected a duration such as 30m, 2h or 1d, or an empty string")
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> TriageSettings:
        if self.interval_seconds is not None and self.cron is not None:
            raise ValueError("set either triage.interval_seconds or triage.cron, not both")
        return self

    @property
    def scheduled(self) -> bool:
        return self.interval_seconds is not None or self.cron is not None

    @property
    def digest_destinations(self) -> dict[str, str]:
        """Where each sweep's digest is posted: connector name → a destination on its channel."""
        return {"slack": self.digest_slack_channel} if self.digest_slack_channel else {}


class RetentionSettings(Section):
    """How long closed conversations are kept (``[retention]``); ``days`` unset keeps them forever.

    With ``days`` set, ``serve`` erases every thread closed (and untouched since) more than that
    many days ago, and a smith left with no thread, every ``interval_seconds`` on the same
    one-replica-per-tick lock as triage. Erased means gone from the database for good; an
    ``erasures`` row records that it happened, without personal data.
    """

    days: float | None = Field(default=None, gt=0)
    interval_seconds: float = Field(default=3600.0, gt=0)

    # The schedule as the scheduler reads it (``bot.scheduler.Schedule``): an interval in UTC.
    @property
    def cron(self) -> str | None:
        return None

    @property
    def timezone(self) -> str:
        return "UTC"

    @property
    def misfire_grace_seconds(self) -> float:
        return self.interval_seconds

    @property
    def scheduled(self) -> bool:
        return self.days is not None
