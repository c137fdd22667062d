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
def _lookup() -> dict[tuple[str, str], tuple[str, ...]]:
    """(language, a foreign word as written, or its stem) → the English terms it stands for.

    A word as written comes first: stems fold more than meanings do ("zähler", meter, and
    "zahlen", pay, share the German stem "zahl"); the stem meets the inflections not listed.
    Stems are keyed with a leading "~" so they never shadow a written word.
    """
    return {key: tuple(dict.fromkeys(analysis.analyze(en, "en"))) for key, en in _keyed()}


@functools.lru_cache(maxsize=1)
def _glosses() -> dict[tuple[str, str], str]:
    """Keyed as ``_lookup``: the English words of the line, as written."""
    return dict(_keyed())


def _keyed() -> list[tuple[tuple[str, str], str]]:
    """Each written word, then each stem, with the English of the first line it is on."""
    out: dict[tuple[str, str], str] = {}
    stems: dict[tuple[str, str], str] = {}
    for lang, word, english in _entries():
        out.setdefault((lang, word), english)
        stems.setdefault((lang, "~" + analysis.stem(word, lang)), english)
    return list((out | stems).items())


def english_terms(word: str, lang: str) -> tuple[str, ...]:
    """The English terms a lower-cased ``word`` of language ``lang`` stands for, or none."""
    if lang == "en":
        return ()
    table = _lookup()
    found = table.get((lang, word))
    if found is None:
        found = table.get((lang, "~" + analysis.stem(word, lang)), ())
    return found


def alternatives(word: str, lang: str, known: Container[str]) -> list[tuple[str, float]]:
    """The English terms of ``word`` the knowledge base uses, sharing one word's weight."""
    found = [t for t in english_terms(word, lang) if t in known]
    return [(t, 1.0 / math.sqrt(len(found))) for t in found]


def english_gloss(text: str, lang: str) -> str:
    """``text`` of language ``lang`` word by word in English where the table knows the word;
    other words (names, numbers, cognates) as written, stop words left out."""
    table = _glosses()
    words: list[str] = []
    for word in analysis.tokens(text):
        if analysis.is_stop_word(word, lang):
            continue
        found = table.get((lang, word)) or table.get((lang, "~" + analysis.stem(word, lang)))
        words.append(found or word)
    return " ".join(words)
