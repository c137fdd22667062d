"""The listening rules as pure functions: an event, who the bot is and the settings in, a
decision out — no Slack, no store. (test_inbound.py drives the same rules through Bolt.)"""

from __future__ import annotations

from bot.config import SlackSettings
from connectors.slack.inbound import BotIdentity, hear_message, resolved_thread, waiting_sender

ME = BotIdentity(user_id="UBOT", bot_id="BBOT", team_id="T1")
SETTINGS = SlackSettings(
    support_channels=["CALL"], channels={"CMENTION": {"mode": "mentions"}}
)


def test_a_top_level_message_in_an_all_channel_is_addressed_to_the_bot() -> None:
    heard = hear_message("message", "", {"channel": "CALL", "ts": "1.0", "user": "UCUST",
                                         "text": "help"}, ME, SETTINGS)
    assert heard is not None
    assert heard.addressed and not heard.is_reply
    assert heard.thread_key == "slack:T1:CALL:1.0"
    assert heard.customer == "slack:T1:UCUST"


def test_a_mentions_channel_needs_the_mention() -> None:
    event = {"channel": "CMENTION", "ts": "1.0", "user": "UCUST", "text": "help"}
    heard = hear_message("message", "T1", event, ME, SETTINGS)
    assert heard is not None and not heard.addressed
    mention = hear_message("message", "T1", {**event, "text": "<@UBOT> help"}, ME, SETTINGS)
    assert mention is not None and mention.addressed


def test_edits_the_bots_own_messages_and_other_bots_are_not_heard() -> None:
    base = {"channel": "CALL", "ts": "1.0", "user": "UCUST", "text": "hi"}
    assert hear_message("message", "T1", {**base, "subtype": "message_changed"}, ME, SETTINGS) is None
    assert hear_message("message", "T1", {**base, "user": "UBOT"}, ME, SETTINGS) is None
    other_bot = {**base, "user": None, "bot_id": "BOTHER"}
    assert hear_message("message", "T1", other_bot, ME, SETTINGS) is None


def test_a_reply_from_the_roots_author_may_follow_up_before_the_first_turn() -> None:
    reply = {"channel": "CALL", "ts": "2.0", "thread_ts": "1.0", "user": "UCUST",
             "parent_user_id": "UCUST", "text": "also"}
    heard = hear_message("message", "T1", reply, ME, SETTINGS)
    assert heard is not None and heard.is_reply and not heard.addressed
    assert heard.follow_up_of == "T1:CALL:1.0"
    someone = hear_message("message", "T1", {**reply, "user": "UOTHER"}, ME, SETTINGS)
    assert someone is not None and someone.follow_up_of is None


def test_a_close_reaction_resolves_the_thread_unless_the_bot_made_it() -> None:
    event = {"reaction": "white_check_mark", "user": "UAGENT",
             "item": {"type": "message", "channel": "CALL", "ts": "1.0"}}
    assert resolved_thread("T1", event, ME) == "slack:T1:CALL:1.0"
    assert resolved_thread("T1", {**event, "user": "UBOT"}, ME) is None
    assert resolved_thread("T1", {**event, "reaction": "eyes"}, ME) is None


def test_triage_skips_a_message_someone_has_answered() -> None:
    event = {"ts": "1.0", "user": "UCUST", "text": "help"}
    assert waiting_sender(event, "all", False, ME) == "UCUST"
    assert waiting_sender({**event, "reply_users": ["UAGENT"]}, "all", False, ME) is None
    assert waiting_sender(event, "mentions", False, ME) is None
