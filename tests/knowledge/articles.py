"""Small synthetic help centers for ranking tests: articles as (title, [(heading, text)]) per
document id, indexed the way ``KnowledgeBase`` indexes chunks."""

from __future__ import annotations

from bot.knowledge.index import ChunkRecord, SearchIndex

Articles = dict[str, tuple[str, list[tuple[str, str]]]]


def build_index(articles: Articles) -> SearchIndex:
    chunks = []
    for document_id, (title, sections) in articles.items():
        for seq, (heading, text) in enumerate(sections):
            chunks.append(
                ChunkRecord(
                    id=len(chunks) + 1,
                    document_id=document_id,
                    seq=seq,
                    title=title,
                    heading=f"{title} › {heading}",
                    text=text,
                    source=f"{document_id}.md",
                    content_hash="0" * 16,
                )
            )
    return SearchIndex(chunks)


def first(index: SearchIndex, question: str) -> str:
    """The document the search ranks first for ``question``."""
    return index.search(question, limit=5)[0].chunk.document_id
