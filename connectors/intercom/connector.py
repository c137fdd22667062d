"""The Intercom connector: signed webhooks and a poller in, replies/notes/tags/assignment/state out.

Inbound, the customer's newest messages (user/lead comments after the last answer) become
``InboundMessage``s keyed by their conversation part, so a webhook, its retry, the poller and
the triage job all produce the same key and the inbox stores each message once. Handoff
events (a human admin's reply, an assignment, a close, a reopening) are reported to the core
as signals; ``bot.pipeline.handoff`` decides who holds the thread. The bot's own parts (its
admin id from ``GET /me``) never start a turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from cachetools import FIFOCache

from bot.config import IntercomSettings
from bot.connector import ActionError, Connector, ConnectorRuntime, RawDelivery, UnreadableDelivery
from bot.domain import (
    JSON,
    Action,
    ActionKind,
    InboundMessage,
    Party,
    PlannedAction,
    Signal,
    SignalKind,
    Smith,
    Thread,
)
from bot.file_hosts import FileHosts
from connectors.intercom.actions import Handler, IntercomActions
from connectors.intercom.client import IntercomClient, IntercomError
from connectors.intercom.files import IntercomFiles
from connectors.intercom.model import (
    Conversation,
    conversation_id_of,
    inbound_messages,
    thread_external_id,
)

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 60.0
POLL_OVERLAP_SECONDS = 300.0  # search results lag behind writes by up to a few minutes
SEEN_NOTIFICATIONS = 10_000
FETCH_CONCURRENCY = 8  # conversations fetched at once while listing (at least; see fetch_pending)
# The poller's cursor, scoped by the runtime to this channel ("intercom.poller").
CURSOR_NAME = "poller"

USER_TOPICS = frozenset({"conversation.user.created", "conversation.user.replied"})
STATE_TOPICS = frozenset(
    {
        "conversation.admin.replied",
        "conversation.admin.assigned",
        "conversation.admin.closed",
        "conversation.admin.opened",
    }
)
# Intercom's topic for a customer's conversation rating; any other topic's conversation item
# that carries ``conversation_rating`` is counted too.
RATING_TOPIC = "conversation.rating.added"
# Intercom's 1–5 rating as the thumbs the analytics count; a 3 says neither.
RATING_SCORES = {1: "down", 2: "down", 4: "up", 5: "up"}


def poll_interval(settings: IntercomSettings) -> float | None:
    """Seconds between polls, or None for no poller: unset means every 60 s without webhooks
    (no client secret) and off with them; 0 turns it off."""
    if settings.poll_interval_seconds is None:
        return None if settings.client_secret is not None else DEFAULT_POLL_SECONDS
    return settings.poll_interval_seconds or None


class IntercomConnector(Connector):
    name = "intercom"

    def __init__(self, runtime: ConnectorRuntime):
        self._runtime = runtime
        self._settings = runtime.settings.intercom
        self._client: IntercomClient | None = None
        self._admin_id: str | None = None
        self._admin_lock = asyncio.Lock()
        self._actions = IntercomActions(self._settings, runtime, lambda: self.client)
        self._handlers: Mapping[ActionKind, Handler] = (
            self._actions.dry_run_handlers() if self._settings.dry_run else self._actions.handlers()
        )
        self._seen: FIFOCache[str, None] = FIFOCache(maxsize=SEEN_NOTIFICATIONS)
        self.files = IntercomFiles(
            max_bytes=self._settings.max_attachment_bytes,
            hosts=FileHosts(self._settings.attachment_hosts),
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.poll_interval = poll_interval(self._settings)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def client(self) -> IntercomClient:
        if self._client is None:
            raise RuntimeError("the Intercom connector is not started")
        return self._client

    def routes(self) -> Sequence[web.RouteDef]:
        # Imported when the HTTP server asks for the routes: a command that serves none
        # (``triage --once``) skips aiohttp.web and the webhook's body parsing.
        from connectors.intercom.webhook import WebhookEndpoint

        secret = self._settings.client_secret
        webhook = WebhookEndpoint(
            self,
            secret=secret.get_secret_value().encode() if secret is not None else None,
            max_body_bytes=self._runtime.settings.http.max_body_bytes,
        )
        return webhook.routes()

    async def start(self) -> None:
        self._client = IntercomClient(self._settings)
        try:
            await self.bot_admin_id()
        except IntercomError as exc:
            # Not fatal: the daemon starts, /readyz says not ready, and the id is asked again
            # when first needed.
            log.error("cannot identify the bot's Intercom admin (GET /me): %s", exc)
        if self.poll_interval:
            task = asyncio.create_task(self._poll_forever(self.poll_interval), name="intercom-poller")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            log.info("Intercom poller every %.0fs", self.poll_interval)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.files.close()
        if self._client is not None:
            try:
                await self._client.close()
            except Exception:
                log.exception("closing the Intercom HTTP client failed")
            self._client = None

    def ready(self) -> bool:
        return self._admin_id is not None

    async def bot_admin_id(self) -> str:
        """The admin the bot acts as (from ``GET /me``), asked once."""
        if self._admin_id is not None:
            return self._admin_id
        async with self._admin_lock:
            if self._admin_id is None:
                me = await self.client.me()
                if not me.get("id"):
                    raise IntercomError("GET /me returned no admin id", retryable=False)
                self._admin_id = str(me["id"])
                log.info("acting as Intercom admin %s", self._admin_id)
        return self._admin_id

    # -- inbound: notifications -------------------------------------------------------------

    async def receive(self, payload: JSON, body: bytes) -> tuple[int, str]:
        """Check one verified notification's envelope and store it for ``parse_delivery``
        (which reads its conversation, after the answer); the HTTP status, a reason."""
        topic = payload.get("topic")
        notification_id = payload.get("id")
        if topic == "ping":
            return 200, "pong"
        if topic not in USER_TOPICS and topic not in STATE_TOPICS and topic != RATING_TOPIC:
            return 200, f"topic {topic!r} ignored"
        if isinstance(notification_id, str) and notification_id in self._seen:
            return 200, "notification already stored"
        data = payload.get("data")
        item = data.get("item") if isinstance(data, dict) else None
        if not isinstance(item, dict) or item.get("id") is None:
            return 400, "notification without a conversation item"
        # Intercom's notification id is the redelivery's key; without one, the body itself.
        key = notification_id if isinstance(notification_id, str) and notification_id else (
            "sha256:" + hashlib.sha256(body).hexdigest())
        # Ordered under the thread's external id: erasing the thread finds it by that.
        order = thread_external_id(str(item["id"]))
        delivery = RawDelivery(key, order, body, payload=(topic, item))
        try:
            new = await self._runtime.submit_raw(delivery)
        except Exception:
            log.exception("Intercom notification %s not stored", notification_id)
            return 503, "not stored; deliver again later"
        if isinstance(notification_id, str):  # spares a retry's insert (the row is the record)
            self._seen[notification_id] = None
        return 200, "stored" if new else "notification already stored"

    async def parse_delivery(self, delivery: RawDelivery) -> None:
        """A stored notification's customer messages into the inbox, an admin's event as a
        handoff signal, a rating recorded; raises to be tried again later (an unreadable
        conversation: ``UnreadableDelivery``, kept as failed)."""
        if delivery.payload is not None:
            topic, item = delivery.payload
        else:  # stored by a process that did not keep its decoded body; checked when stored
            topic, item = (payload := json.loads(delivery.body))["topic"], payload["data"]["item"]
        try:
            conversation = Conversation.from_json(item)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UnreadableDelivery(f"unreadable conversation item: {exc!r}") from exc
        reason = await self._act(str(topic), conversation)
        log.debug("Intercom notification %s: %s", delivery.dedup_key, reason)

    async def _act(self, topic: str, conversation: Conversation) -> str:
        rated = await self._rating(conversation)
        if topic == RATING_TOPIC:
            return "rating recorded" if rated else "no rating to record"
        if topic in USER_TOPICS:
            new = await self.ingest(conversation, complete=topic == "conversation.user.created")
            return f"{new} new message(s)"
        return await self._state_change(topic, conversation)

    async def ingest(self, conversation: Conversation, *, complete: bool = True) -> int:
        """Submit the conversation's pending customer messages; returns how many were new.
        ``complete``: the conversation carries its opening message and every part since (not
        a ``conversation.user.replied`` item, which carries only the newest parts)."""
        messages = self._messages(conversation, include_source=complete)
        if messages and not complete:
            # A conversation the customer just started has no closed thread to reopen: one
            # database round trip less on the busiest path.
            await self._reopened(messages[-1])
        if await self._human_assigned(conversation):
            # After the reopening, so a person's assignment outlasts it; before the messages,
            # so their turn finds the thread held (recorded and skipped, never answered).
            await self._runtime.report(
                self._signal(SignalKind.ASSIGNED_TO_PERSON, conversation,
                             who=conversation.admin_assignee_id)
            )
        return sum(await self._runtime.submit_all(messages)) if messages else 0

    def _messages(
        self, conversation: Conversation, *, include_source: bool = True
    ) -> list[InboundMessage]:
        return inbound_messages(
            conversation,
            conversation.pending_customer_parts(include_source=include_source),
            agent_slug=self._settings.agent,
            max_attachments=self._settings.max_attachments,
            max_attachment_bytes=self._settings.max_attachment_bytes,
        )

    async def accept(self, messages: Sequence[InboundMessage]) -> int:
        """Put one conversation's waiting messages (oldest first, as one delivery) in the
        inbox; returns how many were new. They go in together, so one turn answers them all.
        A customer writing in a closed conversation reopens it (who then holds it is
        handoff's call)."""
        if not messages:
            return 0
        await self._reopened(messages[-1])
        return sum(await self._runtime.submit_all(messages))

    async def _reopened(self, message: InboundMessage) -> None:
        """The customer wrote (``message``): a closed thread is open again (what that means for
        who holds it is handoff's call)."""
        await self._runtime.report(
            Signal(
                SignalKind.REOPENED,
                self.name,
                message.thread_external_id,
                by=Party.CUSTOMER,
                who=message.smith_external_id,
                source=message.source,
                dedup_key=message.dedup_key,
            )
        )

    async def _human_assigned(self, conversation: Conversation) -> bool:
        assignee = conversation.admin_assignee_id
        if assignee is None:
            return False
        return assignee != await self.bot_admin_id()

    def _signal(
        self, kind: SignalKind, conversation: Conversation, *, who: str | None = None,
        by: Party = Party.PERSON,
    ) -> Signal:
        """A signal about ``conversation``, carrying its customer so a takeover can create the
        thread of a conversation the bot has not seen yet."""
        author = conversation.customer_author()
        contact_id = conversation.customer_id
        return Signal(
            kind,
            self.name,
            thread_external_id(conversation.id),
            by=by,
            who=who,
            smith_external_id=f"intercom:{contact_id}" if contact_id is not None else None,
            display_name=(author.name or author.email) if author else None,
            agent_slug=self._settings.agent,
            ref={"conversation_id": conversation.id},
        )

    async def _rating(self, conversation: Conversation) -> bool:
        """The customer's rating of the conversation, stored with the bot's latest answer in
        it (CSAT); whether one was recorded. Rating again replaces the earlier one."""
        rating = conversation.rating or {}
        score = rating.get("rating")
        verdict = RATING_SCORES.get(score) if isinstance(score, int) else None
        if verdict is None:
            return False
        runtime = self._runtime
        for thread in await runtime.find_threads_by_external(thread_external_id(conversation.id)):
            latest = await runtime.latest_run(thread.id)
            if latest is None:
                continue
            contact = rating.get("contact") or {}
            rater = f"{self.name}:{contact.get('id') or conversation.id}"
            remark = rating.get("remark")
            await runtime.rate(latest, rater=rater, rating="up" if verdict == "up" else "down",
                               comment=remark if isinstance(remark, str) else None,
                               source="rating")
            return True
        return False

    async def _state_change(self, topic: str, conversation: Conversation) -> str:
        """An admin's event in Intercom, as a handoff signal."""
        report = self._runtime.report
        if topic == "conversation.admin.closed":
            changed = await report(self._signal(SignalKind.CLOSED, conversation))
            return f"closed {changed} thread(s)"
        if topic == "conversation.admin.opened":
            changed = await report(self._signal(SignalKind.REOPENED, conversation))
            return f"opened {changed} thread(s)"
        bot = await self.bot_admin_id()
        if topic == "conversation.admin.replied":
            human = [
                p for p in conversation.parts
                if p.author.type == "admin" and p.author.id != bot and p.is_message
            ]
            if not human:
                return "the bot's own reply"
            changed = await report(
                self._signal(SignalKind.PERSON_REPLIED, conversation, who=human[-1].author.id)
            )
            return f"human took over {changed} thread(s)"
        # conversation.admin.assigned
        assignee = conversation.admin_assignee_id
        if assignee is None:
            return "assigned to a team or nobody: no change"
        if assignee == bot:
            changed = await report(
                self._signal(SignalKind.ASSIGNED_TO_BOT, conversation, who=bot, by=Party.BOT)
            )
            return f"assigned to the bot: {changed} thread(s) back to the bot"
        changed = await report(
            self._signal(SignalKind.ASSIGNED_TO_PERSON, conversation, who=assignee)
        )
        return f"assigned to a human: {changed} thread(s)"

    # -- inbound: polling --------------------------------------------------------------------

    async def fetch_pending(
        self, *, since: float | None, limit: int | None
    ) -> AsyncIterator[list[InboundMessage]]:
        """Open conversations waiting for an answer: updated after ``since`` (all when None),
        not assigned to a human, whose newest message is the customer's. At most ``limit``
        conversations, in search order; pages by hand with ``starting_after``."""
        filters: list[JSON] = [
            {"field": "state", "operator": "=", "value": "open"},
            {"field": "waiting_since", "operator": ">", "value": 0},
        ]
        if since is not None:
            filters.append({"field": "updated_at", "operator": ">", "value": int(since)})
        query: JSON = {"operator": "AND", "value": filters}
        bot = await self.bot_admin_id()
        # The whole list first: answering a conversation takes it out of the search, so paging
        # while the first ones are answered would skip some. The search pages are cheap; the
        # fetches (one per conversation) are what the first turns overlap with.
        candidates: deque[str] = deque()
        cursor: str | None = None
        while True:
            page = await self.client.search_conversations(
                query, per_page=self._settings.poll_page_size, starting_after=cursor
            )
            candidates += (str(s["id"]) for s in page.conversations if _may_be_waiting(s, bot))
            if not page.next_cursor or not page.conversations:
                break
            cursor = page.next_cursor
        # Fetches in flight (each still waits its turn at the rate limiter), taken in search
        # order, never many more than ``limit`` still needs; as many as the pipeline runs turns
        # at once, so the lanes are fed as fast as they free up (8 fetches of 300 ms each
        # deliver ~27 conversations/s; 16 lanes of two 300 ms model calls take ~27/s already).
        lanes = max(FETCH_CONCURRENCY, self._runtime.settings.pipeline.concurrency)
        conversations = 0
        in_flight: deque[asyncio.Task[JSON]] = deque()
        try:
            while candidates or in_flight:
                window = lanes if limit is None else min(lanes, max(1, limit - conversations))
                while candidates and len(in_flight) < window:
                    conversation_id = candidates.popleft()
                    in_flight.append(
                        asyncio.create_task(
                            self.client.find_conversation(conversation_id),
                            name=f"intercom:fetch:{conversation_id}",
                        )
                    )
                found = Conversation.from_json(await in_flight.popleft())
                if found.state != "open" or found.admin_assignee_id not in (None, bot):
                    continue
                pending = self._messages(found)
                if not pending:
                    continue
                yield pending
                conversations += 1
                if limit is not None and conversations >= limit:
                    return
        finally:
            # The caller stopped early, or one fetch failed: the rest are not wanted.
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def poll_once(self) -> int:
        """One sweep: everything waiting since the stored cursor goes to the inbox."""
        started = time.time()
        cursor = await self._runtime.get_cursor(CURSOR_NAME)
        since = float(cursor["since"]) if cursor and "since" in cursor else (
            started - self._settings.poll_lookback_seconds
        )
        new = 0
        async for messages in self.fetch_pending(since=since, limit=None):
            new += await self.accept(messages)
        await self._runtime.set_cursor(CURSOR_NAME, {"since": started - POLL_OVERLAP_SECONDS})
        return new

    async def _poll_forever(self, interval: float) -> None:
        failures = 0
        while True:
            try:
                new = await self.poll_once()
                failures = 0
                if new:
                    log.info("Intercom poller found %d new message(s)", new)
                delay = interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — the poller outlives any one failed sweep
                failures += 1
                delay = min(interval * 2**failures, 900.0)
                log.warning("Intercom poll failed (%s); next try in %.0fs", exc, delay)
            await asyncio.sleep(delay)

    # -- outbound ------------------------------------------------------------------------------

    async def execute(self, action: Action, thread: Thread) -> str | None:
        conversation_id = conversation_id_of(thread.external_id) or action.ref.get("conversation_id")
        if not conversation_id:
            raise ActionError(f"thread {thread.id} is not an Intercom conversation", retryable=False)
        try:
            admin = await self.bot_admin_id()
            handler = self._handlers.get(action.kind)
            if handler is None:
                raise ActionError(f"Intercom cannot {action.kind.value}", retryable=False)
            return await handler(action, str(conversation_id), admin)
        except IntercomError as exc:
            raise ActionError(str(exc), retryable=exc.retryable, retry_after=exc.retry_after) from None

    # -- what the tools do here --------------------------------------------------------------

    def escalation_actions(
        self, *, reason: str, priority: str, summary: str, thread: Thread
    ) -> list[PlannedAction]:
        """Tags ``escalated`` and ``priority:<p>``, an admin note, assignment (when configured)
        and a message telling the customer a person will follow up."""
        level = (priority or "medium").strip().lower() or "medium"
        note = f"Escalated by the bot (priority: {level}).\nReason: {reason}"
        if summary:
            note += f"\n\nSummary:\n{summary}"
        actions = [
            PlannedAction(ActionKind.TAG, tag="escalated"),
            PlannedAction(ActionKind.TAG, tag=f"priority:{level}"),
            PlannedAction(ActionKind.NOTE, text=note),
        ]
        if self._settings.escalation_assignee:
            actions.append(PlannedAction(ActionKind.ASSIGN, assignee=self._settings.escalation_assignee))
        actions.append(PlannedAction(ActionKind.REPLY, text=self._settings.escalation_message))
        return actions

    def close_actions(self, *, resolution_summary: str, thread: Thread) -> list[PlannedAction]:
        return [
            PlannedAction(ActionKind.NOTE, text=f"Resolved by the bot: {resolution_summary}"),
            PlannedAction(ActionKind.CLOSE),
        ]

    async def resolve_turn(
        self, smith: Smith, thread: Thread, messages: tuple[InboundMessage, ...]
    ) -> tuple[InboundMessage, ...]:
        """Each message with its attachments' content, fetched together; one that cannot be
        had is named to the model as not fetched."""
        if not any(m.attachments for m in messages):
            return messages
        async with asyncio.TaskGroup() as group:
            files = [
                [group.create_task(self.files.fetched(a)) for a in message.attachments]
                for message in messages
            ]
        return tuple(
            replace(message, attachments=tuple(task.result() for task in fetched))
            for message, fetched in zip(messages, files, strict=True)
        )

    async def user_info(self, smith: Smith, thread: Thread) -> JSON:
        """The conversation's own contact — never anyone else, whatever the model asked for."""
        conversation_id = conversation_id_of(thread.external_id)
        if conversation_id is None:
            return {}
        contact_id = (smith.external_id or "").removeprefix("intercom:")
        if not smith.external_id or contact_id == smith.external_id:
            log.warning("smith %s is not an Intercom contact; no user info", smith.id)
            return {}
        # The conversation's customer (as the sweep's fetch found it moments ago, or asked now),
        # the smith's contact and its companies, side by side: one round trip in every turn
        # that looks the customer up. Nothing is returned unless the conversation's customer
        # is the smith's own contact.
        customer, contact, companies = await asyncio.gather(
            self.client.customer_of(conversation_id),
            self.client.find_contact(contact_id),
            self._companies(contact_id),
        )
        if customer != contact_id:
            log.warning("conversation %s is not this smith's; no user info", conversation_id)
            return {}
        return _contact_info(contact, companies)

    async def _companies(self, contact_id: str) -> list[JSON]:
        """The contact's companies; none when Intercom will not say (the lookup goes on)."""
        try:
            return await self.client.contact_companies(contact_id)
        except IntercomError as exc:
            log.warning("companies of contact %s unavailable: %s", contact_id, exc)
            return []

    # -- capabilities ---------------------------------------------------------------------------

    def dry_run(self) -> Connector:
        """Intercom's own dry-run mode (``intercom.dry_run``): replies, closes and snoozes
        become admin notes the team can read, so a dry run shows what the bot would have done."""
        self._handlers = self._actions.dry_run_handlers()
        return self


def _may_be_waiting(summary: JSON, bot: str) -> bool:
    """A search hit worth fetching: open, waiting, not a human's, customer spoke last."""
    if summary.get("state", "open") != "open" or not summary.get("waiting_since"):
        return False
    assignee = summary.get("admin_assignee_id")
    if assignee not in (None, 0, "", "0") and str(assignee) != bot:
        return False
    stats = summary.get("statistics") or {}
    contact_at = stats.get("last_contact_reply_at")
    admin_at = stats.get("last_admin_reply_at")
    return not (contact_at and admin_at and admin_at > contact_at)


def _contact_info(contact: JSON, companies: list[JSON]) -> JSON:
    custom = dict(contact.get("custom_attributes") or {})
    info: JSON = {
        "contact_id": contact.get("id"),
        "role": contact.get("role"),
        "name": contact.get("name"),
        "email": contact.get("email"),
        "phone": contact.get("phone"),
        "external_id": contact.get("external_id"),
        "plan": custom.get("plan"),
        "custom_attributes": custom,
        "created_at": contact.get("created_at"),
        "last_seen_at": contact.get("last_seen_at"),
        "location": contact.get("location") or None,
        "companies": [
            {
                "id": company.get("company_id") or company.get("id"),
                "name": company.get("name"),
                "plan": (company.get("plan") or {}).get("name")
                if isinstance(company.get("plan"), dict)
                else company.get("plan"),
                "monthly_spend": company.get("monthly_spend"),
                "user_count": company.get("user_count"),
                "custom_attributes": company.get("custom_attributes") or {},
            }
            for company in companies
        ],
    }
    return {key: value for key, value in info.items() if value not in (None, {}, [])} | {
        "companies": info["companies"]
    }
