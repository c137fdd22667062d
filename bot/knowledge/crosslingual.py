"""Support words of other languages in English: a question in German, French, Spanish, Italian,
Portuguese, Dutch, Polish, Swedish, Danish or Norwegian against a help
center written in English.

Stemming meets "Rückerstattungen" and "Rückerstattung", not "Rückerstattung" and "refund". A
customer who writes in their own language to an English help center ("Wie kann ich nächste
Woche aussetzen?") would otherwise match nothing, or an English word a typo away. A table
(``support_words/LANG.txt``) gives, per language, the everyday words of customer support that any
business's help center uses (account, order, change, send, cancel, refund, card, payment failed,
address, price, mistake, undo, unlock, week, holiday…) with their English equivalents; the
index searches these
for a question's word the knowledge base does not use itself. Like ``vocabulary``, it is written
from general support language: no product, no domain.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Container, Iterator
from pathlib import Path

from bot.knowledge import analysis

# One file per language, "foreign words: English words" per line ("#" starts a comment). The
# foreign words are stemmed with the language's stemmer (so inflections meet), the English ones
# with the English stemmer; a foreign stem stands for the first line it is on.
WORDS_DIR = Path(__file__).parent / "support_words"


def table_files() -> list[Path]:
    """The files of the table, one per language (``de.txt``…): what the index is built by."""
    return sorted(WORDS_DIR.glob("*.txt"))


def _entries() -> Iterator[tuple[str, str, str]]:
    """(language, a foreign word as read from a question, its line's English words) for every
    word of every table line ("#" starts a comment; stop words are never looked up)."""
    for path in table_files():
        lang = path.stem
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            foreign, english = line.split(":")
            # As a question's words are read: "rendez-vous", "aujourd'hui" split like there.
            for word in analysis.tokens(foreign):
                if not analysis.is_stop_word(word, lang):
                    yield lang, word, english.strip()


@functools.lru_cache(maxsize=1)
def _lines() -> dict[tuple[str, str], str]:
    """(language, a foreign word as written, or its stem) → the English words of its line.

    A word as written comes first: stems fold more than meanings do ("zähler", meter, and
    "zahlen", pay, share the German stem "zahl"); the stem meets the inflections not listed.
    Stems are keyed with a leading "~" so they never shadow a written word.
    """
    out: dict[tuple[str, str], str] = {}
    stems: dict[tuple[str, str], str] = {}
    for lang, word, english in _entries():
        out.setdefault((lang, word), english)
        stems.setdefault((lang, "~" + analysis.stem(word, lang)), english)
    return out | stems


def _line(word: str, lang: str) -> str | None:
    """The English words a lower-cased ``word`` of language ``lang`` stands for, or none."""
    table = _lines()
    found = table.get((lang, word))
    return found if found is not None else table.get((lang, "~" + analysis.stem(word, lang)))


@functools.cache
def _terms(english: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(analysis.analyze(english, "en")))


def english_terms(word: str, lang: str) -> tuple[str, ...]:
    """The English terms a lower-cased ``word`` of language ``lang`` stands for, or none."""
    if lang == "en":
        return ()
    line = _line(word, lang)
    return _terms(line) if line else ()


def alternatives(word: str, lang: str, known: Container[str]) -> list[tuple[str, float]]:
    """The English terms of ``word`` the knowledge base uses, sharing one word's weight."""
    found = [t for t in english_terms(word, lang) if t in known]
    return [(t, 1.0 / math.sqrt(len(found))) for t in found]


def english_gloss(text: str, lang: str) -> str:
    """``text`` of language ``lang`` word by word in English where the table knows the word;
    other words (names, numbers, cognates) as written, stop words left out."""
    words: list[str] = []
    for word in analysis.tokens(text):
        if not analysis.is_stop_word(word, lang):
            words.append(_line(word, lang) or word)
    return " ".join(words)
