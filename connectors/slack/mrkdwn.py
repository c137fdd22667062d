"""How the bot's texts are written for Slack, and long texts split within Slack's limits.

A reply to the customer is Markdown, sent as ``markdown_text``: the streaming methods
(``chat.startStream`` / ``appendStream`` / ``stopStream``) take nothing else, and
``chat.postMessage`` and ``chat.update`` take it too, so a streamed and a posted reply are one
form and Slack renders the model's Markdown itself (``markdown_reply``). What the bot writes
for the team — notes, escalations with their mentions and links, the triage digest — is
mrkdwn in ``text`` (``to_mrkdwn``), the form that can ping on-call on purpose.
"""

from __future__ import annotations

import re

# chat.postMessage truncates ``text`` past 40,000 characters and Slack advises staying under
# 4,000 for readability; split well below that so a code block or link never straddles a cut.
MESSAGE_CHARS = 3900

_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)```", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s|]+)>")
_BARE_URL = re.compile(r"https?://[^\s<>|\x00]*[^\s<>|\x00.,;:!?)\]'\"*_~]")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)


# ``markdown_text`` takes up to 12,000 characters per message (chat.postMessage, chat.update,
# each streaming call); a longer reply is posted in parts.
MARKDOWN_CHARS = 12_000
# Slack's own markup for a person, a channel or a broadcast: <@U…>, <#C…>, <!here>, <!subteam^…>.
_SPECIAL_MARKUP = re.compile(r"<(?=[@#!])")
ZERO_WIDTH_SPACE = "\u200b"


def markdown_reply(markdown: str) -> str:
    """A model's answer as sent in ``markdown_text``, streamed or posted alike: Markdown as it
    is, but Slack's mention markup broken by a zero-width space, so an answer can never ping
    a person, a channel or a group. The change is per character, so the pieces of a streamed
    answer come out as the whole would (unless a cut falls right after a ``<``; see
    ``SlackLiveReply``)."""
    return _SPECIAL_MARKUP.sub("<" + ZERO_WIDTH_SPACE, markdown)


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Convert common Markdown to mrkdwn: bold, italics, strike, links, headings, bullets.

    Code (fenced and inline) is left untouched apart from escaping, because mrkdwn uses the
    same backticks and formatting inside code would corrupt it. Markdown autolinks
    (``<https://…>``) stay links; any other Slack markup in the text is neutralised.
    """
    protected: list[str] = []
    markdown = markdown.replace("\x00", "")

    def keep(chunk: str) -> str:
        protected.append(chunk)
        return f"\x00{len(protected) - 1}\x00"

    text = _FENCE.sub(lambda m: keep("```\n" + escape(m.group(1)) + "```"), markdown)
    text = _INLINE_CODE.sub(lambda m: keep(escape(m.group(0))), text)
    text = _AUTOLINK.sub(lambda m: keep(f"<{escape(m.group(1))}>"), text)
    # Everything else in angle brackets is escaped: a model's answer must never ping people
    # (``<!channel>``, ``<@U…>``) or smuggle Slack markup into the thread.
    text = escape(text)
    text = _LINK.sub(lambda m: keep(f"<{m.group(2)}|{m.group(1)}>"), text)
    # A bare address (a citation's URL) as an explicit link: never mangled by the emphasis
    # rules below, and never swallowing the punctuation after it.
    text = _BARE_URL.sub(lambda m: keep(f"<{m.group(0)}>"), text)
    text = _HEADING.sub(lambda m: keep(f"*{m.group(1)}*"), text)
    text = _BOLD.sub(lambda m: keep(f"*{m.group(2)}*"), text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    while "\x00" in text:
        text = re.sub(r"\x00(\d+)\x00", lambda m: protected[int(m.group(1))], text)
    return text


def split_message(text: str, limit: int = MESSAGE_CHARS) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, preferring paragraph, line
    and word boundaries, and never leaving a code fence open across a cut."""
    if limit < 20:
        raise ValueError("limit too small to split sensibly")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), -1)
        if cut < limit // 2:
            cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
        piece = rest[:cut].rstrip()
        rest = rest[cut:].lstrip()
        if piece.count("```") % 2 == 1:
            # Close the fence here and reopen it in the next piece.
            if len(piece) + 4 > limit:
                piece, carried = piece[: limit - 4], piece[limit - 4 :]
                rest = carried + rest
            piece += "\n```"
            rest = "```\n" + rest
        pieces.append(piece)
    if rest:
        pieces.append(rest)
    return pieces or [""]
