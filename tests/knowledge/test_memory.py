"""What search keeps in memory in a long-running daemon: questions bring words never seen before
(names, typos, order references), and what is held after answering them stays flat however
many come (DESIGN §11: ≤ 150 MB, flat over a soak)."""

from __future__ import annotations

import gc
import random
import string
import sys

import pytest

from bot.knowledge import analysis
from bot.knowledge.index import SearchIndex
from tests.knowledge.articles import build_index

QUESTIONS = 650
NEW_WORDS = 28  # per question (the query reads 32): 18,200 words never seen before a round


def _ask(index: SearchIndex, rnd: random.Random) -> None:
    for _ in range(QUESTIONS):
        new = " ".join("".join(rnd.choices(string.ascii_lowercase, k=8)) for _ in range(NEW_WORDS))
        # A German customer of an English help center: each word is stemmed as both.
        index.search(f"ich habe die bestellung {rnd.randrange(10**9)} und {new}")


class _Stemmer:
    """Snowball in pure Python takes ~50 µs a word, minutes for 36,400 words on a loaded
    machine; what is held for each word does not depend on the stem found."""

    def stemWord(self, word: str) -> str:
        return word[:-1]


def test_new_words_in_questions_leave_what_search_holds_flat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis, "_stemmer", lambda lang: _Stemmer())
    index = build_index({
        "refunds": ("Refunds", [("Asking for one", "Refunds go back to the card within 5 days.")]),
        "orders": ("Orders", [("Tracking", "Your order number is in the confirmation email.")]),
    })
    rnd = random.Random(17)
    _ask(index, rnd)  # whatever is bounded fills up
    gc.collect()
    filled = sys.getallocatedblocks()
    _ask(index, rnd)  # as many new words again
    gc.collect()
    grown = sys.getallocatedblocks() - filled
    # Each stem kept (in a cache, say) is three or four blocks: 36,400 of them ~130,000.
    assert grown < 5_000, f"{grown:,} more memory blocks held after 18,200 new words"
