"""Articles about undoing an ending — reactivating a cancelled account, resuming a paused plan,
coming back — share every word with the ending itself ("cancel", "subscription", "plan"), so a
question about cancelling meets them as well as the cancelling article, by keywords and by
meaning alike. Unless the question asks to undo or come back, such an article is moved behind
the articles that rank near it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.knowledge.index import Hit

# A title that undoes an ending: "Reactivate a cancelled account", "Coming back: reactivating
# your subscription", "Undo a cancellation", "Resume your deliveries".
_UNDOES = re.compile(
    r"\b(?:reactivat\w*|undo\w*|un-?cancel\w*|rejoin\w*|re-?join\w*|com(?:e|ing)\s+back|resum(?:e|es|"
    r"ed|ing)|reopen\w*|reinstat\w*|restart(?:ing)?\s+(?:your\s+|a\s+|the\s+)?(?:subscription|"
    r"membership|plan|account|deliveries|service))\b",
    re.IGNORECASE,
)
# A question that asks to undo or come back: those words, or "turn it back on", "again",
# "changed my mind".
_ASKS_UNDO = re.compile(
    _UNDOES.pattern + r"|\b(?:back\s+on|again|changed\s+(?:my|our)\s+minds?|return(?:ing)?\s+to\s+"
    r"(?:you|your)|restart\w*|restor\w*)\b",
    re.IGNORECASE,
)
# How much of its rank such an article keeps: behind an article close to it, ahead of one far
# behind.
UNDO_PRIOR = 0.8


def demote_undoing(query: str, hits: Sequence[Hit]) -> list[Hit]:
    """``hits`` with the articles that undo an ending moved back, unless ``query`` asks that."""
    undoing = [bool(_UNDOES.search(h.chunk.title or "")) for h in hits]
    if not any(undoing) or _ASKS_UNDO.search(query):
        return list(hits)
    scaled = [
        replace(h, rank_score=h.rank_score * UNDO_PRIOR) if undoes else h
        for h, undoes in zip(hits, undoing, strict=True)
    ]
    return sorted(scaled, key=lambda h: -h.rank_score)
