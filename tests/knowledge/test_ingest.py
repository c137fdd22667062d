"""Ingesting files into the index on SQLite and PostgreSQL: file types, idempotence, changes,
removals."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.knowledge import IngestReport, KnowledgeBase
from bot.knowledge import base as kb_module
from bot.knowledge.documents import ParsedDocument
from bot.store.database import Database
from bot.store.schema import kb_chunks, kb_documents, kb_terms
from tests.knowledge.pdf import minimal_pdf


def _write_tree(root: Path) -> None:
    (root / "billing").mkdir(parents=True)
    (root / "billing" / "refunds.md").write_text(
        "# Billing\n\n## Refunds\n\nAnnual plans are refunded within 30 days.\n\n"
        "## Invoices\n\nInvoices are emailed to the billing contact.\n",
        encoding="utf-8",
    )
    (root / "sso.html").write_text(
        "<html><head><title>SSO</title></head><body><h1>Single sign-on</h1>"
        "<h2>Okta</h2><p>Create a SAML app in Okta.</p></body></html>",
        encoding="utf-8",
    )
    (root / "notes.txt").write_text("Office hours are nine to five on weekdays.", encoding="utf-8")
    (root / "manual.pdf").write_bytes(
        minimal_pdf(["Webhooks retry for three days."], title="Manual")
    )
    (root / "logo.png").write_bytes(b"\x89PNG not a document")  # ignored: not a document type
    (root / ".hidden.md").write_text("# Secret draft", encoding="utf-8")  # ignored: hidden


async def _rows(db: Database) -> tuple[int, int]:
    async with db.read() as conn:
        docs = (await conn.execute(select(func.count()).select_from(kb_documents))).scalar_one()
        chunks = (await conn.execute(select(func.count()).select_from(kb_chunks))).scalar_one()
    return docs, chunks


async def _assert_statistics_match(db: Database) -> None:
    """The term statistics equal a recount from the chunks (and hold the total under "")."""
    async with db.read() as conn:
        stored = dict((await conn.execute(select(kb_terms.c.term, kb_terms.c.chunks))).all())
        recount: dict[str, int] = {}
        chunks = (await conn.execute(select(kb_chunks.c.terms))).scalars().all()
    for terms in chunks:
        for term in terms.split():
            recount[term] = recount.get(term, 0) + 1
    if chunks:
        recount[""] = len(chunks)
    assert stored == recount


async def _chunk_ids(db: Database) -> set[int]:
    async with db.read() as conn:
        return set((await conn.execute(select(kb_chunks.c.id))).scalars())


async def test_every_file_type_is_ingested_with_sources_relative_to_the_root(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    root = tmp_path / "kb"
    _write_tree(root)
    report = await kb.ingest([root])
    assert (report.added, report.updated, report.unchanged, report.removed) == (4, 0, 0, 0)
    assert report.chunks == await kb.count_chunks() == 5

    by_source = {
        p.source: p
        for q in ("refunded", "Okta", "weekdays", "webhooks")
        for p in await kb.search(q)
    }
    assert set(by_source) == {"billing/refunds.md", "sso.html", "notes.txt", "manual.pdf"}
    assert by_source["billing/refunds.md"].heading == "Billing › Refunds"
    assert by_source["billing/refunds.md"].title == "Billing"
    assert by_source["sso.html"].heading == "Single sign-on › Okta"
    assert by_source["sso.html"].title == "SSO"
    assert by_source["notes.txt"].text == "Office hours are nine to five on weekdays."
    assert by_source["manual.pdf"].heading == "Manual › page 1"
    assert by_source["manual.pdf"].text == "Webhooks retry for three days."


async def test_reingest_is_idempotent(kb: KnowledgeBase, kb_db: Database, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    _write_tree(root)
    first = await kb.ingest([root])
    ids = await _chunk_ids(kb_db)
    async with kb_db.read() as conn:
        terms_before = dict((await conn.execute(select(kb_terms.c.term, kb_terms.c.chunks))).all())
    again = await kb.ingest([root])
    assert again == IngestReport(added=0, updated=0, unchanged=4, removed=0, chunks=first.chunks)
    assert await _chunk_ids(kb_db) == ids  # nothing rewritten
    async with kb_db.read() as conn:
        terms_after = dict((await conn.execute(select(kb_terms.c.term, kb_terms.c.chunks))).all())
    assert terms_after == terms_before
    # Same files reached through a file path and the directory at once: still unchanged.
    both = await kb.ingest([root / "notes.txt", root])
    assert (both.added, both.updated, both.unchanged) == (0, 0, 4)


async def test_a_changed_file_has_its_chunks_replaced(
    kb: KnowledgeBase, kb_db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "kb"
    _write_tree(root)
    await kb.ingest([root])
    assert await kb.search("refunded")

    (root / "billing" / "refunds.md").write_text(
        "# Billing\n\n## Cancellations\n\nCancel from the billing page at any time.\n",
        encoding="utf-8",
    )
    report = await kb.ingest([root])
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 1, 3, 0)
    assert await kb.search("refunded") == []
    [hit] = await kb.search("cancel", limit=1)
    assert hit.heading == "Billing › Cancellations"
    assert await _rows(kb_db) == (4, 4)
    async with kb_db.read() as conn:
        refund_df = (
            await conn.execute(select(kb_terms.c.chunks).where(kb_terms.c.term == "refund"))
        ).scalar_one_or_none()
    assert refund_df is None  # term statistics follow the content
    await _assert_statistics_match(kb_db)


async def test_a_removed_file_loses_its_document(
    kb: KnowledgeBase, kb_db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "kb"
    _write_tree(root)
    await kb.ingest([root])
    (root / "sso.html").unlink()
    (root / "manual.pdf").unlink()
    report = await kb.ingest([root])
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 0, 2, 2)
    assert await kb.search("Okta") == []
    assert await kb.search("webhooks") == []
    assert await _rows(kb_db) == (2, 3)
    await _assert_statistics_match(kb_db)


async def test_a_removed_directory_or_file_path_loses_its_documents(
    kb: KnowledgeBase, kb_db: Database, tmp_path: Path
) -> None:
    root = tmp_path / "kb"
    _write_tree(root)
    await kb.ingest([root])
    (root / "billing" / "refunds.md").unlink()
    (root / "billing").rmdir()
    report = await kb.ingest([root / "billing"])  # the path is gone, but it held documents
    assert report.removed == 1
    notes = root / "notes.txt"
    await kb.ingest([notes])
    notes.unlink()
    assert (await kb.ingest([notes])).removed == 1
    assert await _rows(kb_db) == (2, 2)
    await _assert_statistics_match(kb_db)


async def test_a_path_that_never_existed_is_an_error_and_changes_nothing(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    (tmp_path / "a.md").write_text("# A\n\ntext", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="nope"):
        await kb.ingest([tmp_path, tmp_path / "nope"])
    assert await kb.count_chunks() == 0


async def test_an_unreadable_file_is_skipped_and_the_rest_ingested(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (tmp_path / "good.md").write_text("# Good\n\nA readable article.", encoding="utf-8")
    report = await kb.ingest([tmp_path])
    assert (report.added, report.skipped) == (1, 1)


async def test_chunk_size_setting_applies_and_a_new_size_rechunks(
    kb_db: Database, tmp_path: Path
) -> None:
    from bot.config import KnowledgeSettings

    body = "\n\n".join(f"Paragraph {i} about invoices and refunds. " * 3 for i in range(20))
    (tmp_path / "long.md").write_text(f"# Long\n\n{body}\n", encoding="utf-8")
    small = await KnowledgeBase(kb_db, KnowledgeSettings(chunk_chars=200)).ingest([tmp_path])
    large = await KnowledgeBase(kb_db, KnowledgeSettings(chunk_chars=2000)).ingest([tmp_path])
    assert small.chunks > large.chunks > 1
    assert large.updated == 1


async def test_files_are_parsed_off_the_event_loop(
    kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real_parse = kb_module.parse

    def recording_parse(path: Path, data: bytes) -> ParsedDocument:
        threads.append(threading.current_thread())
        return real_parse(path, data)

    monkeypatch.setattr(kb_module, "parse", recording_parse)
    (tmp_path / "a.md").write_text("# A\n\ntext", encoding="utf-8")
    await kb.ingest([tmp_path])
    assert threads and all(t is not threading.main_thread() for t in threads)


async def test_concurrent_ingests_of_the_same_files_agree(
    kb: KnowledgeBase, kb_db: Database, tmp_path: Path
) -> None:
    """Replicas starting together ingest the same paths at once: no duplicates, no errors."""
    root = tmp_path / "kb"
    _write_tree(root)
    other = KnowledgeBase(kb_db, kb.settings)
    reports = await asyncio.gather(kb.ingest([root]), other.ingest([root]), kb.ingest([root]))
    assert all(r.added + r.updated + r.unchanged == 4 for r in reports)
    assert sum(r.added for r in reports) == 4
    assert await _rows(kb_db) == (4, 5)
    async with kb_db.read() as conn:
        counts = dict((await conn.execute(select(kb_terms.c.term, kb_terms.c.chunks))).all())
    assert counts["okta"] == 1 and counts["refund"] == 1
    await _assert_statistics_match(kb_db)
