"""The daemon does not wait for the model: chunk vectors are embedded in the background.

The embeddings backend is the scripted OpenAI-compatible server over real HTTP, holding each
request until the test lets it through (a model as slow as the test wants); the daemon is the
real application with the real engine (offline responder) and the web connector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import launcher
from bot.knowledge import backfill
from bot.store.schema import kb_chunks, kb_embeddings
from tests.conftest import make_settings
from tests.fakes.model_server import ScriptedModelServer, concept_vectors
from tests.http.harness import Daemon, ask, json_call, running, session
from tests.knowledge.test_hybrid import CONCEPTS, DOCUMENTS, count, embedded_inputs

# Shares no word with the refunds article nor with the keyword side's table of phrasings: only
# the dense side finds it.
PARAPHRASE = "will you give back what I paid?"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "help"
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text)
    return folder


def knowledge(server: ScriptedModelServer, docs: Path) -> dict[str, Any]:
    return {
        "paths": [str(docs)],
        "chunk_chars": 200,
        "embeddings": {
            "backend": "openai",
            "base_url": server.url,
            "api_key": "sk-embed",
            "model": "scripted-embedding",
            "max_retries": 0,
        },
    }


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the background worker to get somewhere (the test's timeout ends a hang)."""
    while not condition():
        await asyncio.sleep(0.01)


async def vectors(daemon: Daemon) -> dict[str, Any]:
    async with daemon.client() as client:
        health = await json_call(client, "GET", "/healthz")
    assert health["status"] == "ok"
    progress: dict[str, Any] = health["knowledge"]["vectors"]
    return progress


async def test_the_daemon_answers_by_keywords_while_the_vectors_are_embedded(
    db_url: str, docs: Path
) -> None:
    async with ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as server:
        server.hold_embeddings()  # not one vector until the test says so
        async with running(db_url, real_engine=True, knowledge=knowledge(server, docs)) as daemon:
            await until(lambda: len(server.embedding_requests) == 1)
            assert await vectors(daemon) == {
                "state": "embedding", "model": "scripted-embedding", "embedded": 0, "chunks": 6,
            }
            async with daemon.client() as visitor:
                await session(visitor)
                conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
                answer = await ask(visitor, conversation["id"], "Can I get a refund within 30 days?")
            assert "30 days" in answer["output_text"]
            assert "refunds.md" in answer["output_text"]
            # By keywords: the question was never sent to the model, and nothing is stored yet.
            assert server.embeddings_answered == 0
            assert len(server.embedding_requests) == 1
            assert await count(daemon.app.db, kb_embeddings) == 0
            await server.release_embeddings()


async def test_search_turns_hybrid_once_every_chunk_has_its_vector(
    db_url: str, docs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.knowledge.backfill")
    async with ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as server:
        server.hold_embeddings()
        async with running(db_url, real_engine=True, knowledge=knowledge(server, docs)) as daemon:
            kb = daemon.app.knowledge_sync.kb
            assert daemon.app.vectors is not None
            found = await kb.search(PARAPHRASE)
            assert not any(p.source == "refunds.md" for p in found)  # keywords only

            await server.release_embeddings()
            await daemon.app.vectors.settled()
            assert await vectors(daemon) == {
                "state": "ready", "model": "scripted-embedding", "embedded": 6, "chunks": 6,
            }
            async with daemon.client() as visitor:
                await session(visitor)
                conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
                answer = await ask(visitor, conversation["id"], PARAPHRASE)
            assert "refunds.md" in answer["output_text"]  # found by meaning, through a turn
            assert embedded_inputs(server)[-1] == PARAPHRASE
    assert "embedding started: 6 of 6 chunks with scripted-embedding" in caplog.text
    assert "embedding finished: 6 chunks in" in caplog.text


async def test_a_restart_keeps_the_vectors_finished_before_it(
    db_url: str, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "BATCH", 2)  # six chunks: three batches
    async with ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as server:
        server.hold_embeddings()
        async with running(db_url, real_engine=True, knowledge=knowledge(server, docs)) as daemon:
            await server.release_embeddings(1)
            await until(lambda: len(server.embedding_requests) == 2)  # the second batch waits
            assert (await vectors(daemon))["embedded"] == 2
        first = embedded_inputs(server)

        await server.release_embeddings()
        async with running(db_url, real_engine=True, knowledge=knowledge(server, docs)) as daemon:
            assert daemon.app.vectors is not None
            await daemon.app.vectors.settled()
            again = embedded_inputs(server, since=2)
            assert await count(daemon.app.db, kb_embeddings) == 6
    assert len(again) == 4  # only what the first run had not finished
    assert not set(again) & set(first[:2])


async def test_a_stop_in_the_middle_of_a_batch_stores_none_of_it(
    db_url: str, docs: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.knowledge.backfill")
    monkeypatch.setattr(backfill, "BATCH", 4)
    async with ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as server:
        server.hold_embeddings()
        async with running(db_url, real_engine=True, knowledge=knowledge(server, docs)) as daemon:
            await server.release_embeddings(1)
            await until(lambda: len(server.embedding_requests) == 2)
            worker = daemon.app.vectors
            assert worker is not None
        # Stopped (no hang) while the second batch was with the model: the first is stored
        # whole, nothing of the second.
        assert worker.progress.embedded == 4
        await server.release_embeddings()
        async with running(db_url, knowledge=knowledge(server, docs)) as again:
            async with again.app.db.read() as conn:
                rows = (await conn.execute(select(kb_embeddings))).all()
            chunks = await count(again.app.db, kb_chunks)
    assert chunks == 6
    assert len(rows) in (4, 6)  # the second start may have finished already
    assert "embedding stopped at 4 of 6 chunks" in caplog.text
    assert all(len(row.vector) == 4 * row.dimensions for row in rows)


async def test_a_sync_at_run_time_embeds_in_the_background_too(
    db_url: str, docs: Path
) -> None:
    async with (
        ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as server,
        running(db_url, real_engine=True, knowledge=knowledge(server, docs)) as daemon,
    ):
        assert daemon.app.vectors is not None
        await daemon.app.vectors.settled()
        server.hold_embeddings()
        before = len(server.embedding_requests)
        text = (docs / "invoices.md").read_text()
        (docs / "invoices.md").write_text(text.replace("under Billing, Invoices", "in Settings"))

        sync = daemon.app.knowledge_sync
        report = await sync.sync_source(sync.sources[0].name)
        assert report.updated == 1  # returned with the model still holding the vector
        await until(lambda: len(server.embedding_requests) == before + 1)
        assert await vectors(daemon) == {
            "state": "embedding", "model": "scripted-embedding", "embedded": 5, "chunks": 6,
        }
        await server.release_embeddings()
        await daemon.app.vectors.settled()
        assert (await vectors(daemon))["state"] == "ready"
        changed = embedded_inputs(server, before)
    assert len(changed) == 1 and "in Settings" in changed[0]


async def test_a_one_off_command_waits_for_the_vectors(sqlite_url: str, docs: Path) -> None:
    """``triage --once``, ``chat``, ``simulate``, ``eval``: their first turn is hybrid."""
    async with ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as server:
        settings = make_settings(sqlite_url, knowledge=knowledge(server, docs))
        async with launcher()(settings) as daemon:
            assert daemon.vectors is not None
            assert daemon.vectors.progress.state == "ready"
            assert await count(daemon.store.db, kb_embeddings) == 6
            [first, *_] = await daemon.knowledge_sync.kb.search(PARAPHRASE)
    assert first.source == "refunds.md"


async def test_a_failing_backend_is_reported_and_retried(
    db_url: str, docs: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backfill, "RETRY_SECONDS", 0.05)
    async with ScriptedModelServer(embed=concept_vectors(CONCEPTS)) as server:
        server.fail_embeddings(503, times=1)
        async with running(db_url, real_engine=True, knowledge=knowledge(server, docs)) as daemon:
            worker = daemon.app.vectors
            assert worker is not None
            failed = await worker.settled()
            assert failed.state == "failed" and "503" in (failed.error or "")
            await until(lambda: worker.progress.state == "ready")
            assert await count(daemon.app.db, kb_embeddings) == 6
    assert "embedding stopped, retrying" in caplog.text
    assert "sk-embed" not in caplog.text
