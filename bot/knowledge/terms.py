"""Words: the tokenizer, stop words and light stemmer shared by ingest and search.

The database's own full-text engine (FTS5 porter, PostgreSQL ``english``) finds candidates; these
terms decide the score. Both sides of a comparison (a query and a chunk) go through the same
``content_terms`` so a word matches itself in any of its common English forms ("refunds",
"refunded", "refunding" → "refund"). The stemmer is deliberately small: it only has to be
consistent with itself, not linguistically exact.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# Letters and digits of any script; everything else (quotes, operators, emoji, SQL) separates.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_TERM_CHARS = 40

# Contractions typed without their apostrophe ("i dont want", "it doesnt load", "im stuck") are
# as empty of topic as "don't", whose pieces the tokenizer drops; as words the knowledge base
# never uses they would count against every answer's confidence. ("id", "ill", "wed" and "hell"
# are left out: they are words too.)
# fmt: off
BARE_CONTRACTIONS = frozenset([
    "dont", "doesnt", "didnt", "cant", "couldnt", "wont", "wouldnt", "shouldnt", "isnt", "arent",
    "wasnt", "werent", "hasnt", "havent", "hadnt", "mustnt", "im", "ive", "youre", "youve",
    "theyre", "theyve", "weve", "thats", "whats", "theres", "heres", "hows", "wheres", "whos",
    "lets",
])
# fmt: on

STOP_WORDS = BARE_CONTRACTIONS | frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "aren", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "cannot", "could", "couldn", "did", "didn", "do", "does", "doesn", "doing", "don", "during", "each", "either", "else", "etc", "ever", "every", "few", "for", "from", "further", "get", "gets", "getting", "got", "had", "hadn", "has", "hasn", "have", "haven", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "isn", "it", "its", "itself", "just", "let", "like", "ll", "me", "might", "more", "most", "much", "must", "mustn", "my", "myself", "need", "needs", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "ought", "our", "ours", "ourselves", "out", "over", "own", "please", "re", "really", "same", "shan", "she", "should", "shouldn", "so", "some", "still", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "upon", "us", "ve", "very", "want", "wants", "was", "wasn", "way", "we", "were", "weren", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with", "won", "would", "wouldn", "yes", "yet", "you", "your", "yours", "yourself", "yourselves", "hi", "hello", "hey", "thanks", "thank", "cheers", "help", "anyone", "someone", "something", "anything", "tell", "know", "trying", "tried", "try", "possible", "able", "go", "going", "make", "made", "use", "using", "used", "one", "two"]
)

_VOWELS = frozenset("aeiouy")


def _has_vowel(stem: str) -> bool:
    return any(ch in _VOWELS for ch in stem)


def stem(word: str) -> str:
    """Strip common English inflections: plurals, -ed/-ing, -ly, -ation, -ment, final -e."""
    if len(word) <= 3 or not word.isalpha():
        return word  # not cached: short words and numbers would only crowd the cache
    return _stem(word)


# Bounded as ``analysis.STEM_CACHE_SIZE`` is, for the same reason: every new word stays.
@functools.lru_cache(maxsize=16_384)
def _stem(word: str) -> str:
    w = word
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ations", "ation", "ment", "ingly", "edly", "ing", "ed", "ly", "ator", "ate"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and _has_vowel(w[: -len(suffix)]):
            w = w[: -len(suffix)]
            break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    # Undouble everywhere (not only after a strip) so "bill" and "billing" meet at "bil".
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in _VOWELS and w[-1] != "s":
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` in order (any script; punctuation and symbols dropped)."""
    return [w for w in _WORD.findall(text.lower()) if len(w) <= MAX_TERM_CHARS]


def query_words(text: str) -> list[str]:
    """The distinct content words of a question, in order: what gets sent to the index."""
    seen: dict[str, None] = {}
    for w in words(text):
        if len(w) >= 2 and w not in STOP_WORDS:
            seen.setdefault(w, None)
    return list(seen)


def content_terms(text: str) -> list[str]:
    """The distinct stemmed content words of ``text``, in first-seen order."""
    seen: dict[str, None] = {}
    for w in words(text):
        if len(w) >= 2 and w not in STOP_WORDS:
            seen.setdefault(stem(w), None)
    return list(seen)


def join_terms(terms: Iterable[str]) -> str:
    """The stored form of a chunk's terms (space separated; terms never contain spaces)."""
    return " ".join(terms)
