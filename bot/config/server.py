"""The daemon's own sections: its database, its HTTP server and admin token, the pipeline that
runs turns and sends actions, and its logs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from bot.config.base import Section
from bot.redact import mask_url


class DatabaseUrl(str):
    """``database.url``: the real URL to whatever uses it as text (the engine), the password
    masked in its ``repr`` — which is what ends up in reprs of the settings, error messages and
    tracebacks. ``str()`` stays the real URL on purpose: string operations and the driver read
    the characters themselves, so masking ``str()`` would hide nothing and only surprise."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url(self))


class DatabaseSettings(Section):
    url: str = DatabaseUrl("sqlite+aiosqlite:///./supportbot.db")
    echo: bool = False
    pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the plain URLs people paste and pick the async driver for them."""
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                return DatabaseUrl(driver + value[len(plain) :])
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("expected a sqlite:// or postgresql:// URL")
        return DatabaseUrl(value)


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    public_url: str | None = None


class AdminSettings(Section):
    token: SecretStr | None = None


class PipelineSettings(Section):
    concurrency: int = Field(default=8, ge=1, le=1024)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    outbox_max_attempts: int = Field(default=8, ge=1)
    # Tries at a customer's messages whose turn raised (not a model failure: the engine answers
    # those) before they are marked failed.
    turn_max_attempts: int = Field(default=5, ge=1)
    # How long a turn waits for what its messages only refer to (a Slack author's profile, shared
    # files) before it runs without them.
    resolve_timeout_seconds: float = Field(default=15.0, gt=0)
    outbox_backoff_seconds: float = Field(default=1.0, gt=0)
    outbox_backoff_max_seconds: float = Field(default=300.0, gt=0)
    drain_timeout_seconds: float = Field(default=20.0, ge=0)
    # Load shedding (``bot.pipeline.shedding``): while webhooks queue up, the event loop runs
    # this late (smoothed) and its thread is busy on the CPU, new turns wait so that
    # acknowledgements go first; 0 turns it off.
    shed_lag_ms: float = Field(default=10.0, ge=0)
    # Meanwhile at most this many turns run, a new one at most every this many seconds...
    shed_turns: int = Field(default=1, ge=1)
    shed_claim_interval_seconds: float = Field(default=0.1, ge=0)
    # ...for at most this long at a stretch (then for a fifth of it a turn more every 0.1 s
    # while acknowledgements keep up, half of them fewer when they do not).
    shed_max_seconds: float = Field(default=10.0, gt=0)


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"
