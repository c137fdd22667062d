"""The Slack connector: Events API (HTTP or Socket Mode) in, Web API calls out.

Inbound, a single Bolt listener sees every event (so Bolt never answers 404 and Slack never
retries for nothing), decides whether the bot should hear it, and hands it to the inbox before
Bolt acknowledges it (``process_before_response``: an event that could not be stored gets a
500 and Slack delivers it again). Nothing before that acknowledgement waits for a profile or a
file: the event goes into the inbox as it came (user id, text, file references), and
``resolve_turn`` fetches the author's profile and the files' content when the turn starts.
Outbound, ``execute`` turns each action into Web API calls; every bot message carries
``metadata`` with its action id so an uncertain send is looked up in the thread before it is
ever sent again.

The rooms: ``inbound`` (which events are heard, as pure rules), ``directory`` (profiles and user
groups, cached), ``files`` (file references and turn-time downloads), ``outbound`` (actions,
through a table of handlers), ``errors`` (what a failure means), ``pending`` (the triage
listing), ``live`` (streamed replies), ``events`` (the HTTP route), ``mrkdwn`` (rendering). This
module wires them to Bolt and to the connector runtime.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SlackSettings
from bot.connector import ActionError, Connector, ConnectorRuntime, LiveReply, TurnOutcome
from bot.domain import (
    JSON,
    Action,
    ActionKind,
    InboundMessage,
    PlannedAction,
    Signal,
    SignalKind,
    Smith,
    Thread,
)
from bot.http.file_hosts import FileHosts
from connectors.slack.directory import SlackDirectory
from connectors.slack.errors import (
    CALL_ERRORS,
    ConnectionErrorRetryHandler,
    ShortRateLimitRetryHandler,
)
from connectors.slack.events import EventsRoute
from connectors.slack.files import SlackFiles
from connectors.slack.inbound import (
    BotIdentity,
    hear_message,
    inbound_message,
    is_close_reaction,
    rating_of,
    resolved_thread,
    says_something,
)
from connectors.slack.live import SlackLiveReply
from connectors.slack.outbound import (
    ChannelPacer,
    SlackOutbound,
    thread_location,
)
from connectors.slack.pending import waiting_messages

log = logging.getLogger(__name__)

ESCALATION_EMOJI = "sos"
# Longest Retry-After waited out inside a Web API call; well inside the outbox lease.
RATE_LIMIT_INLINE_WAIT_SECONDS = 5.0


class SlackConnector(Connector):
    """Slack: DMs, @mentions and support channels answered in threads."""

    name = "slack"

    def __init__(self, runtime: ConnectorRuntime):
        self._runtime = runtime
        self._settings: SlackSettings = runtime.settings.slack
        if self._settings.bot_token is None:
            raise ValueError("the Slack connector needs slack.bot_token")
        self._token = self._settings.bot_token.get_secret_value()
        self._pacer = ChannelPacer(self._settings.post_interval_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self._bolt: AsyncApp | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._socket_connected = False
        self._identity: BotIdentity | None = None
        self._directory: SlackDirectory | None = None
        self._files: SlackFiles | None = None
        self._outbound: SlackOutbound | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Working reactions still being added, by message ts: taking one off waits for it.
        self._adding: dict[str, asyncio.Task[None]] = {}

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def client(self) -> AsyncWebClient:
        if self._client is None:
            raise RuntimeError("the Slack connector has not been started")
        return self._client

    @property
    def directory(self) -> SlackDirectory:
        if self._directory is None:
            raise RuntimeError("the Slack connector has not been started")
        return self._directory

    @property
    def files(self) -> SlackFiles:
        if self._files is None:
            raise RuntimeError("the Slack connector has not been started")
        return self._files

    @property
    def outbound(self) -> SlackOutbound:
        if self._outbound is None:
            raise RuntimeError("the Slack connector has not been started")
        return self._outbound

    @property
    def bolt(self) -> AsyncApp:
        if self._bolt is None:
            raise RuntimeError("the Slack connector has not been started")
        return self._bolt

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._client = AsyncWebClient(
            token=self._token,
            base_url=self._settings.base_url,
            session=self._session,
            logger=logging.getLogger(__name__ + ".web"),
            retry_handlers=[
                ShortRateLimitRetryHandler(
                    max_retry_count=2, max_wait_seconds=RATE_LIMIT_INLINE_WAIT_SECONDS
                ),
                ConnectionErrorRetryHandler(max_retry_count=2),
            ],
        )
        self._directory = SlackDirectory(
            self._client, cache_seconds=self._settings.user_cache_seconds
        )
        self._files = SlackFiles(
            FileHosts(self._settings.file_hosts), token=self._token,
            max_bytes=self._settings.max_file_bytes,
        )
        self._outbound = SlackOutbound(self._client, self._settings, self._pacer)
        signing_secret = self._settings.signing_secret
        socket_mode = self._settings.app_token is not None
        if signing_secret is None and not socket_mode:
            log.error(
                "slack.signing_secret is not set and Socket Mode is off (no slack.app_token): "
                "every request to /slack/events will be rejected"
            )
        self._bolt = AsyncApp(
            name="supportbot",
            client=self._client,
            signing_secret=signing_secret.get_secret_value() if signing_secret else "",
            # Store the event before acknowledging it: an event we failed to store is answered
            # 500, so Slack delivers it again instead of it being lost.
            process_before_response=True,
            # /slack/events verifies the signature before Bolt sees the request (Bolt would
            # parse the body first, and log the body of every request it refuses).
            request_verification_enabled=False,
            logger=logging.getLogger(__name__ + ".bolt"),
        )
        self._bolt.middleware(self._acknowledge_non_events)
        self._bolt.event(re.compile(".*"))(self._on_event)
        try:
            await self._whoami()
        except CALL_ERRORS as exc:
            log.warning("Slack auth.test failed at start (will retry on first use): %s", exc)
        if socket_mode:
            assert self._settings.app_token is not None
            self._socket = AsyncSocketModeHandler(
                self._bolt,
                app_token=self._settings.app_token.get_secret_value(),
                web_client=self._client,
                logger=logging.getLogger(__name__ + ".socket"),
            )
            # connect() retries forever while Slack is unreachable: let it do that in the
            # background rather than hold up the daemon's start; ready() tells when it is up.
            self._spawn(self._connect_socket(self._socket), "slack-socket-connect")

    async def _connect_socket(self, handler: AsyncSocketModeHandler) -> None:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        self._socket_connected = True
        log.info("Slack Socket Mode connected")

    async def stop(self) -> None:
        if self._socket is not None:
            try:
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            except Exception:
                log.exception("closing the Slack Socket Mode connection failed")
            self._socket = None
            self._socket_connected = False
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._files is not None:
            await self._files.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ready(self) -> bool:
        if self._socket is not None:
            session = self._socket.client.current_session
            if not self._socket_connected or session is None or session.closed:
                return False
        return self._identity is not None

    def routes(self) -> Sequence[web.RouteDef]:
        secret = self._settings.signing_secret
        route = EventsRoute(
            signing_secret=secret.get_secret_value() if secret else None,
            max_body_bytes=self._runtime.settings.http.max_body_bytes,
            dispatch=lambda request: self.bolt.async_dispatch(request),
        )
        return route.routes()

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def run() -> None:
            await work

        task = asyncio.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _whoami(self) -> BotIdentity:
        if self._identity is None:
            response = await self.client.auth_test()
            self._identity = BotIdentity(
                user_id=str(response["user_id"]),
                bot_id=response.get("bot_id"),
                team_id=str(response["team_id"]),
            )
            log.info("Slack bot is %s in team %s", self._identity.user_id, self._identity.team_id)
        return self._identity

    # -- inbound ------------------------------------------------------------------------

    async def _acknowledge_non_events(
        self, body: JSON, ack: AsyncAck, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Payloads that are not events (``app_rate_limited``, interactivity the app does not
        use) get a 2xx here rather than Bolt's 404; events go on to the listener."""
        if body.get("type") == "event_callback":
            await next()
            return None
        if body.get("type") == "app_rate_limited":
            log.warning("Slack is rate-limiting event deliveries to this app (minute %s)",
                        body.get("minute_rate_limited"))
        else:
            log.debug("acknowledging a Slack %s payload the bot does not handle", body.get("type"))
        return await ack()

    async def _on_event(self, body: JSON, ack: AsyncAck) -> None:
        """Every event of every type lands here; each is acknowledged after it is handled."""
        event = body.get("event") or {}
        kind = event.get("type")
        team = str(body.get("team_id") or event.get("team") or "")
        if kind in ("message", "app_mention"):
            await self._on_message(team, kind, event)
        elif kind == "reaction_added":
            await self._on_reaction(team, event)
            await self._on_rating(event, added=True)
        elif kind == "reaction_removed":
            await self._on_rating(event, added=False)
        else:
            log.debug("acknowledging a Slack %s event without acting on it", kind)
        await ack()

    async def _on_message(self, team: str, kind: str, event: JSON) -> None:
        if not says_something(event):
            return
        me = await self._whoami()
        heard = hear_message(kind, team, event, me, self._settings)
        if heard is None:
            return
        runtime = self._runtime
        known = await runtime.find_threads_by_external(heard.thread_key) if heard.is_reply else []
        if known:
            owners = {
                (await runtime.get_smith(t.smith_id, include_archived=True)).external_id
                for t in known
            }
            if heard.customer not in owners:
                await self._someone_else_replied(
                    heard.thread_key, known, heard.sender, is_bot=heard.from_bot
                )
                return
            if not any(self._runtime.bot_holds(t) for t in known):
                # Slack shows the thread to the people holding it: nothing to store.
                log.debug("a human has %s; the bot stays silent", heard.thread_key)
                return
        elif not (
            heard.addressed
            or (heard.follow_up_of is not None and await runtime.inbox_seen(heard.follow_up_of))
        ):
            return

        message = inbound_message(
            heard.team, heard.channel, event, heard.sender, me, self._settings.agent
        )
        emoji = self._settings.working_reaction
        if emoji:
            # Recorded on the message, so whichever replica runs its turn takes the reaction off.
            message = replace(message, ref={**message.ref, "working": emoji})
        if await self._runtime.submit(message) and emoji:
            self._mark_working(heard.channel, str(event["ts"]), emoji)

    async def fetch_pending(
        self, *, since: float | None, limit: int | None
    ) -> AsyncIterator[list[InboundMessage]]:
        """Top-level messages in support channels that nobody has answered (for triage), each
        its own conversation, oldest first (so all channels are read before the first one).

        A message counts as waiting when it is one the bot would have answered (every message
        in an "all" channel, mentions in a "mentions" channel) and nobody but its author has
        replied in its thread. DMs are not swept: listing them needs ``im:read``, and Slack
        redelivers missed DM events for an hour anyway.
        """
        found = await waiting_messages(
            self.client, self._settings, await self._whoami(), since=since
        )
        for message in found[:limit] if limit is not None else found:
            yield [message]

    async def _someone_else_replied(
        self, thread_key: str, threads: list[Thread], sender: str, *, is_bot: bool
    ) -> None:
        """A person other than the customer answered in the thread: reported to handoff, which
        gives the thread to people.

        With ``slack.support_users`` or ``slack.support_group`` set, only those people count;
        anyone else joining the thread is ignored.
        """
        if is_bot or not await self._is_support_person(sender):
            return
        if await self._runtime.report(
            Signal(SignalKind.PERSON_REPLIED, self.name, thread_key, who=sender)
        ):
            log.info("%s replied in %s; handing the thread to humans", sender, thread_key)
        # Messages still waiting in the inbox are skipped now; turn_ended takes :eyes: off them.

    async def _is_support_person(self, user: str) -> bool:
        settings = self._settings
        if not settings.support_users and not settings.support_group:
            return True
        if user in settings.support_users:
            return True
        return settings.support_group is not None and user in await self.directory.group_members(
            settings.support_group
        )

    async def _on_reaction(self, team: str, event: JSON) -> None:
        """A person's :white_check_mark: on the thread root closes the thread."""
        if not is_close_reaction(event):
            return
        key = resolved_thread(team, event, await self._whoami())
        if key is None:
            return
        user = event.get("user")
        if await self._runtime.report(
            Signal(SignalKind.RESOLVED, self.name, key, who=str(user) if user else None)
        ):
            log.info("%s marked %s resolved", user, key)

    async def _on_rating(self, event: JSON, *, added: bool) -> None:
        """A thumbs up or down on one of the bot's replies rates that answer (CSAT); taking
        the reaction back takes the rating back."""
        rating = rating_of(event)
        item = event.get("item") or {}
        user = event.get("user")
        if rating is None or not user or not item.get("ts"):
            return
        runtime = self._runtime
        run_id = await runtime.run_of_message(str(item["ts"]))
        if run_id is None:
            return
        rater = f"{self.name}:{user}"
        if added:
            await runtime.rate(run_id, rater=rater, rating=rating, source="reaction")
        else:
            await runtime.withdraw_rating(run_id, rater=rater, rating=rating)

    async def resolve_turn(
        self, smith: Smith, thread: Thread, messages: tuple[InboundMessage, ...]
    ) -> tuple[InboundMessage, ...]:
        """Each message with its author's profile (``users.info``, cached) and the content of
        its shared files, fetched together. A profile that cannot be had leaves the smith's
        name as it is, or names a smith that has none by its Slack user id; a file that
        cannot be had is named to the model as not fetched."""
        people = list(dict.fromkeys(
            str(m.ref["user"]) for m in messages if m.ref.get("user") and not m.ref.get("bot")
        ))
        if not people and not any(m.attachments for m in messages):
            return messages
        async with asyncio.TaskGroup() as group:
            profiles = {
                user: group.create_task(self.directory.profile(user), name=f"slack-profile:{user}")
                for user in people
            }
            files = [
                [group.create_task(self.files.fetched(a), name=f"slack-file:{a.file_id}")
                 for a in message.attachments]
                for message in messages
            ]
        resolved = []
        for message, fetched in zip(messages, files, strict=True):
            user = str(message.ref.get("user") or "")
            if user in profiles:
                profile = profiles[user].result()
                name = profile.get("real_name") or profile.get("display_name")
                if name is None and smith.display_name is None:
                    name = user
                message = replace(message, display_name=name, profile=profile)
            attachments = tuple(task.result() for task in fetched)
            resolved.append(replace(message, attachments=attachments))
        return tuple(resolved)

    # -- the working indicator ----------------------------------------------------------

    def _mark_working(self, channel: str, ts: str, emoji: str) -> None:
        task = self._spawn(self._react_quietly(channel, ts, emoji), f"slack-working:{ts}")
        self._adding[ts] = task
        task.add_done_callback(lambda _: self._adding.pop(ts, None))

    async def _react_quietly(self, channel: str, ts: str, emoji: str) -> None:
        try:
            await self.outbound.react(channel, ts, emoji)
        except ActionError as exc:
            log.info("could not add :%s: to %s: %s", emoji, ts, exc)

    async def turn_ended(
        self, thread: Thread, messages: Sequence[InboundMessage], outcome: TurnOutcome
    ) -> None:
        """The bot is done with these messages (answered, skipped, or given up on): the working
        reaction comes off each one that wears it. A turn that will be tried again keeps it."""
        if outcome is TurnOutcome.RETRYING:
            return
        for message in messages:
            channel, ts, emoji = (message.ref.get(k) for k in ("channel", "ts", "working"))
            if channel and ts and emoji:
                self._spawn(self._unreact(str(channel), str(ts), str(emoji)), f"slack-done:{ts}")

    async def _unreact(self, channel: str, ts: str, emoji: str) -> None:
        adding = self._adding.get(ts)
        if adding is not None:
            await asyncio.gather(adding, return_exceptions=True)
        await self.outbound.unreact(channel, ts, emoji)

    # -- live replies -------------------------------------------------------------------

    async def live_reply(self, thread: Thread, run_id: str, *, retry: bool) -> LiveReply | None:
        """With ``slack.stream``, the turn's answer streams into the thread as it is written."""
        if not self._settings.stream:
            return None
        channel, root = thread_location(thread)
        if retry:
            await self.outbound.take_down_unfinished(channel, root, await self._whoami())
        recipient = {
            key: value
            for key, value in (
                ("recipient_team_id", thread.metadata.get("team")),
                ("recipient_user_id", thread.metadata.get("user")),
            )
            if value
        }
        return SlackLiveReply(
            self.client,
            channel=channel,
            thread_ts=root,
            recipient=recipient,
            interval=self._settings.stream_interval_seconds,
            slot=self._pacer.slot,
            spawn=self._spawn,
        )

    # -- outbound -----------------------------------------------------------------------

    async def execute(self, action: Action, thread: Thread) -> str | None:
        if action.kind is ActionKind.ANNOUNCE:
            # Another channel's escalation: told in the escalation channel, not in a thread.
            return await self.outbound.announce(action)
        return await self.outbound.execute(action, thread)

    @property
    def announces_escalations(self) -> bool:
        """Escalations of other channels (the web widget's) are posted in
        ``slack.escalation_channel``, when there is one."""
        return bool(self._settings.escalation_channel)

    posts_digest = True

    async def post_digest(self, channel: str, text: str) -> None:
        """Post a triage sweep's digest to ``channel`` (paced; raises ``ActionError``)."""
        await self.outbound.post_digest(channel, text)

    # -- what ESCALATE, CLOSE and USER_INFO_LOOKUP do on Slack ---------------------------

    def escalation_actions(
        self, *, reason: str, priority: str, summary: str, thread: Thread
    ) -> list[PlannedAction]:
        customer = thread.metadata.get("user")
        who = f"<@{customer}>" if customer else "a customer"
        text = f"*Escalation* ({priority}) from {who}: {reason}"
        if summary:
            text += f"\n> {summary}"
        return [
            PlannedAction(ActionKind.ESCALATION_POST, text=text),
            PlannedAction(
                ActionKind.REACT,
                emoji=ESCALATION_EMOJI,
                ref={"ts": thread.metadata.get("thread_ts") or thread.metadata.get("ts")},
            ),
            PlannedAction(
                ActionKind.REPLY,
                text="I've passed this to our support team; a person will follow up here shortly.",
            ),
        ]

    def close_actions(self, *, resolution_summary: str, thread: Thread) -> list[PlannedAction]:
        line = "Glad that's sorted — marking this as resolved."
        if resolution_summary:
            line = f"Glad that's sorted — marking this as resolved: {resolution_summary}"
        return [PlannedAction(ActionKind.REPLY, text=line), PlannedAction(ActionKind.CLOSE)]

    async def user_info(self, smith: Smith, thread: Thread) -> JSON:
        parts = (smith.external_id or "").split(":")
        if len(parts) != 3 or parts[0] != "slack":
            return {}
        return await self.directory.profile(parts[2])


# -- helpers ------------------------------------------------------------------------------------
