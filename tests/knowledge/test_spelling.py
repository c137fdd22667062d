"""Typos read against the knowledge base's vocabulary (``bot.knowledge.spelling``): a real word
of the language is no typo of a knowledge base word one letter away, and the dense side embeds
the question as the keyword side corrected it."""

from __future__ import annotations

from pathlib import Path

from bot.knowledge import KnowledgeBase, spelling
from bot.knowledge.index import ChunkRecord, SearchIndex
from bot.store.database import Database
from tests.fakes.model_server import ScriptedModelServer, concept_vectors
from tests.knowledge.test_hybrid import embedded_inputs, hybrid_settings


def _index(articles: dict[str, str]) -> SearchIndex:
    chunks = []
    for n, (title, text) in enumerate(articles.items()):
        chunks.append(ChunkRecord(f"c{n}", f"doc{n}", 0, title, title, text, f"{n}.md", f"h{n}"))
    return SearchIndex(chunks)


BROADBAND = {
    "Bring your own router": "You can use your own router instead of ours. Set it to DHCP and "
    "plug it into the wall socket; normal speeds return within a minute.",
    "Call-back requests": "Ask for a call back from the installation team in the app; they "
    "phone you within a working day.",
    "Cancelling your contract": "You can cancel your broadband contract with 30 days' notice.",
    "Password help": "Reset your password from the sign-in page.",
}


def test_a_real_word_is_not_corrected_for_the_dense_side() -> None:
    """The keyword side reads "ring" as a typo of "bring" (``spelling``'s docstring says why it
    keeps doing so); the text the model embeds keeps the customer's word."""
    index = _index(BROADBAND)
    for question, word in [
        ("can someone ring me back about the installation", "ring"),  # not "bring"
        ("I wish to make a formal complaint", "formal"),  # not "normal"
    ]:
        assert index.typo_correction(word, "en") is None
        assert spelling.corrected(index, question) == question


def test_a_misspelt_word_is_corrected_in_the_customers_text() -> None:
    index = _index(BROADBAND)
    assert index.typo_correction("cancle", "en") == "cancel"
    assert spelling.corrected(index, "how do i cancle my broadband?") == (
        "how do i cancel my broadband?"
    )
    assert spelling.corrected(index, "forgot my Pasword, cant log in") == (
        "forgot my password, cant log in"
    )
    # A question in a language no article is written in has foreign words, not typos.
    assert spelling.corrected(index, "Wie kann ich kündigen") == "Wie kann ich kündigen"


def test_only_a_language_with_a_lexicon_keeps_its_words() -> None:
    assert spelling.is_word("formal", "en")
    assert not spelling.is_word("cancle", "en")
    assert not spelling.is_word("formal", "xx")


async def test_the_dense_side_embeds_the_question_with_its_typos_corrected(
    kb_db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "help"
    folder.mkdir()
    for title, text in BROADBAND.items():
        (folder / f"{title.lower().replace(' ', '-')}.md").write_text(f"# {title}\n\n{text}\n")
    concepts = {"cancel": ["cancel"], "password": ["password"]}
    async with ScriptedModelServer(embed=concept_vectors(concepts)) as fake:
        kb = KnowledgeBase(kb_db, hybrid_settings(fake))
        try:
            await kb.ingest([folder])
            since = len(fake.embedding_requests)
            [first, *_] = await kb.search("how do i cancle my broadband")
            assert first.title == "Cancelling your contract"
            assert embedded_inputs(fake, since) == ["how do i cancel my broadband"]
            since = len(fake.embedding_requests)
            await kb.search("can someone ring me back")
            assert embedded_inputs(fake, since) == ["can someone ring me back"]
            # The corrected text is what is cached: asked again, nothing is embedded.
            since = len(fake.embedding_requests)
            await kb.search("how do i cancel my broadband")
            assert embedded_inputs(fake, since) == []
        finally:
            await kb.aclose()
