"""What a turn's attachments show the model.

Customers send screenshots more than anything, then logs and PDFs. An image goes to the model
as an image part (a data URL) when it is one of the formats models take (PNG, JPEG, GIF, WebP,
told by its bytes, not by the name or type the channel gave it) and within
``model.max_images`` / ``model.max_image_bytes``; a provider that cannot see images
(``model.vision``) gets a line naming it instead (``bot.providers.vision``). A text file or a
PDF goes as its text (PDFs read with pypdf, as the knowledge base reads them), cut at
``model.max_attachment_chars``. Anything else, or a file whose content did not arrive, is named
in a line, so the model can at least say it cannot open it.

The bytes come from the channel: ``Connector.resolve_turn`` fills ``Attachment.data`` when the
turn starts; nothing here fetches anything.

A file's text is the customer's material, never their words: sentences in it that try to
instruct the bot are cut out (``intents.strip_instructions``), a line in it that looks like the
markers around it is indented so it cannot end its block early, and ``typed_text`` gives a
message without its files' text — what the offline responder reads intents from, so a file
cannot ask for a person or close the conversation. The input guardrails read the notes too
(``bot.agent.engine``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bot.agent.intents import strip_instructions
from bot.domain import Attachment, InboundMessage
from bot.knowledge.documents import UnreadableDocument, parse
from bot.providers.base import ContentPart

log = logging.getLogger(__name__)

# Files read as plain text whatever the channel called them (``text/*`` always is).
TEXT_TYPES = frozenset({
    "application/json", "application/x-ndjson", "application/xml", "application/yaml",
    "application/x-yaml", "application/csv", "application/javascript", "application/x-sh",
    "application/sql",
})
TEXT_SUFFIXES = frozenset({
    ".txt", ".log", ".csv", ".tsv", ".json", ".ndjson", ".yaml", ".yml", ".xml", ".ini",
    ".conf", ".cfg", ".toml", ".sql", ".sh", ".py", ".js", ".ts", ".md", ".markdown",
})
# PDF and HTML go through the knowledge base's own parsing (pypdf; tags dropped).
_PARSE_AS = {"pdf": "a.pdf", "html": "a.html"}
# A file's text block in a user message, from its opening line to its closing one; a line of
# the file that starts like a marker is indented first (``_MARKER_LIKE``), so only ours match.
_FILE_TEXT = re.compile(r"^\[attachment: [^\n]*, its text:\]\n.*?^\[end of [^\n]*\]$\n?",
                        re.MULTILINE | re.DOTALL)
_MARKER_LIKE = re.compile(r"^(?=\[(?:attachment|end of|… the rest))", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    """``model.max_images``, ``model.max_image_bytes``, ``model.max_attachment_chars``."""

    max_images: int = 4
    max_image_bytes: int = 5_242_880
    max_chars: int = 8_000


@dataclass(frozen=True, slots=True)
class Shown:
    """One attachment as the model gets it: a note in the message's text (may be empty) and,
    for an image it can be shown, an image part."""

    note: str
    part: ContentPart | None = None


def image_type(data: bytes) -> str | None:
    """The image format ``data`` is in, by its first bytes, when it is one that chat models
    take (PNG, JPEG, GIF, WebP); None otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def text_kind(attachment: Attachment) -> str | None:
    """How to read ``attachment`` as text (``pdf``, ``html``, ``text``), or None
    when it is not a kind read as text."""
    content_type = attachment.content_type.split(";")[0].strip().lower()
    suffix = PurePosixPath(attachment.name).suffix.lower()
    if content_type == "application/pdf" or suffix == ".pdf":
        return "pdf"
    if content_type == "text/html" or suffix in (".html", ".htm"):
        return "html"
    if content_type.startswith("text/") or content_type in TEXT_TYPES:
        return "text"
    # The name decides only when the channel did not know the type (``.ts`` is also video).
    if content_type in ("", "application/octet-stream") and suffix in TEXT_SUFFIXES:
        return "text"
    return None


def named(attachment: Attachment) -> str:
    """The line that stands for a file whose content is not shown: its name and type, and,
    when the channel could not or would not fetch it, why (a host off the allow-list, HTTP 404…)."""
    label = f"{attachment.name} ({attachment.content_type})"
    if attachment.data is None and attachment.fetch_error:
        return f"[attachment not fetched: {label}: {attachment.fetch_error}]"
    return f"[attachment: {label}]"


def _size(count: int) -> str:
    if count >= 1_048_576:
        return f"{count / 1_048_576:.1f} MB"
    return f"{count // 1024} KB" if count >= 1024 else f"{count} bytes"


def decode_text(data: bytes) -> str:
    """A text file's bytes as text: UTF-8 (a character cut at the end of ``data`` dropped),
    else Windows-1252, as the knowledge base reads text it is given."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    for cut in range(4):  # a multi-byte character may have been cut off at the end
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return data.decode("cp1252", errors="replace")


def extract_text(kind: str, data: bytes) -> str:
    """The text of a file of ``kind`` (blocking: PDFs are parsed; run it in a thread).
    Raises ``UnreadableDocument`` for a file that cannot be read."""
    if kind == "text":
        return decode_text(data)
    document = parse(Path(_PARSE_AS[kind]), data)
    return "\n\n".join(section.text.strip() for section in document.sections if section.text.strip())


async def _as_text(attachment: Attachment, data: bytes, kind: str, max_chars: int) -> str:
    label = f"{attachment.name} ({attachment.content_type})"
    # Plain text needs no more than the characters that will be kept (4 bytes each at most).
    sample = data if kind in ("pdf", "html") else data[: max_chars * 4]
    try:
        text = await asyncio.to_thread(extract_text, kind, sample)
    except UnreadableDocument as exc:
        return f"[attachment: {label} could not be read: {exc}]"
    except Exception as exc:  # noqa: BLE001 — a parser's bug must not fail the turn
        log.warning("reading attachment %s failed: %s", attachment.name, type(exc).__name__)
        return f"[attachment: {label} could not be read]"
    if not text.strip():
        return f"[attachment: {label}, no text in it]"
    cut = len(text) > max_chars
    if cut:
        text = text[:max_chars].rstrip()
    text, removed = strip_instructions(_MARKER_LIKE.sub(" ", text))
    if removed:
        log.info("cut %d instruction(s) out of attachment %s", removed, attachment.name)
    tail = f"[… the rest of {attachment.name} is cut]\n" if cut else ""
    return f"[attachment: {label}, its text:]\n{text}\n{tail}[end of {attachment.name}]"


def typed_text(content: str) -> str:
    """A user message as ``bot.agent.context.user_message`` made it, without the text of its
    files: what the customer wrote, and the lines naming files."""
    return _FILE_TEXT.sub("", content).strip()


async def show(
    messages: Sequence[InboundMessage], limits: AttachmentLimits
) -> tuple[tuple[Shown, ...], ...]:
    """Each message's attachments as the model gets them, in order; at most
    ``limits.max_images`` images in the whole turn, the first ones sent."""
    images = 0
    shown: list[tuple[Shown, ...]] = []
    for message in messages:
        found: list[Shown] = []
        for attachment in message.attachments:
            label = f"{attachment.name} ({attachment.content_type})"
            data = attachment.data
            if data is None:
                found.append(Shown(named(attachment)))
                continue
            kind = image_type(data)
            if kind is not None:
                if len(data) > limits.max_image_bytes:
                    found.append(Shown(f"[image not shown: {attachment.name} ({_size(len(data))}, "
                                       "over model.max_image_bytes)]"))
                elif images >= limits.max_images:
                    found.append(Shown(f"[image not shown: {attachment.name} (more than "
                                       f"{limits.max_images} images in one turn)]"))
                else:
                    images += 1
                    url = f"data:{kind};base64,{base64.b64encode(data).decode()}"
                    found.append(Shown("", ContentPart("image", attachment.name, kind, url)))
                continue
            if attachment.content_type.startswith("image/"):
                found.append(Shown(f"[image not shown: {label}, not a PNG, JPEG, GIF or WebP "
                                   "image]"))
                continue
            as_text = text_kind(attachment)
            if as_text is None or limits.max_chars == 0:
                found.append(Shown(f"[attachment: {label}]"))
                continue
            if as_text == "text" and b"\x00" in data[:8192]:
                found.append(Shown(f"[attachment: {label}, not text]"))  # binary, whatever its name
                continue
            found.append(Shown(await _as_text(attachment, data, as_text, limits.max_chars)))
        shown.append(tuple(found))
    return tuple(shown)
