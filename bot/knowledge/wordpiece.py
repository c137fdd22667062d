"""BERT's word-piece tokenizer, as all-MiniLM-L6-v2's ``tokenizer.json`` has Hugging Face's
``tokenizers`` run it, in Python: the local model's text → token ids (``bot.knowledge.minilm``).

Its steps, in ``tokenizers``' order: the special tokens (``[CLS]``, ``[SEP]``, …) are found in the
raw text; the rest is normalised (control characters dropped, whitespace made a space, a space
around each CJK ideograph, accents stripped after NFD, lowercased a character at a time), split on
whitespace and around each punctuation character, and each word cut greedily into the longest
pieces of the vocabulary (``##`` marking a piece inside a word; a word that cannot be cut, or of
over 100 characters, is ``[UNK]``); then ``[CLS] … [SEP]``, at most ``max_tokens`` in all.

Why not ``tokenizers`` itself: the daemon held ~14 MB for it (its library, its parse of the
vocabulary, the threads ``encode_batch`` starts, each with its own C heap) against 0.9 MB for the
vocabulary here (``PieceIds``); a question's tokens cost ~0.1 ms of Python. ``tests/knowledge/
test_wordpiece.py`` compares the ids with ``tokenizers``' for every code point and for real texts.
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from array import array
from itertools import accumulate
from pathlib import Path

# The ideographs BERT's normaliser puts spaces around: the CJK Unified Ideographs blocks and
# their extensions, and the compatibility ideographs (``tokenizers``' ``is_chinese_char``).
_CJK = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

# The configuration this module implements, as ``tokenizer.json`` spells it.
_NORMALIZER = {
    "type": "BertNormalizer",
    "clean_text": True,
    "handle_chinese_chars": True,
    "strip_accents": None,
    "lowercase": True,
}


def _is_cjk(code: int) -> bool:
    return any(low <= code <= high for low, high in _CJK)


_DROPPED = frozenset(("Cc", "Cf", "Co", "Cs"))


def _drops(char: str) -> bool:
    """Whether cleaning removes ``char``: NUL, U+FFFD, and the control, format and private-use
    characters but tab, newline and carriage return (unassigned code points stay)."""
    if char in "\t\n\r":
        return False
    return char in "\x00\ufffd" or unicodedata.category(char) in _DROPPED


def _is_punctuation(char: str) -> bool:
    """ASCII punctuation (``$``, ``+``, ``^``… included) or any Unicode P* character."""
    return (char.isascii() and not char.isalnum() and not char.isspace()) or (
        unicodedata.category(char)[0] == "P"
    )


# Cleaning ASCII text, the usual case, in one ``str.translate``: controls dropped, tab, newline
# and carriage return made spaces.
_ASCII_CLEAN = {code: None for code in (*range(32), 127)} | {ord(c): " " for c in "\t\n\r"}
# ASCII words and punctuation after normalising: runs of letters and digits, or one punctuation
# character (every printable ASCII character is one or the other, or a space).
_ASCII_WORDS = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")


def normalise(text: str) -> str:
    """BERT's normaliser (``BertNormalizer`` with the settings of ``_NORMALIZER``)."""
    if text.isascii():
        return text.translate(_ASCII_CLEAN).lower()
    text = "".join(
        " " if char.isspace() else f" {char} " if _is_cjk(ord(char)) else char
        for char in text
        if not _drops(char)
    )
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    # A character at a time, as ``tokenizers`` does: ``str.lower`` would give a final capital
    # sigma its final form.
    return text.lower() if "Σ" not in text else "".join(c.lower() for c in text)


def split_words(text: str) -> list[str]:
    """BERT's pre-tokenizer over normalised text: split on whitespace, each punctuation
    character a word of its own."""
    if text.isascii():
        return _ASCII_WORDS.findall(text)
    words: list[str] = []
    for part in text.split():
        start = 0
        for at, char in enumerate(part):
            if _is_punctuation(char):
                if start < at:
                    words.append(part[start:at])
                words.append(char)
                start = at + 1
        if start < len(part):
            words.append(part[start:])
    return words


class PieceIds:
    """The vocabulary: word piece → id. Packed, as the daemon holds it for good: the pieces'
    UTF-8 in one ``bytes``, found by their ``hash`` in a sorted array (0.9 MB; a dict of
    ``str`` held 3.5 MB). A lookup is a binary search and a comparison of bytes (~1 µs)."""

    def __init__(self, pieces: dict[str, int]) -> None:
        order = sorted(pieces, key=hash)
        encoded = [piece.encode() for piece in order]
        self._hashes = array("q", map(hash, order))
        self._ids = array("i", (pieces[piece] for piece in order))
        self._ends = array("q", accumulate(map(len, encoded)))
        self._text = b"".join(encoded)

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, piece: str) -> int | None:
        """The id of ``piece``, or None when it is not in the vocabulary."""
        key = hash(piece)
        at = bisect.bisect_left(self._hashes, key)
        data = piece.encode()
        while at < len(self._hashes) and self._hashes[at] == key:
            start = self._ends[at - 1] if at else 0
            if self._text[start : self._ends[at]] == data:
                return self._ids[at]
            at += 1
        return None

    def __getitem__(self, piece: str) -> int:
        found = self.get(piece)
        if found is None:
            raise KeyError(piece)
        return found


class WordPiece:
    """Text → token ids, ``[CLS]`` first and ``[SEP]`` last, at most ``max_tokens``."""

    def __init__(
        self,
        vocabulary: dict[str, int],
        *,
        specials: dict[str, int],
        max_tokens: int,
        unknown: str = "[UNK]",
        prefix: str = "##",
        max_word_chars: int = 100,
    ) -> None:
        self.vocabulary = PieceIds(vocabulary)
        self.specials = specials
        self.max_tokens = max_tokens
        self.unknown_id = self.vocabulary[unknown]
        self.prefix = prefix
        self.max_word_chars = max_word_chars
        self.first_id = self.vocabulary["[CLS]"]
        self.last_id = self.vocabulary["[SEP]"]
        self._special = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len)[::-1]))

    @classmethod
    def from_file(cls, path: Path, *, max_tokens: int) -> WordPiece:
        """The tokenizer a ``tokenizer.json`` describes, when it is the one this module
        implements (BERT's, uncased); otherwise ``ValueError``."""
        spec = json.loads(path.read_text(encoding="utf-8"))
        model = spec["model"]
        found = (
            spec["normalizer"],
            spec["pre_tokenizer"]["type"],
            model["type"],
            [list(step) for step in spec["post_processor"]["single"]],
        )
        expected = (
            _NORMALIZER,
            "BertPreTokenizer",
            "WordPiece",
            [["SpecialToken"], ["Sequence"], ["SpecialToken"]],
        )
        if found != expected:
            raise ValueError(f"{path}: not BERT's uncased word-piece tokenizer: {found}")
        vocabulary: dict[str, int] = model["vocab"]
        return cls(
            vocabulary,
            specials={t["content"]: t["id"] for t in spec["added_tokens"]},
            max_tokens=max_tokens,
            unknown=model["unk_token"],
            prefix=model["continuing_subword_prefix"],
            max_word_chars=model["max_input_chars_per_word"],
        )

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""
        ids = [self.first_id]
        limit = self.max_tokens - 1  # the room left for ``[SEP]``
        start = 0
        for special in self._special.finditer(text):
            self._encode_text(text[start : special.start()], ids)
            ids.append(self.specials[special.group()])
            start = special.end()
        self._encode_text(text[start:], ids)
        del ids[limit:]
        ids.append(self.last_id)
        return ids

    def _encode_text(self, text: str, ids: list[int]) -> None:
        for word in split_words(normalise(text)):
            self._encode_word(word, ids)
            if len(ids) >= self.max_tokens:
                return

    def _encode_word(self, word: str, ids: list[int]) -> None:
        if len(word) > self.max_word_chars:
            ids.append(self.unknown_id)
            return
        pieces: list[int] = []
        start = 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                found = self.vocabulary.get(piece)
                if found is not None:
                    pieces.append(found)
                    start = end
                    break
            else:
                ids.append(self.unknown_id)
                return
        ids.extend(pieces)
