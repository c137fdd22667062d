"""Reading Intercom's shapes: bodies, pending customer messages, dedup keys, attachments."""

from __future__ import annotations

from typing import Any

from connectors.intercom.model import (
    Conversation,
    dedup_key,
    has_marker,
    html_to_text,
    inbound_messages,
    marker,
    strip_marker,
    text_to_html,
)
from tests.fakes.intercom import FakeIntercom


def test_html_bodies_become_plain_text() -> None:
    body = "<p>Hi there,</p><p>line one<br>line&nbsp;two &amp; <b>bold</b></p><ul><li>a</li><li>b</li></ul>"
    assert html_to_text(body) == "Hi there,\n\nline one\nline two & bold\n\na\n\nb"
    assert html_to_text("plain text") == "plain text"


def test_text_is_written_as_escaped_paragraphs() -> None:
    assert text_to_html("a < b\nnext line\n\nsecond") == "<p>a &lt; b<br>next line</p><p>second</p>"
    assert html_to_text(text_to_html("a < b\nnext line\n\nsecond")) == "a < b\nnext line\n\nsecond"


def test_marker_is_invisible_and_specific() -> None:
    mark = marker("act_1")
    assert len(mark) == 18 and mark.strip("\u200b\u200c\u200d\u2060") == ""
    assert has_marker(f"<p>hello{mark}</p>", "act_1")
    assert not has_marker(f"<p>hello{mark}</p>", "act_2")
    assert strip_marker(f"hello{mark}") == "hello"
    assert html_to_text(f"<p>hello{mark}</p>") == "hello"


def _conversation(fake: FakeIntercom, conversation_id: str, parts: int | None = None) -> Conversation:
    return Conversation.from_json(fake.conversation_json(conversation_id, parts=parts))


def test_pending_parts_are_the_customer_messages_since_the_last_answer() -> None:
    fake = FakeIntercom()
    contact = fake.add_contact()
    cid = fake.start_conversation(contact, "<p>first</p>")
    assert [p.is_source for p in _conversation(fake, cid).pending_customer_parts()] == [True]

    fake.admin_reply(cid, "<p>answer</p>", admin_id=fake.bot_admin_id)
    assert _conversation(fake, cid).pending_customer_parts() == []

    second = fake.user_reply(cid, "<p>second</p>")
    fake.assign(cid, fake.human_admin_id)  # internal parts are stepped over
    third = fake.user_reply(cid, "<p>third</p>")
    pending = _conversation(fake, cid).pending_customer_parts()
    assert [p.id for p in pending] == [second, third]

    fake.admin_reply(cid, "<p>human answer</p>")
    assert _conversation(fake, cid).pending_customer_parts() == []


def test_a_webhook_item_and_the_full_conversation_give_the_same_keys() -> None:
    fake = FakeIntercom()
    contact = fake.add_contact()
    cid = fake.start_conversation(contact, "<p>first</p>")
    created = _conversation(fake, cid, parts=0)
    full = _conversation(fake, cid)
    assert [dedup_key(cid, p) for p in created.pending_customer_parts()] == [
        dedup_key(cid, p) for p in full.pending_customer_parts()
    ]
    fake.admin_reply(cid, "<p>answer</p>", admin_id=fake.bot_admin_id)
    fake.user_reply(cid, "<p>follow-up</p>")
    item = _conversation(fake, cid, parts=1)
    full = _conversation(fake, cid)
    assert [dedup_key(cid, p) for p in item.pending_customer_parts(include_source=False)] == [
        dedup_key(cid, p) for p in full.pending_customer_parts()
    ]


def test_inbound_message_mapping_with_attachments_and_caps() -> None:
    fake = FakeIntercom()
    contact = fake.add_contact("Grace Hopper", "grace@example.com", role="lead")
    attachments: list[dict[str, Any]] = [
        {"type": "upload", "name": "screen.png", "url": "https://files.example/screen.png",
         "content_type": "image/png", "filesize": 2048, "width": 10, "height": 10},
        {"type": "upload", "name": "dump.zip", "url": "https://files.example/dump.zip",
         "content_type": "application/zip", "filesize": 50_000_000},
    ]
    cid = fake.start_conversation(
        contact,
        '<p>See this</p><div class="intercom-container"><img src="https://files.example/inline.jpg"></div>',
        attachments=attachments,
    )
    conversation = _conversation(fake, cid)
    (message,) = inbound_messages(
        conversation,
        conversation.pending_customer_parts(),
        agent_slug="support",
        max_attachments=10,
        max_attachment_bytes=10_000_000,
    )
    assert message.source == "intercom"
    assert message.thread_external_id == f"intercom:{cid}"
    assert message.smith_external_id == f"intercom:{contact}"
    assert message.display_name == "Grace Hopper"
    assert message.profile["email"] == "grace@example.com"
    assert message.profile["intercom_role"] == "lead"
    assert message.ref["conversation_id"] == cid
    assert [a.name for a in message.attachments] == ["screen.png", "inline.jpg"]
    assert message.attachments[0].content_type == "image/png"
    assert message.attachments[0].size == 2048
    assert message.attachments[1].content_type == "image/jpeg"
    assert message.text.startswith("See this")
    assert "too large: dump.zip" in message.text


def test_bot_and_admin_parts_never_become_messages() -> None:
    fake = FakeIntercom()
    contact = fake.add_contact()
    cid = fake.start_conversation(contact, "<p>hi</p>")
    fake.admin_reply(cid, "<p>bot answer</p>", admin_id=fake.bot_admin_id)
    conversation = _conversation(fake, cid, parts=1)
    assert inbound_messages(
        conversation, conversation.parts, agent_slug=None, max_attachments=10, max_attachment_bytes=0
    ) == []


def test_a_cited_url_and_a_markdown_link_become_links() -> None:
    text = "See [the guide](https://help.acme.test/g?a=1&b=2).\nSource: Refunds (https://help.acme.test/en/articles/7-refunds)."
    assert text_to_html(text) == (
        '<p>See <a href="https://help.acme.test/g?a=1&amp;b=2">the guide</a>.<br>'
        'Source: Refunds (<a href="https://help.acme.test/en/articles/7-refunds">'
        "https://help.acme.test/en/articles/7-refunds</a>).</p>"
    )
    assert text_to_html("no <b>links</b> here") == "<p>no &lt;b&gt;links&lt;/b&gt; here</p>"
