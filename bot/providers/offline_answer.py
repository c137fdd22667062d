"""How the offline responder words an answer: the matching section as plain text, cited."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.domain import JSON

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.knowledge import Passage
    from bot.providers.base import ChatMessage

ANSWER_CHARS = 900


def cite(passage: Passage) -> str:
    """``Title › Heading (source)``; a heading that already starts with the title (a heading
    path) is not prefixed twice."""
    where = passage.title
    heading = passage.heading or ""
    if heading.startswith(f"{passage.title} › "):
        where = heading
    elif heading and heading != passage.title:
        where = f"{where} › {heading}"
    return f"{where} ({passage.source})"


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
# A Markdown table's rule line (``|---|:--:|``): nothing a reader needs.
_TABLE_RULE = re.compile(r"^\|?[\s:|-]*-[\s:|-]*\|?$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


# Markdown emphasis (*Refund policy*, _now_) around words, not a "* " list bullet or a product
# of numbers (2 * 3): the answer is plain text on every channel.
_EMPHASIS = re.compile(r"(?<![\w*])[*_](?=\S)([^*_\n]+?)(?<=\S)[*_](?![\w*])")


def answer_from(passage: Passage) -> str:
    """The matching section as an answer: its heading, its paragraphs as whole sentences (a
    line break inside a sentence joined), its steps one per line, a table's rows one per line
    (cells between bars, the rule line dropped), cut at a sentence end near ``ANSWER_CHARS``;
    the citation once, at the end."""
    blocks: list[str] = []
    for line in passage.text.strip().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            blocks.append("")
            continue
        stripped = re.sub(r"\*\*|__|`", "", " ".join(stripped.split()))
        stripped = _EMPHASIS.sub(r"\1", stripped)
        if stripped.startswith("|"):
            if not _TABLE_RULE.match(stripped):
                blocks.append(stripped.strip("| "))
            continue
        if _LIST_ITEM.match(stripped) or not blocks or not blocks[-1]:
            blocks.append(stripped)
        else:
            blocks[-1] += " " + stripped
    body = "\n".join(b for b in blocks if b)
    if len(body) > ANSWER_CHARS:
        cut = body[:ANSWER_CHARS]
        end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("! "), cut.rfind("? "))
        body = cut[: end + 1] if end > ANSWER_CHARS // 3 else cut.rsplit(" ", 1)[0] + "…"
    return f"{body}\n\nSource: {cite(passage)}"


# Said first when the article answered from is in English and the customer wrote in one of the
# languages the knowledge base reads across (``bot.knowledge.crosslingual``): they should know
# why the steps that follow are not in their language.
IN_ENGLISH = {
    "de": "Dazu haben wir einen Artikel auf Englisch:",
    "fr": "Nous avons un article à ce sujet, en anglais :",
    "es": "Tenemos un artículo sobre esto, en inglés:",
    "it": "Abbiamo un articolo su questo, in inglese:",
    "pt": "Temos um artigo sobre isto, em inglês:",
    "nl": "We hebben hierover een artikel in het Engels:",
    "sv": "Vi har en artikel om detta, på engelska:",
    "da": "Vi har en artikel om det, på engelsk:",
    "no": "Vi har en artikkel om dette, på engelsk:",
    "pl": "Mamy artykuł na ten temat, po angielsku:",
}


def answer_for(passage: Passage, language: str) -> str:
    """``answer_from`` for a customer writing in ``language``: led by a line in their language
    when the article is in English and they are not (``IN_ENGLISH``)."""
    lead = IN_ENGLISH.get(language) if passage.language == "en" else None
    answer = answer_from(passage)
    return f"{lead}\n{answer}" if lead else answer


def with_greeting(hello: str, answer: str) -> str:
    """The greeting before the answer: on the same line before a sentence ("Hi Ada! Paid plans
    are billed…"), on its own line before steps or a list ("Hi Ada!" then "1. Go to…")."""
    if hello and _LIST_ITEM.match(answer):
        return f"{hello.rstrip()}\n{answer}"
    return hello + answer


def pieces(text: str, count: int) -> list[str]:
    """``text`` in about ``count`` pieces split after spaces, so joining them gives it back."""
    size = max(1, len(text) // count)
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        space = text.find(" ", end)
        end = len(text) if space == -1 or len(text) - space < size // 2 else space + 1
        pieces.append(text[start:end])
        start = end
    return pieces


# How much of a passage the model's context and the run's record keep.
PASSAGE_CHARS = 1500


def rag_record(passage: Passage) -> JSON:
    """A passage as the run's audit log keeps it."""
    return {
        "chunk_id": passage.chunk_id,
        "document_id": passage.document_id,
        "title": passage.title,
        "heading": passage.heading,
        "source": passage.source,
        "score": round(float(passage.score), 4),
        "text": passage.text[:PASSAGE_CHARS],
    }


def solved_summary(messages: Sequence[ChatMessage], last_user: int) -> str:
    """The CLOSE call's resolution summary: the customer's first question, clipped."""
    asked = [m.content for m in messages[:last_user] if m.role == "user" and m.content]
    topic = clip(" ".join(asked[0].split()), 160) if asked else "the customer's question"
    return f"Customer confirmed the issue is solved ({topic})."


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
