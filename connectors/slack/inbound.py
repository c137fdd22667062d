"""Which Slack events the bot hears, as pure rules: each is a function of the event, who the
bot is and the settings, and returns a decision; the connector does the I/O around them
(the store, handoff, the inbox).

A message is heard when a person (or, where ``allow_bots`` is set, a bot) says something in
a DM, mentions the bot, or writes top-level in an "all" channel; a reply in a thread the bot
already has is heard whatever it says (the connector decides, with the store, whose thread it
is). Edits, deletes, joins and the bot's own messages are never heard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.config import SlackSettings
from bot.domain import JSON, InboundMessage, Rating
from connectors.slack.files import file_reference

SOURCE = "slack"
# Subtypes that are still a person saying something; edits, deletes, joins and the rest are not.
ANSWERED_SUBTYPES = frozenset({"file_share", "thread_broadcast"})
CLOSE_EMOJI = "white_check_mark"


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in the workspace (from ``auth.test``)."""

    user_id: str
    bot_id: str | None
    team_id: str


@dataclass(frozen=True, slots=True)
class HeardMessage:
    """A message the bot hears, and what the rules found out about it."""

    team: str
    channel: str
    sender: str
    from_bot: bool
    thread_key: str
    customer: str
    # A reply inside a thread (not the thread's root, nor a top-level message).
    is_reply: bool
    # Answered even in a thread the bot does not know: a DM, a mention, or top-level in an
    # "all" channel.
    addressed: bool
    # The inbox key of the thread's root when this reply is from the root's author: heard if
    # the root is in the inbox already (the customer adds to it before the bot's first turn).
    follow_up_of: str | None


def thread_external_id(team: str, channel: str, root_ts: str) -> str:
    """The thread key of a Slack thread: ``slack:<team>:<channel>:<thread_ts or ts>``."""
    return f"slack:{team}:{channel}:{root_ts}"


def smith_external_id(team: str, user: str) -> str:
    return f"slack:{team}:{user}"


def says_something(event: JSON) -> bool:
    """A message event that is someone saying something (not an edit, delete, join …)."""
    subtype = event.get("subtype")
    return bool(event.get("channel") and event.get("ts")) and not (
        subtype and subtype not in ANSWERED_SUBTYPES | {"bot_message"}
    )


def hear_message(
    kind: str, team: str, event: JSON, me: BotIdentity, settings: SlackSettings
) -> HeardMessage | None:
    """The message as the bot hears it, or None when it is not for the bot at all."""
    if not says_something(event):
        return None
    channel, ts = str(event["channel"]), str(event["ts"])
    team = team or me.team_id
    user = event.get("user")
    bot_id = event.get("bot_id")
    if user == me.user_id or (bot_id is not None and bot_id == me.bot_id):
        return None
    rule = settings.channel(channel)
    if (bot_id is not None or event.get("subtype") == "bot_message") and not (
        rule and rule.allow_bots
    ):
        return None
    sender = user or bot_id
    if not sender:
        return None
    text = str(event.get("text") or "")
    thread_ts = event.get("thread_ts")
    is_reply = thread_ts is not None and thread_ts != ts
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    mentioned = kind == "app_mention" or f"<@{me.user_id}>" in text
    return HeardMessage(
        team=team,
        channel=channel,
        sender=str(sender),
        from_bot=bot_id is not None,
        thread_key=thread_external_id(team, channel, thread_ts or ts),
        customer=smith_external_id(team, str(sender)),
        is_reply=is_reply,
        addressed=is_dm or mentioned or (rule is not None and rule.mode == "all" and not is_reply),
        follow_up_of=(
            f"{team}:{channel}:{thread_ts}"
            if is_reply and event.get("parent_user_id") == sender
            else None
        ),
    )


def waiting_sender(event: JSON, mode: str, allow_bots: bool, me: BotIdentity) -> str | None:
    """The author of a history message that still waits for the bot (for triage), else None."""
    subtype = event.get("subtype")
    if subtype and subtype not in ANSWERED_SUBTYPES | {"bot_message"}:
        return None
    if event.get("thread_ts") not in (None, event.get("ts")):
        return None
    sender = event.get("user") or event.get("bot_id")
    if not sender or sender == me.user_id or event.get("bot_id") == me.bot_id:
        return None
    if (event.get("bot_id") or subtype == "bot_message") and not allow_bots:
        return None
    if mode == "mentions" and f"<@{me.user_id}>" not in str(event.get("text") or ""):
        return None
    if any(user != sender for user in event.get("reply_users") or []):
        return None  # the bot or a person has answered in the thread
    return str(sender)


# Reactions that rate an answer (skin tones ignored: ``+1::skin-tone-3`` is a ``+1``).
RATING_REACTIONS: dict[str, Rating] = {"+1": "up", "thumbsup": "up", "-1": "down",
                                       "thumbsdown": "down"}


def rating_of(event: JSON) -> Rating | None:
    """Whether a reaction on a message rates it, and how."""
    item = event.get("item") or {}
    if item.get("type") != "message":
        return None
    return RATING_REACTIONS.get(str(event.get("reaction") or "").split("::")[0])


def is_close_reaction(event: JSON) -> bool:
    """A :white_check_mark: on a message (on a thread's root it closes the thread)."""
    item = event.get("item") or {}
    return event.get("reaction") == CLOSE_EMOJI and item.get("type") == "message"


def resolved_thread(team: str, event: JSON, me: BotIdentity) -> str | None:
    """The key of the thread a person's close reaction resolves, else None."""
    if not is_close_reaction(event) or event.get("user") == me.user_id:
        return None
    item = event.get("item") or {}
    return thread_external_id(team or me.team_id, str(item.get("channel")), str(item.get("ts")))


def inbound_message(
    team: str, channel: str, event: JSON, sender: str, me: BotIdentity, agent_slug: str | None
) -> InboundMessage:
    """The inbox form of a Slack message (the webhook, Socket Mode and triage all agree on
    its dedup key: ``<team>:<channel>:<ts>`` of the message)."""
    ts = str(event["ts"])
    root = str(event.get("thread_ts") or ts)
    files = event.get("files") or []
    ref: JSON = {"channel": channel, "thread_ts": root, "ts": ts, "team": team, "user": sender}
    if not event.get("user"):
        ref["bot"] = True  # a bot's message: it has no profile to look up
    # Only what the event itself holds: the author's profile and the files' content are
    # fetched when the turn starts (resolve_turn), so nothing here waits on the network
    # before Slack is acknowledged, and the inbox keeps references, not file contents.
    return InboundMessage(
        source=SOURCE,
        dedup_key=f"{team}:{channel}:{ts}",
        thread_external_id=thread_external_id(team, channel, root),
        smith_external_id=smith_external_id(team, sender),
        text=clean_text(str(event.get("text") or ""), me.user_id, files),
        agent_slug=agent_slug,
        attachments=tuple(file_reference(item) for item in files),
        ref=ref,
        sent_at=_float(ts),
    )


def clean_text(text: str, bot_user_id: str, files: list[JSON]) -> str:
    """The text without the bot's mention; a message of files alone names them."""
    text = text.replace(f"<@{bot_user_id}>", "").strip()
    if not text and files:
        names = ", ".join(str(f.get("name") or f.get("title") or "file") for f in files)
        text = f"(shared {names})"
    return text


def _float(ts: Any) -> float | None:
    try:
        return float(ts)
    except (TypeError, ValueError):
        return None
