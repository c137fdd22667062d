"""Whether a message asks anything at all, as the offline responder reads it: small talk after a
greeting ("hi there, how are you?") is no question to search the knowledge base for."""

from __future__ import annotations

import re

# Words that carry no question on their own: small talk after a greeting is not a question.
# fmt: off
_FILLER = frozenset(
    [
        "a", "an", "and", "are", "about", "any", "anybody", "anyone", "at", "be", "can", "could",
        "do", "does", "for", "from", "good", "got", "hello", "hey", "hi", "how", "i", "im", "i'm",
        "is", "it", "its", "it's", "just", "me", "morning", "afternoon", "evening", "my", "of",
        "ok", "okay", "on", "or", "please", "so", "thank", "thanks", "that", "the", "there",
        "this", "to", "today", "u", "up", "us", "we", "what", "whats", "what's", "with", "would",
        "you", "your", "yo"
    ]
)
# fmt: on
_WORD = re.compile(r"[\w']+")


def is_question(text: str) -> bool:
    """Whether ``text`` has a word that is not small talk (``_FILLER``)."""
    return any(w.lower() not in _FILLER for w in _WORD.findall(text))
