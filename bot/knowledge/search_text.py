"""Presenting a passage: the part of its text that best matches a question."""

from __future__ import annotations

import re

from bot.knowledge import terms as vocab

_PIECES = re.compile(r"(?<=[.!?])\s+|\n+")


def snippet(text: str, query: str, *, width: int = 200) -> str:
    """The sentence or line of ``text`` sharing most content words with ``query``, trimmed to
    ``width`` characters (the start of the text when nothing matches)."""
    wanted = set(vocab.content_terms(query))
    pieces = [p.strip() for p in _PIECES.split(text) if p.strip()]
    if not pieces:
        return ""
    best = max(
        range(len(pieces)),
        key=lambda i: (len(wanted.intersection(vocab.content_terms(pieces[i]))), -i),
    )
    chosen = " ".join(pieces[best:])
    chosen = " ".join(chosen.split())
    return chosen if len(chosen) <= width else chosen[: width - 1].rstrip() + "…"
