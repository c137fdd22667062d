"""Hybrid retrieval: dense vectors from an OpenAI-compatible ``/v1/embeddings`` (the scripted
model server over real HTTP), stored with the knowledge base on both databases, re-embedded
only for changed chunks, and fused with the keyword ranking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.knowledge import vectors as vectors_module
from bot.store.database import Database
from bot.store.schema import kb_chunks, kb_embeddings
from tests.fakes.model_server import ScriptedModelServer, concept_vectors

# The scripted model knows that these phrases mean the same thing; the keyword index knows only
# the general support phrasings of ``bot.knowledge.vocabulary`` ("money back" → "refund").
CONCEPTS = {
    "refund": ["refund", "money back", "reimburse", "give back what i paid"],
    "password": ["password", "log in", "sign in", "locked out"],
    "invoice": ["invoice", "receipt", "billing document"],
}

DOCUMENTS = {
    "refunds.md": (
        "# Refund policy\n\n"
        "## Who qualifies\n\nAnnual plans qualify for a refund within 30 days of purchase.\n\n"
        "## How to request one\n\n1. Open Billing.\n2. Choose the charge.\n3. Click Refund.\n"
    ),
    "passwords.md": (
        "# Password reset\n\n"
        "## Forgotten password\n\n1. Open the password reset page.\n2. Enter your email.\n\n"
        "## Two-factor codes\n\nAuthenticator codes expire after thirty seconds.\n"
    ),
    "invoices.md": (
        "# Invoices\n\n"
        "## Download an invoice\n\nEvery invoice is a PDF under Billing, Invoices.\n\n"
        "## Company details\n\nAdd a VAT number before the invoice is issued.\n"
    ),
}


@pytest.fixture
async def server() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as fake:
        yield fake


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "help"
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text)
    return folder


def hybrid_settings(server: ScriptedModelServer, **embeddings: object) -> KnowledgeSettings:
    return KnowledgeSettings.model_validate(
        {
            "chunk_chars": 200,
            "embeddings": {
                "backend": "openai",
                "base_url": server.url,
                "api_key": "sk-embed-secret",
                "model": "scripted-embedding",
                "max_retries": 0,
                **embeddings,
            },
        }
    )


@pytest.fixture
async def hybrid(kb_db: Database, server: ScriptedModelServer) -> AsyncIterator[KnowledgeBase]:
    kb = KnowledgeBase(kb_db, hybrid_settings(server))
    try:
        yield kb
    finally:
        await kb.aclose()


def embedded_inputs(server: ScriptedModelServer, since: int = 0) -> list[str]:
    inputs: list[str] = []
    for request in server.embedding_requests[since:]:
        assert isinstance(request.json, dict)
        inputs.extend(request.json["input"])
    return inputs


async def count(db: Database, table: object) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_without_a_backend_nothing_is_embedded(kb_db: Database, docs: Path) -> None:
    kb = KnowledgeBase(kb_db, KnowledgeSettings(chunk_chars=200))
    assert kb.dense is None
    await kb.ingest([docs])
    [hit] = await kb.search("refund", limit=1)
    assert hit.source == "refunds.md"
    assert await count(kb_db, kb_embeddings) == 0


async def test_every_chunk_gets_a_stored_vector(
    hybrid: KnowledgeBase, kb_db: Database, server: ScriptedModelServer, docs: Path
) -> None:
    await hybrid.ingest([docs])
    chunks = await count(kb_db, kb_chunks)
    assert chunks >= 6  # each section its own chunk
    assert len(embedded_inputs(server)) == chunks
    assert await count(kb_db, kb_embeddings) == chunks
    request = server.embedding_requests[0]
    assert request.header("Authorization") == "Bearer sk-embed-secret"
    assert isinstance(request.json, dict) and request.json["model"] == "scripted-embedding"
    async with kb_db.read() as conn:
        row = (await conn.execute(select(kb_embeddings).limit(1))).one()
    assert row.model == "scripted-embedding"
    assert len(row.vector) == 4 * row.dimensions


async def test_a_second_sync_embeds_only_the_changed_chunk(
    hybrid: KnowledgeBase, kb_db: Database, server: ScriptedModelServer, docs: Path
) -> None:
    await hybrid.ingest([docs])
    await hybrid.search("refund", limit=1)  # builds the dense index: nothing left to embed
    before = len(server.embedding_requests)
    assert embedded_inputs(server, before - 1) == ["refund"]  # only the question itself

    text = (docs / "invoices.md").read_text()
    (docs / "invoices.md").write_text(text.replace("under Billing, Invoices", "in Settings"))
    report = await hybrid.ingest([docs])
    assert (report.updated, report.unchanged) == (1, 2)
    changed = embedded_inputs(server, before)
    assert len(changed) == 1 and "in Settings" in changed[0]

    [hit] = await hybrid.search("where is my receipt pdf", limit=1)
    # The rebuilt index found every other vector stored: only the question was embedded.
    assert embedded_inputs(server, before + 1) == ["where is my receipt pdf"]
    assert hit.source == "invoices.md"
    # The old text's vector was pruned with the index rebuild: one vector per chunk.
    assert await count(kb_db, kb_embeddings) == await count(kb_db, kb_chunks)


async def test_a_paraphrase_without_shared_words_is_found_by_meaning(
    kb_db: Database, server: ScriptedModelServer, docs: Path
) -> None:
    keyword_only = KnowledgeBase(kb_db, KnowledgeSettings(chunk_chars=200))
    await keyword_only.ingest([docs])
    question = "will you give back what I paid?"  # no word of it in the table or the documents
    assert not any(p.source == "refunds.md" for p in await keyword_only.search(question))

    kb = KnowledgeBase(kb_db, hybrid_settings(server))
    try:
        [first, *_] = await kb.search(question)
        assert first.source == "refunds.md"
        assert first.score >= 0.45  # confident enough for the offline responder to answer
        # Off-topic: nothing passes the similarity floor, so the dense side adds nothing.
        assert await kb.search("weather tomorrow in lisbon") == []
    finally:
        await kb.aclose()


async def test_keywords_still_win_where_they_match(
    hybrid: KnowledgeBase, docs: Path
) -> None:
    await hybrid.ingest([docs])
    [hit] = await hybrid.search("authenticator codes expire", limit=1)
    assert hit.source == "passwords.md"
    assert "Two-factor" in hit.heading


async def test_a_failing_backend_falls_back_to_keywords_then_catches_up(
    hybrid: KnowledgeBase,
    kb_db: Database,
    server: ScriptedModelServer,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One batch per document at ingest, the index build (the question is not embedded: with
    # vectors missing the search is keyword-only).
    server.fail_embeddings(401, times=len(DOCUMENTS) + 1)
    with caplog.at_level(logging.WARNING):
        report = await hybrid.ingest([docs])
        [hit] = await hybrid.search("refund within 30 days", limit=1)
    assert report.added == 3
    assert hit.source == "refunds.md"  # by keywords
    assert await count(kb_db, kb_embeddings) == 0
    assert "embedding failed" in caplog.text
    assert "sk-embed-secret" not in caplog.text

    monkeypatch.setattr(vectors_module, "EMBED_RETRY_SECONDS", 0.0)
    [first, *_] = await hybrid.search("can I get my money back?")
    assert first.source == "refunds.md"
    assert await count(kb_db, kb_embeddings) == await count(kb_db, kb_chunks)


async def test_retryable_failures_are_retried(
    kb_db: Database, server: ScriptedModelServer, docs: Path
) -> None:
    kb = KnowledgeBase(kb_db, hybrid_settings(server, max_retries=2))
    try:
        server.fail_embeddings(503, times=2)
        await kb.ingest([docs / "refunds.md"])
        assert len(server.embedding_requests) == 3
        assert await count(kb_db, kb_embeddings) == await count(kb_db, kb_chunks)
    finally:
        await kb.aclose()


async def test_a_question_close_to_every_article_alike_is_not_confident(
    kb_db: Database, tmp_path: Path
) -> None:
    """In-domain but unanswered: similar to every article of a one-topic help center, so the
    dense side's confidence comes from how far the best article stands out, not from the
    raw similarity."""
    concepts = {
        "bike": ["bike", "ride"],
        "battery": ["battery", "charge", "plug"],
        "reserve": ["reserve", "book", "hold"],
        "end": ["lock", "park", "finish"],
    }
    folder = tmp_path / "bikes"
    folder.mkdir()
    (folder / "battery.md").write_text("# E-bike battery\n\nOur team swaps each battery.\n")
    (folder / "reserving.md").write_text("# Reserving a bike\n\nReserve it in the app.\n")
    (folder / "ending.md").write_text("# Ending a ride\n\nLock it at a station.\n")
    async with ScriptedModelServer(embed=concept_vectors(concepts)) as fake:
        kb = KnowledgeBase(kb_db, hybrid_settings(fake))
        try:
            await kb.ingest([folder])
            [first, *_] = await kb.search("do I need to plug it in after?")
            assert first.source == "battery.md" and first.score >= 0.45
            scenic = await kb.search("which bike route through town is the most scenic?")
            assert all(p.score < 0.2 for p in scenic), scenic
        finally:
            await kb.aclose()


async def test_a_question_that_moved_on_is_searched_by_meaning_for_the_new_one(
    kb_db: Database, docs: Path
) -> None:
    """The customer settled one question and asked another, neither in the knowledge base's
    words: the dense side weighs the new question as the keyword side weighs its words, so the
    settled one, said at more length, no longer outweighs it. The whole text and the new
    question go to the model in one request."""
    concepts = {
        "refund": ["refund", "what i paid"],
        "password": ["password", "let me in", "keeps saying no"],
    }
    question = (
        "The app would not let me in, it keeps saying no. "
        "Thanks, that worked! Also, could I have what I paid?"
    )
    async with ScriptedModelServer(embed=concept_vectors(concepts)) as fake:
        kb = KnowledgeBase(kb_db, hybrid_settings(fake))
        try:
            await kb.ingest([docs])
            since = len(fake.embedding_requests)
            [first, *_] = await kb.search(question)
            assert first.source == "refunds.md"
            [request] = fake.embedding_requests[since:]
            assert isinstance(request.json, dict)
            whole, new = request.json["input"]
            assert whole == question
            assert question.endswith(new) and "could I have what I paid?" in new
            assert "let me in" not in new
        finally:
            await kb.aclose()


async def test_a_question_in_another_language_is_embedded_with_its_english_reading(
    hybrid: KnowledgeBase, server: ScriptedModelServer, docs: Path
) -> None:
    """An English embedding model reads a German question as noise: with no article in German,
    the question goes to the model with the support words it uses read in English too."""
    await hybrid.ingest([docs])
    since = len(server.embedding_requests)
    [first, *_] = await hybrid.search("Wie bekomme ich meine Rückerstattung?")
    assert first.source == "refunds.md"
    [question] = embedded_inputs(server, since)
    original, english = question.split("\n")
    assert original == "Wie bekomme ich meine Rückerstattung?"
    assert "refund" in english.split() and "rückerstattung" not in english


async def test_an_english_question_is_embedded_as_written(
    hybrid: KnowledgeBase, server: ScriptedModelServer, docs: Path
) -> None:
    await hybrid.ingest([docs])
    since = len(server.embedding_requests)
    await hybrid.search("how do I get my money back")
    assert embedded_inputs(server, since) == ["how do I get my money back"]
