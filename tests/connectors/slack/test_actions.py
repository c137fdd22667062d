"""``SlackConnector.execute`` against the fake Web API: lookups before resends, errors that say
whether a retry can help, and what each action kind does on Slack."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.connector import ActionError, ConnectorRuntime, TurnOutcome
from bot.domain import Action, ActionKind, InboundMessage, Smith, now
from bot.pipeline.events import TurnEvents
from connectors.slack import create
from connectors.slack.outbound import mention_markup
from tests.conftest import make_settings
from tests.connectors.slack.conftest import (
    CUSTOMER,
    ESCALATION,
    LONG_ANSWER,
    ROOT,
    SUPPORT,
    Make,
    slack_thread,
)
from tests.fakes.slack import BOT_TOKEN, TEAM, FakeSlack, wait_until


def _action(kind: ActionKind, *, attempt: int = 0, **fields: Any) -> Action:
    thread = slack_thread()
    return Action(id=f"act_{kind.value}", run_id="run_1", thread_id=thread.id, channel="slack",
                  kind=kind, ref=dict(thread.metadata), attempt=attempt, **fields)


def _bot_message(slack: FakeSlack, action_id: str, part: int, text: str = "sent before") -> str:
    return str(slack._post(SUPPORT, {
        "text": text, "thread_ts": ROOT,
        "metadata": {"event_type": "supportbot_action",
                     "event_payload": {"action_id": action_id, "part": part}},
    })["ts"])


def test_no_connector_without_a_bot_token() -> None:
    settings = make_settings("sqlite://")

    async def submit(message: InboundMessage) -> bool:
        return True

    assert create(ConnectorRuntime(settings, None, submit, TurnEvents(), None)) is None  # type: ignore[arg-type]


async def test_a_resend_finds_the_earlier_send_by_its_metadata(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector()
    earlier = _bot_message(slack, "act_reply", 0)
    remote = await connector.execute(_action(ActionKind.REPLY, text="hi", attempt=1), slack_thread())
    assert remote == earlier
    assert slack.calls_to("chat.postMessage") == []
    [lookup] = slack.calls_to("conversations.replies")
    assert lookup["ts"] == ROOT and lookup["include_all_metadata"] in ("1", "true", True)


async def test_a_resend_of_a_split_answer_sends_only_the_missing_parts(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector()
    _bot_message(slack, "act_reply", 0)
    await connector.execute(_action(ActionKind.REPLY, text=LONG_ANSWER, attempt=2), slack_thread())
    parts = [m["metadata"]["event_payload"]["part"] for m in slack.thread(SUPPORT, ROOT)]
    assert parts[0] == 0 and parts == list(range(len(parts))) and len(parts) >= 2
    assert len(slack.calls_to("chat.postMessage")) == len(parts) - 1


async def test_a_first_attempt_does_not_look_up(make_connector: Make, slack: FakeSlack) -> None:
    connector = await make_connector()
    await connector.execute(_action(ActionKind.REPLY, text="hi"), slack_thread())
    assert slack.calls_to("conversations.replies") == []
    assert len(slack.calls_to("chat.postMessage")) == 1
    # The working indicator is the turn's business (``turn_ended``), not the reply's.
    assert slack.calls_to("reactions.remove", ok_only=False) == []


async def test_the_working_indicator_comes_off_the_turns_messages_unless_it_is_retried(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector()
    later = "1700000000.000200"
    slack.reactions |= {(SUPPORT, ROOT, "eyes"), (SUPPORT, later, "eyes")}
    messages = [
        InboundMessage(source="slack", dedup_key=f"{TEAM}:{SUPPORT}:{ts}", thread_external_id="t",
                       smith_external_id=None, text="hi", ref={"channel": SUPPORT, "ts": ts, **extra})
        for ts, extra in ((ROOT, {"working": "eyes"}), (later, {"working": "eyes"}), ("1.2", {}))
    ]
    await connector.turn_ended(slack_thread(), messages, TurnOutcome.RETRYING)
    await connector.turn_ended(slack_thread(), messages[:1], TurnOutcome.COMPLETED)
    await wait_until(lambda: (SUPPORT, ROOT, "eyes") not in slack.reactions)
    await connector.turn_ended(slack_thread(), messages[1:], TurnOutcome.GAVE_UP)
    await wait_until(lambda: (SUPPORT, later, "eyes") not in slack.reactions)
    # Only the messages that wore it: the one without ``working`` costs no call.
    assert len(slack.calls_to("reactions.remove", ok_only=False)) == 2


@pytest.mark.parametrize(("error", "hint"), [
    ("not_in_channel", "invite the bot"),
    ("missing_scope", "add the scope"),
])
async def test_configuration_errors_are_final_and_logged_loudly(
    make_connector: Make, slack: FakeSlack, caplog: pytest.LogCaptureFixture, error: str, hint: str
) -> None:
    connector = await make_connector()
    slack.fail("chat.postMessage", status=200, error=error, retry_after=None)
    with caplog.at_level(logging.ERROR, logger="connectors.slack"), pytest.raises(ActionError) as raised:
        await connector.execute(_action(ActionKind.REPLY, text="hi"), slack_thread())
    assert raised.value.retryable is False
    assert error in str(raised.value)
    assert hint in caplog.text
    assert BOT_TOKEN not in caplog.text


async def test_server_errors_are_retryable_and_rate_limits_carry_retry_after(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector()
    slack.fail("chat.postMessage", status=500, error="internal_error", retry_after=None)
    with pytest.raises(ActionError) as raised:
        await connector.execute(_action(ActionKind.REPLY, text="hi"), slack_thread())
    assert raised.value.retryable is True

    slack.fail("reactions.add", status=429, retry_after=1, times=3)
    with pytest.raises(ActionError) as limited:
        await connector.execute(_action(ActionKind.REACT, emoji=":tada:"), slack_thread())
    assert limited.value.retryable is True and limited.value.retry_after == 1.0


async def test_reactions_close_and_the_no_op_kinds(make_connector: Make, slack: FakeSlack) -> None:
    connector = await make_connector()
    await connector.execute(_action(ActionKind.REACT, emoji=":tada:"), slack_thread())
    await connector.execute(_action(ActionKind.REACT, emoji="tada"), slack_thread())  # already_reacted
    await connector.execute(_action(ActionKind.CLOSE), slack_thread())
    assert slack.reactions == {(SUPPORT, ROOT, "tada"), (SUPPORT, ROOT, "white_check_mark")}
    before = len(slack.calls)
    for kind in (ActionKind.TAG, ActionKind.UNTAG, ActionKind.ASSIGN, ActionKind.SNOOZE, ActionKind.OPEN):
        assert await connector.execute(_action(kind, tag="x", assignee="y"), slack_thread()) is None
    assert len(slack.calls) == before


async def test_notes_go_to_the_escalation_channel_or_nowhere(make_connector: Make, slack: FakeSlack) -> None:
    connector = await make_connector()
    await connector.execute(_action(ActionKind.NOTE, text="**Internal:** VIP customer"), slack_thread())
    [note] = slack.messages[ESCALATION]
    assert note["text"].startswith("*Internal:* VIP customer")
    assert f"/archives/{SUPPORT}/p" in note["text"]

    quiet = await make_connector(escalation_channel=None)
    before = len(slack.calls)
    assert await quiet.execute(_action(ActionKind.NOTE, text="x"), slack_thread()) is None
    assert len(slack.calls) == before


async def test_without_an_escalation_channel_the_escalation_is_posted_in_the_thread(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector(escalation_channel=None, escalation_mention="U0ONCALL")
    thread = slack_thread()
    planned = connector.escalation_actions(reason="refund", priority="urgent", summary="", thread=thread)
    assert [p.kind for p in planned] == [ActionKind.ESCALATION_POST, ActionKind.REACT, ActionKind.REPLY]
    post = _action(ActionKind.ESCALATION_POST, text=planned[0].text)
    await connector.execute(post, thread)
    [message] = slack.thread(SUPPORT, ROOT)
    assert message["text"].startswith("<@U0ONCALL> *Escalation* (urgent)")
    # A resend finds it in the thread.
    again = await connector.execute(_action(ActionKind.ESCALATION_POST, text="x", attempt=1), thread)
    assert again == message["ts"] and len(slack.thread(SUPPORT, ROOT)) == 1


def test_mention_markup() -> None:
    assert mention_markup("S0ONCALL") == "<!subteam^S0ONCALL>"
    assert mention_markup("U123") == "<@U123>"
    assert mention_markup("@here") == "<!here>"
    assert mention_markup("<!subteam^S1|@support>") == "<!subteam^S1|@support>"


async def test_triage_digests_are_posted_through_the_connector(make_connector: Make, slack: FakeSlack) -> None:
    connector = await make_connector()
    assert connector.posts_digest
    await connector.post_digest("CDIGEST", "**Triage:** 3 answered, 1 escalated")
    [digest] = slack.messages["CDIGEST"]
    assert digest["text"] == "*Triage:* 3 answered, 1 escalated"


async def test_not_ready_until_slack_answers_auth_test(make_connector: Make, slack: FakeSlack) -> None:
    slack.fail("auth.test", status=500, error="internal_error", retry_after=None)
    connector = await make_connector()
    assert connector.ready() is False
    # The first event retries it; from then on the connector is ready.
    await connector._whoami()
    assert connector.ready() is True


async def test_a_long_retry_after_goes_back_to_the_outbox_instead_of_sleeping_in_the_call(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector()
    slack.fail("chat.postMessage", status=429, retry_after=120)
    with pytest.raises(ActionError) as limited:
        await connector.execute(_action(ActionKind.REPLY, text="hi"), slack_thread())
    assert limited.value.retryable is True and limited.value.retry_after == 120.0
    assert len(slack.calls_to("chat.postMessage", ok_only=False)) == 1


async def test_triage_finds_the_support_channel_messages_nobody_answered(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector(support_channels=[SUPPORT],
                                     channels={"CMENTIONS": {"mode": "mentions"}})

    def post(channel: str, user: str, text: str, **extra: Any) -> str:
        ts = slack.next_ts()
        slack.messages.setdefault(channel, []).append(
            {"type": "message", "user": user, "text": text, "ts": ts, **extra})
        return ts

    post(SUPPORT, CUSTOMER, "unanswered question")
    answered = post(SUPPORT, CUSTOMER, "the bot answered this")
    post(SUPPORT, "UBOT", "an answer", thread_ts=answered)
    taken = post(SUPPORT, CUSTOMER, "a person answered this")
    post(SUPPORT, "UAGENT", "on it", thread_ts=taken)
    followed = post(SUPPORT, CUSTOMER, "asked twice")
    post(SUPPORT, CUSTOMER, "hello?", thread_ts=followed)
    post(SUPPORT, CUSTOMER, "joined", subtype="channel_join")
    post(SUPPORT, "UALERT", "disk full", subtype="bot_message", bot_id="BALERT")
    post("CMENTIONS", CUSTOMER, "chatter")
    post("CMENTIONS", CUSTOMER, "<@UBOT> are you there?")

    found = [batch async for batch in connector.fetch_pending(since=None, limit=None)]
    assert all(len(batch) == 1 for batch in found)  # each top-level message is a conversation
    pending = [batch[0] for batch in found]
    assert [m.text for m in pending] == ["unanswered question", "asked twice", "are you there?"]
    first = pending[0]
    assert first.dedup_key == f"{TEAM}:{SUPPORT}:{first.ref['ts']}"  # as the webhook path
    assert first.thread_external_id == f"slack:{TEAM}:{SUPPORT}:{first.ref['ts']}"
    # The sweep lists; the author's profile is fetched when the turn starts.
    assert first.display_name is None and first.ref["user"] == CUSTOMER
    assert not slack.calls_to("users.info")
    limited = [batch async for batch in connector.fetch_pending(since=None, limit=1)]
    assert [[m.text for m in batch] for batch in limited] == [["unanswered question"]]
    later = [
        batch async for batch in connector.fetch_pending(since=float(pending[1].ref["ts"]), limit=None)
    ]
    assert [[m.text for m in batch] for batch in later] == [["are you there?"]]


def _smith(user: str, display_name: str | None) -> Smith:
    return Smith(id="smt_1", agent_id="agt_1", external_id=f"slack:{TEAM}:{user}",
                 display_name=display_name, customer_id=None, metadata={}, auto_memory=True,
                 pinned_version=None, archived_at=None, created_at=now(), updated_at=now())


def _inbound(user: str, **ref: Any) -> InboundMessage:
    return InboundMessage(source="slack", dedup_key=f"{TEAM}:{SUPPORT}:{ROOT}",
                          thread_external_id=slack_thread().external_id,
                          smith_external_id=f"slack:{TEAM}:{user}", text="hi",
                          ref={"channel": SUPPORT, "ts": ROOT, "user": user, **ref})


async def test_a_turn_gets_the_author_s_profile_and_keeps_a_known_name_when_there_is_none(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector()
    thread = slack_thread()
    [carla] = await connector.resolve_turn(_smith(CUSTOMER, None), thread, (_inbound(CUSTOMER),))
    assert carla.display_name == "Carla Customer" and carla.profile["email"] == "carla@example.com"

    # users.info does not know this person: a smith with a name keeps it (None renames
    # nobody), one without is named by the Slack user id.
    [kept] = await connector.resolve_turn(_smith("UGHOST", "Gina"), thread, (_inbound("UGHOST"),))
    assert kept.display_name is None and kept.profile == {}
    [named] = await connector.resolve_turn(_smith("UGHOST", None), thread, (_inbound("UGHOST"),))
    assert named.display_name == "UGHOST"

    # A bot has no profile to ask for, and a turn with nothing to fetch is left as it is.
    asked = len(slack.calls_to("users.info", ok_only=False))
    messages = (_inbound("BALERT", bot=True),)
    assert await connector.resolve_turn(_smith("BALERT", None), thread, messages) is messages
    assert len(slack.calls_to("users.info", ok_only=False)) == asked


async def test_a_profile_is_cached_and_a_stale_one_still_answers_when_users_info_fails(
    make_connector: Make, slack: FakeSlack
) -> None:
    fresh = await make_connector()
    thread = slack_thread()
    await fresh.resolve_turn(_smith(CUSTOMER, None), thread, (_inbound(CUSTOMER),))
    await fresh.resolve_turn(_smith(CUSTOMER, None), thread, (_inbound(CUSTOMER),))
    assert len(slack.calls_to("users.info")) == 1  # the second turn was a cache hit

    # With no time to keep a profile fresh, every turn asks; when Slack fails, the stale
    # profile still names the customer.
    stale = await make_connector(user_cache_seconds=0)
    await stale.resolve_turn(_smith(CUSTOMER, None), thread, (_inbound(CUSTOMER),))
    slack.fail("users.info", status=500, error="internal_error", retry_after=None)
    [carla] = await stale.resolve_turn(_smith(CUSTOMER, None), thread, (_inbound(CUSTOMER),))
    assert len(slack.calls_to("users.info", ok_only=False)) == 3
    assert carla.display_name == "Carla Customer"
