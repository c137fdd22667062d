"""A section per channel (``[intercom]``, ``[slack]``, ``[web]``) and the handoff rules they all
share (``[handoff]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from bot.config.base import EnvList, Section, normalise_origin

# Where Intercom serves customers' uploads and inline images (US, EU and Australian regions):
# its download and upload CDNs and the per-workspace ``<app>.intercom-attachments-N.com`` hosts.
INTERCOM_ATTACHMENT_HOSTS = [
    "downloads.intercomcdn.com",
    "downloads.intercomcdn.eu",
    "downloads.au.intercomcdn.com",
    "uploads.intercomcdn.com",
    "uploads.intercomcdn.eu",
    "uploads.eu.intercomcdn.com",
    "uploads.au.intercomcdn.com",
    "uploads.intercomusercontent.com",
    *(f"*.intercom-attachments-{n}.com" for n in range(1, 10)),
    "*.intercom-attachments.eu",
    "*.au.intercom-attachments.com",
]


class IntercomSettings(Section):
    token: SecretStr | None = None
    client_secret: SecretStr | None = None
    base_url: str = "https://api.intercom.io"
    api_version: str = "2.14"
    dry_run: bool = False
    escalation_assignee: str | None = None
    # None: poll every 60 s when there is no client_secret (no webhooks), else off; 0: off.
    poll_interval_seconds: float | None = Field(default=None, ge=0)
    # The older, Intercom-only name of ``handoff.resume_on_reopen``; still honoured (None: unset).
    resume_on_reopen: bool | None = None
    agent: str | None = None
    poll_lookback_seconds: float = Field(default=86_400.0, gt=0)
    # Intercom's largest search page: a sweep lists everything before its first turn, so the
    # fewer pages the sooner it starts (200 conversations: two pages, not four).
    poll_page_size: int = Field(default=150, ge=1, le=150)
    timeout_seconds: float = Field(default=15.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=0.5, gt=0)
    rate_limit_headroom: int = Field(default=100, ge=0)
    max_attachments: int = Field(default=10, ge=0, le=100)
    max_attachment_bytes: int = Field(default=20_971_520, ge=0)
    # Hosts attachments are downloaded from (``bot.http.file_hosts``: ``name``, ``*.domain``,
    # or an IP address as it is, which also allows plain http — for a local fake).
    attachment_hosts: EnvList[str] = INTERCOM_ATTACHMENT_HOSTS
    escalation_message: str = (
        "I've passed this to our support team; a person will follow up here shortly."
    )

    @field_validator("escalation_assignee")
    @classmethod
    def _assignee_form(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("team:", "admin:")):
            raise ValueError("expected 'team:<id>' or 'admin:<id>'")
        return value

    @property
    def enabled(self) -> bool:
        return self.token is not None


class SlackChannelSettings(Section):
    """How the bot listens in one Slack channel (``[slack.channels.<channel id>]``)."""

    mode: Literal["all", "mentions"] = "all"
    allow_bots: bool = False


class SlackSettings(Section):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    base_url: str = "https://slack.com/api/"
    support_channels: EnvList[str] = []
    channels: dict[str, SlackChannelSettings] = {}
    escalation_channel: str | None = None
    escalation_mention: str | None = None
    agent: str | None = None
    stream: bool = False
    stream_interval_seconds: float = Field(default=0.5, ge=0)
    working_reaction: str | None = "eyes"
    support_users: EnvList[str] = []
    support_group: str | None = None
    post_interval_seconds: float = Field(default=1.0, ge=0)
    max_file_bytes: int = Field(default=5_242_880, ge=0)
    # Hosts ``url_private`` files are downloaded from, with the bot token (as ``intercom.attachment_hosts``).
    file_hosts: EnvList[str] = ["files.slack.com"]
    user_cache_seconds: float = Field(default=3600.0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None

    def channel(self, channel_id: str) -> SlackChannelSettings | None:
        """The listening rule of a support channel; None for a channel that is not one."""
        if channel_id in self.channels:
            return self.channels[channel_id]
        if channel_id in self.support_channels:
            return SlackChannelSettings()
        return None


class WebSettings(Section):
    enabled: bool = True
    identity_secret: SecretStr | None = None
    max_upload_bytes: int = Field(default=5_242_880, ge=1024)
    upload_types: EnvList[str] = [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    ]
    session_hours: float = Field(default=24.0, gt=0)
    agent: str | None = None
    # Origins, besides the bot's own, whose pages may start a visitor session (login CSRF guard).
    allowed_origins: EnvList[str] = []
    # An anonymous visitor's history is claimed on login only with an identity issued this recently.
    claim_window_seconds: float = Field(default=300.0, ge=0)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [normalise_origin(v) for v in values]


class HandoffSettings(Section):
    """Who holds a thread (``[handoff]``), the same rules on every channel.

    A person's reply or an assignment to a person always takes a thread from the bot; these
    say when the bot may answer in it again.
    """

    # A customer who writes in a closed thread gets the bot again.
    resume_on_reopen: bool = True
    # Assigning the thread to the bot (Intercom: to the bot's own admin) gives it back.
    resume_on_assign: bool = True
    # The bot answers again once nobody on the support side has acted on a thread it gave to a
    # person for this many hours; None: never by itself.
    resume_after_hours: float | None = Field(default=None, gt=0)


class NotifySettings(Section):
    """One ``[[notify]]`` table: where an escalation is announced besides the channels
    (``SUPPORTBOT_NOTIFY`` as a JSON list). ``kind = "webhook"``: a JSON POST to ``url``, signed
    ``X-Supportbot-Signature: sha256=<hex HMAC-SHA256 of the body with secret>``, sent and
    retried through the outbox (at least once; the body's ``id`` is the same on every try)."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    timeout_seconds: float = Field(default=10.0, gt=0)
