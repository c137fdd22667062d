"""BERT's word-piece tokenizer in Python (``bot.knowledge.wordpiece``): the same token ids as
Hugging Face's ``tokenizers`` run over the model's ``tokenizer.json``, which it replaces, and
less memory held for it."""

from __future__ import annotations

import gc
import json
import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from bot.knowledge.minilm import model_directory, read_safetensors_index
from bot.knowledge.wordpiece import WordPiece
from tests.knowledge.test_hybrid_local import LONG, needs_model

tokenizers = pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[2]
TRICKY = [
    "",
    "   ",
    "How do I export my invoices?",
    "Wie setze ich mein Passwort zurück? Ärger über Öffnungszeiten — ß, Straße.",
    "¿Dónde está mi pedido nº 12345? Café crème, naïve façade.",
    "ΣΊΣΥΦΟΣ ΟΔΥΣΣΕΑΣ: ένα τεστ",
    "İstanbul'da IŞIK ve ışık",
    "退款需要多久？我的订单号是A-1234。",
    "注文をキャンセルしたい。返金はいつですか",
    "환불은 언제 되나요?",
    "Привет, где мой заказ №42?",
    "emoji 🙂👍🏽 and ZWJ 👩‍💻 and zero\u200bwidth",
    "tabs\tand\nnew\rlines\x0bvertical\x0cfeed\x00nul\ufffdreplacement\x85next",
    "a [SEP] b [CLS][MASK]c[UNK] [PAD]",
    "under_score $dollar +plus <tag> a^b `tick` |pipe| ~tilde",
    "x" * 101 + " " + "y" * 100,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "e\u0301le\u0300ve ﬁnance ① ²³ ｆｕｌｌｗｉｄｔｈ",
    LONG,
    LONG * 3,
]


def _reference() -> tokenizers.Tokenizer:
    reference = tokenizers.Tokenizer.from_file(str(model_directory() / "tokenizer.json"))
    reference.enable_truncation(max_length=256)
    reference.no_padding()
    return reference


def _ours() -> WordPiece:
    return WordPiece.from_file(model_directory() / "tokenizer.json", max_tokens=256)


def _texts() -> list[str]:
    """Help-centre articles and questions in a dozen languages, and the cases above."""
    paths = sorted((ROOT / "bot/knowledge/example").rglob("*.md"))
    paths += sorted((ROOT / "tests/knowledge").glob("heldout*/**/*.md"))
    texts = [p.read_text(encoding="utf-8") for p in paths]
    return TRICKY + texts + [line for text in texts for line in text.splitlines()]


@needs_model
def test_the_ids_are_tokenizers_ids() -> None:
    texts = _texts()
    assert len(texts) > 200
    reference, ours = _reference(), _ours()
    expected = [e.ids for e in reference.encode_batch(texts)]
    assert [ours.encode(t) for t in texts] == expected


@needs_model
def test_every_code_point_is_split_and_kept_as_tokenizers_does() -> None:
    """Each code point of the Basic Multilingual Plane inside and beside a word: cleaning,
    whitespace, punctuation, CJK spacing, accents and case all decide its ids. The only
    differences are characters ``tokenizers``' Unicode tables predate (assigned since; there it
    is an unknown letter, the whole word ``[UNK]``), and two whose category Unicode changed since
    (U+166D, punctuation then a symbol; U+1734, a non-spacing mark then spacing): Python's tables
    are newer."""
    reference, ours = _reference(), _ours()
    points = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"ab{chr(c)}cd {chr(c)}x" for c in points]
    expected = [e.ids for e in reference.encode_batch(texts)]
    unknown = ours.vocabulary["[UNK]"]
    differing = [
        (hex(c), want) for c, text, want in zip(points, texts, expected, strict=True)
        if ours.encode(text) != want
    ]
    unexplained = [
        (c, want)
        for c, want in differing
        if want[1:-1] != [unknown, unknown] and c not in ("0x166d", "0x1734")
    ]
    assert not unexplained, unexplained[:10]
    assert len(differing) < 200, len(differing)


@needs_model
def test_the_vocabulary_is_held_packed() -> None:
    """30,522 word pieces in ~1 MB, with every piece found (a dict of ``str`` held 3.5 MB)."""
    gc.collect()
    tracemalloc.start()
    try:
        ours = _ours()
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1.5 * 2**20, held
    pieces = json.loads((model_directory() / "tokenizer.json").read_text("utf-8"))["model"]["vocab"]
    assert len(ours.vocabulary) == len(pieces) == 30_522
    assert all(ours.vocabulary.get(piece) == id_ for piece, id_ in pieces.items())
    assert ours.vocabulary.get("##zzzzqq") is None
    with pytest.raises(KeyError):
        ours.vocabulary["notapiece"]


PROBE = """
import re, threading
from bot.allocator import pin_mmap_threshold
from bot.knowledge.minilm import MiniLM, model_directory
import threadpoolctl

def anonymous() -> int:
    with open("/proc/self/status") as status:
        return int(re.search(r"RssAnon:\\s+(\\d+)", status.read()).group(1)) * 1024

pin_mmap_threshold()  # as the daemon runs
before = anonymous()
model = MiniLM(model_directory())
texts = ["How do I export my invoices?", "Mein Passwort ist weg?", "退款需要多久？"] * 4
worker = threading.Thread(target=model.encode, args=(texts,))
worker.start()
worker.join()
model.encode(texts)
print(anonymous() - before)
"""


@needs_model
@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc")
def test_the_loaded_model_holds_little_more_than_its_encoder_weights() -> None:
    """What loading the model and embedding a few texts (in a thread, as the daemon does)
    adds to the process's anonymous resident memory: the encoder's weights as int16 (21 MB;
    43 MB as the file's float32), the float32 buffer one weight at a time is made float32 in
    (the largest's size, 2.4 MB), and at most 5 MiB more — the vocabulary, what its parse
    leaves, a thread's heap. With ``tokenizers`` it was 8.6 MiB more (its vocabulary, and the
    threads ``encode_batch`` starts, each with a heap of its own)."""
    index = read_safetensors_index(model_directory() / "model.safetensors")
    weights = sum(
        t.size * t.dtype.itemsize for name, t in index.items() if "word_embeddings" not in name
    )
    largest = max(
        t.size * t.dtype.itemsize for name, t in index.items() if "word_embeddings" not in name
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=ROOT
    )
    grown = int(done.stdout)
    held = weights / 2 + largest
    assert held < grown < held + 5 * 2**20, (grown - held) / 2**20
