"""Escalations told to people where they are, beyond the thread's own channel.

An ESCALATE (``bot.agent.builtin_tools.escalation``) plans one ``ANNOUNCE`` among its actions.
When the dispatcher commits the turn, ``Announcements.actions`` turns it into one outbox action
per audience, committed with the run:

- every connector that declares ``announces_escalations`` (Slack with an escalation channel),
  for threads of the other channels (a channel's own escalation actions already tell its people);
- every ``[[notify]]`` webhook, for every escalation, on the outbox channel ``notify`` that
  ``WebhookNotifier`` serves.

Each goes out through the outbox like any action: leased, retried with backoff, dead-lettered
after ``pipeline.outbox_max_attempts``. The action's id is the event's ``id`` on every try, so a
receiver that saw it before can tell (at least once, never silently lost).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import ClassVar

import aiohttp

from bot.config import NotifySettings, Settings
from bot.connector import ActionError, Connector
from bot.domain import JSON, Action, ActionKind, PlannedAction, Thread, action_id, now
from bot.redact import mask_url
from bot.retry import parse_retry_after

log = logging.getLogger(__name__)

# The outbox channel of outgoing webhooks (not a connector: nobody writes in from there).
NOTIFY = "notify"
SIGNATURE_HEADER = "X-Supportbot-Signature"
EVENT_ESCALATED = "thread.escalated"
# Where a thread is read and answered (the console is served by the daemon under this path).
CONSOLE_PATH = "/console/threads/"
# Ids of announcement actions are numbered after the turn's own actions, far enough apart.
FIRST_POSITION = 1000


def console_link(public_url: str | None, thread_id: str) -> str:
    """The console's page of ``thread_id``: absolute on ``http.public_url``, else the path."""
    base = (public_url or "").rstrip("/")
    return f"{base}{CONSOLE_PATH}{thread_id}"


def target_key(target: NotifySettings) -> str:
    """A stable name of a webhook target for its queued actions (the URL's digest: its query
    may hold a token, which must not sit in the outbox)."""
    return hashlib.sha256(target.url.encode()).hexdigest()[:16]


def sign(secret: str, body: bytes) -> str:
    """The ``X-Supportbot-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def escalation_announcement(*, reason: str, priority: str, summary: str) -> PlannedAction:
    """The ``ANNOUNCE`` an escalation plans; the dispatcher gives it its audiences."""
    return PlannedAction(
        ActionKind.ANNOUNCE,
        text=summary,
        ref={"reason": reason, "priority": priority, "summary": summary},
    )


class Announcements:
    """Who hears of an escalation; see the module's description."""

    def __init__(self, settings: Settings, connectors: Mapping[str, Connector]):
        self._settings = settings
        self._connectors = connectors  # the application's live mapping

    def actions(self, planned: PlannedAction, *, thread: Thread, run_id: str) -> list[Action]:
        """The outbox actions that announce ``planned`` (an ``ANNOUNCE``) for ``thread``."""
        event: JSON = {
            "type": EVENT_ESCALATED,
            "created_at": now(),
            "priority": planned.ref.get("priority"),
            "reason": planned.ref.get("reason"),
            "summary": planned.ref.get("summary") or planned.text or "",
            "console_url": console_link(self._settings.http.public_url, thread.id),
            "thread": {
                "id": thread.id,
                "channel": thread.channel,
                "external_id": thread.external_id,
                "title": thread.title,
                "smith_id": thread.smith_id,
            },
        }
        audiences: list[tuple[str, JSON]] = [
            (connector.name, {})
            for connector in self._connectors.values()
            if connector.announces_escalations and connector.name != thread.channel
        ]
        audiences += [(NOTIFY, {"target": target_key(t)}) for t in self._settings.notify]
        return [
            Action(
                id=action_id(run_id, FIRST_POSITION + n),
                run_id=run_id,
                thread_id=thread.id,
                channel=channel,
                kind=ActionKind.ANNOUNCE,
                text=planned.text,
                ref={**event, **extra},
            )
            for n, (channel, extra) in enumerate(audiences)
        ]


def webhook_body(action: Action) -> bytes:
    """The JSON a webhook receives: the event, with the action's id as its ``id`` (the same on
    every try of it)."""
    event = {k: v for k, v in action.ref.items() if k != "target"}
    return json.dumps({"id": action.id, **event}, separators=(",", ":"),
                      ensure_ascii=False).encode()


class WebhookNotifier(Connector):
    """Sends ``ANNOUNCE`` actions of the ``notify`` channel to the ``[[notify]]`` webhooks.

    A 2xx is delivered; a timeout, a network error, 408, 429 or a 5xx is tried again (after the
    receiver's ``Retry-After``, if it gives one); any other answer is final (a receiver that
    refuses the signature will refuse it on every try). Errors name the URL with credentials
    masked, never the secret.
    """

    name: ClassVar[str] = NOTIFY

    def __init__(self, targets: Sequence[NotifySettings]):
        self._targets = {target_key(t): t for t in targets}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(trust_env=True)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def execute(self, action: Action, thread: Thread) -> str | None:
        if action.kind is not ActionKind.ANNOUNCE:
            return None
        target = self._targets.get(str(action.ref.get("target")))
        if target is None:
            raise ActionError("its [[notify]] webhook is no longer configured", retryable=False)
        if self._session is None:
            raise ActionError("the webhook notifier is not started")
        body = webhook_body(action)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(target.secret.get_secret_value(), body),
            "X-Supportbot-Event": str(action.ref.get("type") or EVENT_ESCALATED),
            "X-Supportbot-Event-Id": action.id,
        }
        where = mask_url(target.url)
        try:
            async with self._session.post(
                target.url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=target.timeout_seconds),
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActionError(f"webhook {where}: {type(exc).__name__}") from None
        if 200 <= status < 300:
            log.info("escalation on %s announced to webhook %s", thread.id, where)
            return str(status)
        retryable = status in (408, 429) or status >= 500
        raise ActionError(f"webhook {where} answered {status}", retryable=retryable,
                          retry_after=retry_after)
