"""Crontab lines as APScheduler triggers: a leaf the settings validate with and the scheduler
schedules with, so reading the configuration does not load the scheduler (or the store)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expr: str, timezone: ZoneInfo) -> CronTrigger:
    """A trigger for a standard crontab line (minute hour day month weekday).

    APScheduler 3.x numbers weekdays from Monday = 0 (its ``from_crontab`` says so in a
    warning), while crontab has Sunday = 0 (and 7): ``1-5`` would mean Tuesday to Saturday.
    Numeric weekdays are translated to names here, so ``1-5`` is Monday to Friday as in cron.
    Raises ``ValueError`` for what is not a crontab line.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=timezone,
    )


def _weekdays(field: str) -> str:
    if not any(ch.isdigit() for ch in field) or field.startswith("*") and "/" not in field:
        return field  # names (mon-fri), or every day: same meaning in both numberings
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = int(a), int(b)
        else:
            first = last = int(span)
            if step_text:
                last = 7
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step >= 1):
            raise ValueError(f"weekday field {field!r}: expected 0-7 (0 and 7 are Sunday)")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))
