"""Intercom's shapes as this connector reads them, and the translation to ``InboundMessage``.

Webhook items, ``GET /conversations/{id}`` and search results are all plain JSON conversations;
one parser reads them so the webhook and the poller produce the same messages with the same
dedup keys. Bodies are HTML both ways: ``html_to_text`` reads a part, ``text_to_html`` writes one.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from bot.domain import JSON, Attachment, InboundMessage

SOURCE = "intercom"
CUSTOMER_TYPES = frozenset({"user", "lead", "contact"})
# Parts that carry something the customer said (a user who writes in a closed conversation
# reopens it, and that message arrives as an ``open`` part with a body).
MESSAGE_PART_TYPES = frozenset({"comment", "open"})


@dataclass(frozen=True, slots=True)
class Author:
    type: str
    id: str | None
    name: str | None = None
    email: str | None = None

    @property
    def is_customer(self) -> bool:
        return self.type in CUSTOMER_TYPES

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Author:
        data = data or {}
        raw_id = data.get("id")
        return cls(
            type=str(data.get("type") or ""),
            id=str(raw_id) if raw_id not in (None, "") else None,
            name=data.get("name") or None,
            email=data.get("email") or None,
        )


@dataclass(frozen=True, slots=True)
class Part:
    """A conversation part, or the conversation's opening message (``is_source``)."""

    id: str
    part_type: str
    body: str
    author: Author
    created_at: int
    attachments: tuple[JSON, ...] = ()
    is_source: bool = False

    @property
    def is_message(self) -> bool:
        """Something said to the other side (not a note, assignment or state change)."""
        if self.is_source:
            return True
        return self.part_type in MESSAGE_PART_TYPES and bool(self.body or self.attachments)

    @property
    def is_customer_message(self) -> bool:
        return self.author.is_customer and self.is_message


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    state: str
    open: bool
    created_at: int
    updated_at: int
    waiting_since: int | None
    admin_assignee_id: str | None
    team_assignee_id: str | None
    contact_ids: tuple[str, ...]
    source: Part | None
    parts: tuple[Part, ...]
    title: str | None = None
    statistics: JSON = field(default_factory=dict)
    # The customer's rating of the conversation (``conversation_rating``: 1–5, a remark).
    rating: JSON | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Conversation:
        cid = str(data["id"])
        source_data = data.get("source") or None
        source = None
        if source_data and source_data.get("id") is not None:
            source = Part(
                id=str(source_data["id"]),
                part_type="source",
                body=source_data.get("body") or "",
                author=Author.from_json(source_data.get("author")),
                created_at=int(data.get("created_at") or 0),
                attachments=tuple(source_data.get("attachments") or ()),
                is_source=True,
            )
        parts_block = data.get("conversation_parts") or {}
        parts = tuple(
            Part(
                id=str(p["id"]),
                part_type=str(p.get("part_type") or ""),
                body=p.get("body") or "",
                author=Author.from_json(p.get("author")),
                created_at=int(p.get("created_at") or 0),
                attachments=tuple(p.get("attachments") or ()),
            )
            for p in parts_block.get("conversation_parts") or ()
        )
        contacts_block = data.get("contacts") or {}
        contact_ids = tuple(
            str(c["id"]) for c in contacts_block.get("contacts") or () if c.get("id") is not None
        )
        return cls(
            id=cid,
            state=str(data.get("state") or ("open" if data.get("open", True) else "closed")),
            open=bool(data.get("open", data.get("state") == "open")),
            created_at=int(data.get("created_at") or 0),
            updated_at=int(data.get("updated_at") or 0),
            waiting_since=_int_or_none(data.get("waiting_since")),
            admin_assignee_id=_id_or_none(data.get("admin_assignee_id")),
            team_assignee_id=_id_or_none(data.get("team_assignee_id")),
            contact_ids=contact_ids,
            source=source,
            parts=parts,
            title=data.get("title") or None,
            statistics=dict(data.get("statistics") or {}),
            rating=dict(data["conversation_rating"])
            if isinstance(data.get("conversation_rating"), dict) else None,
        )

    @property
    def messages(self) -> tuple[Part, ...]:
        """The opening message and every part, oldest first."""
        return ((self.source,) if self.source else ()) + self.parts

    def pending_customer_parts(self, *, include_source: bool = True) -> list[Part]:
        """The customer's messages since the last answer to them, oldest first.

        Walks back from the newest part: customer messages are collected, internal parts
        (notes, assignments, tags, state changes) are stepped over, and the first message
        from the other side (an admin's or bot's reply) ends the walk. So a conversation
        whose newest message is ours, or a human's, has nothing pending.
        ``include_source=False`` for items that carry only their newest parts (a
        ``conversation.user.replied`` notification): the opening message there is old news
        whose answer the item does not show.
        """
        pending: list[Part] = []
        messages = self.messages if include_source else self.parts
        for part in reversed(messages):
            if part.is_customer_message:
                pending.append(part)
            elif part.is_message:
                break
        pending.reverse()
        return pending

    @property
    def customer_id(self) -> str | None:
        """The conversation's own contact (the first one; group conversations add others)."""
        if self.contact_ids:
            return self.contact_ids[0]
        if self.source and self.source.author.is_customer:
            return self.source.author.id
        return None

    def customer_author(self) -> Author | None:
        """What the conversation tells about its customer (name, email) without an API call."""
        for part in self.messages:
            if part.author.is_customer and part.author.id == self.customer_id:
                return part.author
        return None


def _int_or_none(value: Any) -> int | None:
    if value in (None, "", 0):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _id_or_none(value: Any) -> str | None:
    """Assignee ids arrive as ints, strings, null or 0 ("nobody")."""
    if value in (None, "", 0, "0"):
        return None
    return str(value)


# -- dedup keys ---------------------------------------------------------------------------------


def dedup_key(conversation_id: str, part: Part) -> str:
    """The same key for a part however it was seen (webhook, its retry, the poller, triage)."""
    if part.is_source:
        return f"{conversation_id}:source:{part.id}"
    return f"{conversation_id}:part:{part.id}"


def thread_external_id(conversation_id: str) -> str:
    return f"intercom:{conversation_id}"


def conversation_id_of(external_id: str) -> str | None:
    prefix = "intercom:"
    return external_id[len(prefix) :] if external_id.startswith(prefix) else None


# -- HTML -----------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr"}
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.chunks.append("\n")
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n\n")
        elif tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.images.append(src)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.chunks.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def parse_body(body: str) -> tuple[str, list[str]]:
    """Plain text of an HTML body, and the sources of its inline images."""
    if "<" not in body and "&" not in body:
        return strip_marker(body).strip(), []
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    text = "".join(parser.chunks).replace("\xa0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return strip_marker(text).strip(), parser.images


def html_to_text(body: str) -> str:
    return parse_body(body)[0]


def text_to_html(text: str) -> str:
    """Paragraphs for blank-line separated blocks, ``<br>`` for single line breaks; web
    addresses and Markdown links become links (a citation's URL is meant to be followed)."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()] or [""]
    return "".join(
        "<p>" + "<br>".join(_linked_html(line) for line in block.split("\n")) + "</p>"
        for block in blocks
    )


# A Markdown link, or a bare http(s) address without the punctuation that ends a sentence.
_LINKABLE = re.compile(
    r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)"
    r"|https?://[^\s<>\"\u200b-\u200d\u2060]*[^\s<>\"\u200b-\u200d\u2060.,;:!?)\]']"
)


def _linked_html(line: str) -> str:
    out: list[str] = []
    last = 0
    for match in _LINKABLE.finditer(line):
        out.append(html.escape(line[last : match.start()]))
        label, url = match.group(1, 2) if match.group(1) else (match.group(0), match.group(0))
        out.append(f'<a href="{html.escape(url)}">{html.escape(label)}</a>')
        last = match.end()
    out.append(html.escape(line[last:]))
    return "".join(out)


# -- the invisible marker on the bot's own parts --------------------------------------------------
# A resend after an unknown outcome must find the earlier send. Intercom keeps no client ids on
# parts, so each part the bot writes ends with its action id's fingerprint spelled in zero-width
# characters: invisible to readers, kept by HTML sanitizers (it is text, not markup).

_ZW = ("\u200b", "\u200c", "\u200d", "\u2060")
_ZW_SET = frozenset(_ZW)
_MARKER_RE = re.compile("[" + "".join(_ZW) + "]{18}")


def marker(action_id: str) -> str:
    """18 zero-width characters: a fence and 32 bits of the action id (2 bits each)."""
    digest = int.from_bytes(hashlib.sha256(action_id.encode()).digest()[:4], "big")
    symbols = [_ZW[(digest >> shift) & 3] for shift in range(30, -2, -2)]
    return _ZW[3] + "".join(symbols) + _ZW[3]


def has_marker(body: str, action_id: str) -> bool:
    return marker(action_id) in body


def strip_marker(text: str) -> str:
    if not any(ch in _ZW_SET for ch in text):
        return text
    return _MARKER_RE.sub("", text)


# -- attachments ---------------------------------------------------------------------------------


def attachments_of(
    part: Part, inline_images: Sequence[str], *, max_count: int, max_bytes: int
) -> tuple[tuple[Attachment, ...], list[str]]:
    """The part's files and inline images as attachments (at most ``max_count``, none above
    ``max_bytes``), and a line for each one left out so the model still knows it was sent."""
    found: list[Attachment] = []
    for item in part.attachments:
        url = item.get("url")
        name = str(item.get("name") or _name_from_url(url) or "attachment")
        content_type = str(
            item.get("content_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        found.append(
            Attachment(name=name, content_type=content_type, size=int(item.get("filesize") or 0), url=url)
        )
    for src in inline_images:
        name = _name_from_url(src) or "image"
        content_type = mimetypes.guess_type(name)[0] or "image/png"
        if not content_type.startswith("image/"):
            content_type = "image/png"
        found.append(Attachment(name=name, content_type=content_type, size=0, url=src))
    kept: list[Attachment] = []
    left_out: list[str] = []
    for attachment in found:
        if max_bytes and attachment.size > max_bytes:
            left_out.append(
                f"[attachment not shown, too large: {attachment.name} ({attachment.size} bytes)]"
            )
        elif len(kept) >= max_count:
            left_out.append(f"[attachment not shown: {attachment.name}]")
        else:
            kept.append(attachment)
    return tuple(kept), left_out


def _name_from_url(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    name = PurePosixPath(urlsplit(url).path).name
    return name or None


# -- inbound messages ------------------------------------------------------------------------------


def inbound_messages(
    conversation: Conversation,
    parts: Sequence[Part],
    *,
    agent_slug: str | None,
    max_attachments: int,
    max_attachment_bytes: int,
) -> list[InboundMessage]:
    """One ``InboundMessage`` per customer part, keyed by the part (see ``dedup_key``)."""
    messages = []
    for part in parts:
        if not part.is_customer_message or part.author.id is None:
            continue
        text, images = parse_body(part.body)
        attachments, left_out = attachments_of(
            part, images, max_count=max_attachments, max_bytes=max_attachment_bytes
        )
        if left_out:
            text = "\n".join([text, *left_out]).strip()
        author = part.author
        profile: JSON = {"intercom_contact_id": author.id, "intercom_role": author.type}
        if author.name:
            profile["name"] = author.name
        if author.email:
            profile["email"] = author.email
        messages.append(
            InboundMessage(
                source=SOURCE,
                dedup_key=dedup_key(conversation.id, part),
                thread_external_id=thread_external_id(conversation.id),
                smith_external_id=f"intercom:{author.id}",
                text=text,
                agent_slug=agent_slug,
                display_name=author.name or author.email,
                profile=profile,
                attachments=attachments,
                ref={"conversation_id": conversation.id, "part_id": part.id, "contact_id": author.id},
                sent_at=float(part.created_at) if part.created_at else None,
            )
        )
    return messages
