"""Searching: hostile input, ranking on the bundled example help center, off-topic scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import BUNDLED_KNOWLEDGE, KnowledgeSettings
from bot.knowledge import KnowledgeBase, Passage, snippet
from bot.store.database import Database

HOSTILE = [
    'double "charge',
    "card -password",
    "AND",
    "OR",
    "NOT refund",
    "NEAR(",
    "NEAR(refund invoice, 2)",
    "*",
    "refund*",
    "^refund",
    "heading: refund",
    "text:invoice",
    "'; drop table kb_chunks; --",
    '"""',
    "(((",
    "refund & | ! <-> :*",
    "🙂🔥",
    "refund 🙂",
    "",
    "   ",
    "\x00refund\x00",
    "退款 发票",
    "réfund façade",
    "a" * 5000,
    "refund " * 500,
]


@pytest.fixture
async def example_kb(kb_db: Database) -> KnowledgeBase:
    kb = KnowledgeBase(kb_db, KnowledgeSettings())
    await kb.ingest([BUNDLED_KNOWLEDGE])
    return kb


async def test_hostile_queries_never_raise(example_kb: KnowledgeBase) -> None:
    for query in HOSTILE:
        passages = await example_kb.search(query)
        assert all(0.0 <= p.score <= 1.0 for p in passages), query
    # Operators and quotes are words, not syntax: the meaningful part still finds its article.
    [hit] = await example_kb.search('double "charge', limit=1)
    assert hit.source.startswith("billing/")
    [hit] = await example_kb.search("NOT refund", limit=1)
    assert hit.source == "billing/refund-policy.md"
    for empty in ("", "   ", "AND", "*", "🙂🔥", "(((", '"""'):
        assert await example_kb.search(empty) == [], empty


async def test_limit_is_respected_and_bounded(example_kb: KnowledgeBase) -> None:
    assert len(await example_kb.search("plan billing invoices refund", limit=2)) == 2
    assert len(await example_kb.search("plan billing invoices refund", limit=0)) == 1
    assert len(await example_kb.search("plan", limit=10_000)) <= 50


QUESTIONS = [
    ("How do I reset my password?", {"account/resetting-your-password.md"}),
    (
        "I forgot my password and the reset email never arrived",
        {"account/resetting-your-password.md"},
    ),
    (
        "I was charged twice this month",
        {"billing/billing-and-invoices.md", "billing/refund-policy.md"},
    ),
    ("Can I get a refund on my annual plan?", {"billing/refund-policy.md"}),
    ("How do I cancel my subscription?", {"billing/cancelling-your-subscription.md"}),
    ("I lost my phone and can't get my 2FA code", {"account/two-factor-authentication.md"}),
    ("How do I create an API key?", {"developers/api-keys.md"}),
    ("What happens when I hit the API rate limit?", {"developers/rate-limits.md"}),
    ("Do you retry failed webhook deliveries?", {"developers/webhooks.html"}),
    ("How do I set up SAML single sign-on with Okta?", {"security/single-sign-on.html"}),
    ("How can I export all my data?", {"account/exporting-your-data.md"}),
    ("Is Acme Cloud down right now?", {"status-and-outages.md"}),
    ("How do I downgrade from Business to the Team plan?", {"billing/changing-your-plan.md"}),
    ("Where can I download my invoices?", {"billing/billing-and-invoices.md"}),
    ("What are your support hours?", {"contacting-support.md"}),
    ("How do I invite people to my workspace?", {"getting-started.md"}),
]

OFF_TOPIC = [
    "what's the weather on mars",
    "recommend a good pasta recipe",
    "who won the football world cup in 2022",
    "how tall is mount everest",
    "write me a poem about the ocean",
    # sharing an incidental word with the help center ("plan", "new", "team") is not enough
    "how do I plan a wedding",
    "best pizza in new york",
    "what time does the team meeting start in tokyo",
]


async def test_the_right_article_comes_first(example_kb: KnowledgeBase) -> None:
    wrong = []
    for question, expected in QUESTIONS:
        passages = await example_kb.search(question)
        top = passages[0] if passages else None
        if top is None or top.source not in expected or top.score < 0.5:
            wrong.append((question, top and (top.source, top.heading, top.score)))
    assert wrong == []


async def test_off_topic_questions_score_low(example_kb: KnowledgeBase) -> None:
    on_topic = [(await example_kb.search(q, limit=1))[0].score for q, _ in QUESTIONS]
    for question in OFF_TOPIC:
        passages = await example_kb.search(question, limit=1)
        best = passages[0].score if passages else 0.0
        assert best < 0.35, (question, passages)
        assert best < min(on_topic) - 0.15, question


async def test_passage_carries_a_citation(example_kb: KnowledgeBase) -> None:
    [p] = await example_kb.search("webhook signature verification", limit=1)
    assert isinstance(p, Passage)
    assert p.source == "developers/webhooks.html"
    assert p.title == "Webhooks"
    assert p.heading == "Webhooks › Verify the signature"
    assert "HMAC-SHA256" in p.text
    assert p.chunk_id and p.document_id and p.chunk_id.startswith(p.document_id)
    assert "Acme-Signature" in snippet(p.text, "signature header")


async def test_scores_rank_the_whole_question_above_a_part(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    (tmp_path / "a.md").write_text("# Refunds\n\nRefunds for annual plans within 30 days.\n")
    (tmp_path / "b.md").write_text("# Plans\n\nThe annual plan saves 17 percent.\n")
    (tmp_path / "c.md").write_text("# Security\n\nTurn on two-factor authentication.\n")
    await kb.ingest([tmp_path])
    results = await kb.search("refund for my annual plan")
    assert [p.source for p in results] == ["a.md", "b.md"]
    assert results[0].score > results[1].score
    assert await kb.count_chunks() == 3


async def test_search_works_without_the_stored_chunk_total(
    kb: KnowledgeBase, kb_db: Database, tmp_path: Path
) -> None:
    """An index written before the total was kept falls back to counting the chunks."""
    from sqlalchemy import delete

    from bot.store.schema import kb_terms

    (tmp_path / "a.md").write_text("# Refunds\n\nRefunds for annual plans within 30 days.\n")
    await kb.ingest([tmp_path])
    before = await kb.search("refund annual")
    async with kb_db.tx() as conn:
        await conn.execute(delete(kb_terms).where(kb_terms.c.term == ""))
    assert await kb.search("refund annual") == before


async def test_another_replicas_change_reaches_the_index(
    kb: KnowledgeBase, kb_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica's own writes show at once; another replica's once the recheck interval is up."""
    from bot.knowledge import base

    (tmp_path / "a.md").write_text("# Refunds\n\nRefunds for annual plans within 30 days.\n")
    await kb.ingest([tmp_path])
    assert [p.source for p in await kb.search("okta single sign-on")] == []
    (tmp_path / "b.md").write_text("# Single sign-on\n\nConnect Okta with SAML.\n")
    other = KnowledgeBase(kb_db, kb.settings)
    await other.ingest([tmp_path])
    assert [p.source for p in await other.search("okta single sign-on")] == ["b.md"]
    monkeypatch.setattr(base, "INDEX_RECHECK_SECONDS", 0.0)
    assert [p.source for p in await kb.search("okta single sign-on")] == ["b.md"]
    (tmp_path / "b.md").unlink()
    await other.ingest([tmp_path])
    assert await kb.search("okta single sign-on") == []


def test_the_index_does_not_depend_on_the_order_chunks_arrive_in() -> None:
    """PostgreSQL and SQLite may return rows in different orders (text collation): equal
    scores must still break the same way."""
    from bot.knowledge.index import ChunkRecord, SearchIndex

    records = [
        ChunkRecord(
            i, f"doc_{name}", 0, "Exports", "Exports", "Export your data as CSV.", f"{name}.md", "h"
        )
        for i, name in enumerate(["b", "A", "a", "_x", "0"])
    ]
    forward = SearchIndex(records).search("export csv")
    backward = SearchIndex(list(reversed(records))).search("export csv")
    assert [h.chunk.source for h in forward] == [h.chunk.source for h in backward]
    assert [h.chunk.source for h in forward] == ["0.md", "A.md", "_x.md", "a.md", "b.md"]


async def test_the_section_quoted_is_the_one_whose_heading_names_the_question(
    example_kb: KnowledgeBase,
) -> None:
    [hit] = await example_kb.search("How do I reset my password?", limit=1)
    assert hit.heading == "Resetting your password › Reset a forgotten password"
    [hit] = await example_kb.search("how do I change my password while signed in", limit=1)
    assert hit.heading == "Resetting your password › Change your password while signed in"


async def test_a_how_to_question_quotes_the_section_with_the_steps(
    example_kb: KnowledgeBase,
) -> None:
    """"How do I cancel?" wants the numbered steps of "Cancel a paid plan", not the short
    "Undo a cancellation" that length normalisation favours; a question that is not a how-to
    keeps the plain choice."""
    for question in ("How do I cancel my subscription?", "how can i cancel my subscripton",
                     "Wie kann ich mein subscription cancel?"):
        [hit] = await example_kb.search(question, limit=1)
        assert hit.heading == "Cancelling your subscription › Cancel a paid plan", question
    [hit] = await example_kb.search("undo a cancellation", limit=1)
    assert hit.heading == "Cancelling your subscription › Undo a cancellation"
