"""Knowledge base: ingest documents (Markdown, HTML, text, PDF), index them in SQLite FTS5 or
PostgreSQL full text, and search them with a 0..1 confidence score and citations."""

from bot.knowledge.base import IngestReport, KnowledgeBase, Passage
from bot.knowledge.search_text import snippet

__all__ = ["IngestReport", "KnowledgeBase", "Passage", "snippet"]
