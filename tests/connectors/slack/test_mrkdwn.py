"""Markdown → mrkdwn and splitting long answers."""

from __future__ import annotations

from connectors.slack.mrkdwn import markdown_reply, split_message, to_mrkdwn


def test_common_markdown_becomes_mrkdwn() -> None:
    source = "## Steps\n**Reset** your *password* at [the portal](https://acme.example/reset).\n- one\n- two"
    assert to_mrkdwn(source) == (
        "*Steps*\n*Reset* your _password_ at <https://acme.example/reset|the portal>.\n• one\n• two"
    )
    assert to_mrkdwn("~~old~~ new") == "~old~ new"


def test_code_is_left_alone_and_control_characters_are_escaped() -> None:
    source = "Run `a < b && **c**` then\n```sh\necho **hi** > out\n```\n<b>done</b>"
    assert to_mrkdwn(source) == (
        "Run `a &lt; b &amp;&amp; **c**` then\n```\necho **hi** &gt; out\n```\n&lt;b&gt;done&lt;/b&gt;"
    )


def test_short_texts_are_one_piece() -> None:
    assert split_message("hello") == ["hello"]


def test_long_texts_split_on_paragraphs_within_the_limit() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 30 for i in range(40)]
    pieces = split_message("\n\n".join(paragraphs), limit=500)
    assert all(len(p) <= 500 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(" ".join(paragraphs).split())
    assert all(p.startswith("Paragraph") for p in pieces)


def test_a_code_block_cut_in_two_stays_a_code_block_in_both_pieces() -> None:
    code = "```\n" + "\n".join(f"line {i}" for i in range(200)) + "\n```"
    pieces = split_message(code, limit=300)
    assert len(pieces) > 1
    assert all(p.count("```") == 2 and len(p) <= 300 for p in pieces)


def test_autolinks_stay_links_and_slack_markup_from_the_model_is_neutralised() -> None:
    assert to_mrkdwn("See <https://acme.example/status?a=1&b=2>") == (
        "See <https://acme.example/status?a=1&amp;b=2>"
    )
    assert to_mrkdwn("<!channel> ping <@U123> and <!subteam^S1>") == (
        "&lt;!channel&gt; ping &lt;@U123&gt; and &lt;!subteam^S1&gt;"
    )


def test_a_cited_url_becomes_a_link_without_the_punctuation_after_it() -> None:
    text = "Refunds take 30 days. Source: Refunds (https://help.acme.test/en/articles/7-refunds_x?a=1&b=2)."
    assert to_mrkdwn(text) == (
        "Refunds take 30 days. Source: Refunds "
        "(<https://help.acme.test/en/articles/7-refunds_x?a=1&amp;b=2>)."
    )


def test_a_reply_keeps_its_markdown_but_pings_nobody() -> None:
    source = "**Done**, see <https://acme.example/x> (a < b). <!channel> <!here> <@U1> <#C1> <!subteam^S1>"
    sent = markdown_reply(source)
    assert sent == source.replace("<!", "<\u200b!").replace("<@", "<\u200b@").replace("<#", "<\u200b#")
    assert "**Done**" in sent and "<https://acme.example/x>" in sent and "(a < b)" in sent
    # Per character: the pieces of a stream come out as the whole does.
    assert markdown_reply(source[:20]) + markdown_reply(source[20:]) == sent
