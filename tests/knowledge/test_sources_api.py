"""Knowledge sources through the daemon: the operator API (``/v1/knowledge``), the answer to a
question from a synced help center citing the article's URL, the same passages as from the
same articles saved as files, a sync schedule in ``serve``, and the settings."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import KnowledgeSettings, Settings
from bot.domain import new_id
from bot.knowledge import KnowledgeBase
from bot.knowledge.jobs import LEASE_SECONDS, PREFIX, SyncJobs
from bot.knowledge.sync import KnowledgeSync
from bot.store.database import Database
from bot.store.schema import cursors
from tests.conftest import make_settings
from tests.fakes.intercom import FakeIntercom
from tests.http.harness import ask, json_call, running, session

ARTICLES = {
    "Refunds": "<p>Annual plans are refunded within 30 days of purchase.</p>"
               "<h2>Partial refunds</h2><p>Monthly plans get a prorated refund for unused days."
               "</p>",
    "Single sign-on": "<h2>Okta</h2><p>Create a SAML application in Okta, then paste its "
                      "metadata URL into Settings.</p>",
    "Webhooks": "<p>Failed webhook deliveries are retried for three days.</p>",
}
QUESTIONS = [
    "how long do I have to get a refund on an annual plan",
    "do monthly plans get a prorated refund",
    "how do I set up Okta SAML",
    "how long are failed webhooks retried",
]


@pytest.fixture
async def help_center() -> AsyncIterator[FakeIntercom]:
    fake = FakeIntercom()
    await fake.start()
    for title, body in ARTICLES.items():
        fake.add_article(title, body)
    fake.add_article("Launch plans", "<p>Secret code LAUNCH50.</p>", state="draft")
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        pytest.fail("requests that violate Intercom's spec:\n" + "\n".join(fake.violations))


def _sources(fake: FakeIntercom) -> dict[str, object]:
    return {"sources": [{"name": "help", "kind": "intercom"}]}


async def test_operator_api_syncs_lists_shows_and_removes(
    sqlite_url: str, help_center: FakeIntercom
) -> None:
    async with running(
        sqlite_url,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge=_sources(help_center),
    ) as daemon, daemon.admin() as admin, daemon.client() as nobody:
        await json_call(nobody, "POST", "/v1/knowledge/sync", expect=401)
        synced = await sync_job(admin, {"source": "help"})
        assert (synced["status"], synced["source"], synced["error"]) == ("succeeded", "help", None)
        # help centers, collections, articles: one page each
        assert synced["sources"] == [{"source": "help", "kind": "intercom", "added": 3,
                                      "updated": 0, "removed": 0, "unchanged": 0,
                                      "requests": 3, "error": None}]
        assert synced["finished_at"] >= synced["started_at"] >= synced["created_at"]
        await json_call(nobody, "GET", f"/v1/knowledge/sync/{synced['id']}", expect=401)
        await json_call(admin, "GET", "/v1/knowledge/sync/ksync_" + "0" * 32, expect=404)
        await json_call(admin, "GET", "/v1/knowledge/sync/nonsense", expect=404)
        await json_call(admin, "POST", "/v1/knowledge/sync", json={"source": "nope"}, expect=404)
        await json_call(admin, "POST", "/v1/knowledge/sync", json={"sources": "help"}, expect=400)

        listed = await json_call(admin, "GET", "/v1/knowledge/documents?source=help")
        by_title = {d["title"]: d for d in listed["data"]}
        assert set(by_title) == set(ARTICLES)  # the draft never
        refunds = by_title["Refunds"]
        assert refunds["url"].startswith(help_center.help_center_url + "/en/articles/")
        assert refunds["chunks"] >= 1 and refunds["source"] == "help"

        shown = await json_call(admin, "GET", f"/v1/knowledge/documents/{refunds['id']}")
        assert any("prorated refund" in c["text"] for c in shown["content"])

        await json_call(admin, "DELETE", f"/v1/knowledge/documents/{refunds['id']}")
        await json_call(admin, "GET", f"/v1/knowledge/documents/{refunds['id']}", expect=404)
        await json_call(admin, "DELETE", f"/v1/knowledge/documents/{refunds['id']}", expect=404)
        listed = await json_call(admin, "GET", "/v1/knowledge/documents")
        assert "Refunds" not in {d["title"] for d in listed["data"]}


async def sync_job(admin: aiohttp.ClientSession, body: dict[str, object]) -> dict[str, Any]:
    """Start a sync job (202, its record at ``Location``) and poll it until it is done."""
    async with admin.post("/v1/knowledge/sync", json=body) as response:
        assert response.status == 202, await response.text()
        job = await response.json()
        location = response.headers["Location"]
    assert location == f"/v1/knowledge/sync/{job['id']}" and job["status"] in ("queued", "running")
    for _ in range(200):
        job = await json_call(admin, "GET", location)
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the sync job never finished: {job}")


async def test_the_sync_job_answers_at_once_and_reports_a_failed_source(
    sqlite_url: str, help_center: FakeIntercom
) -> None:
    help_center.stall("GET", "/articles", seconds=3.0)
    async with running(
        sqlite_url,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge={"sources": [{"name": "help", "kind": "intercom"},
                               {"name": "site", "kind": "urls", "max_retries": 0,
                                "urls": ["http://127.0.0.1:9/never"]}]},
    ) as daemon, daemon.admin() as admin:
        started = time.monotonic()
        first, twin = await asyncio.gather(  # two at once: one job
            json_call(admin, "POST", "/v1/knowledge/sync", json={}, expect=202),
            json_call(admin, "POST", "/v1/knowledge/sync", json={}, expect=202),
        )
        assert time.monotonic() - started < 2.5  # not held open for the stalled Intercom call
        again = await json_call(admin, "POST", "/v1/knowledge/sync", expect=202)
        assert first["id"] == twin["id"] == again["id"]  # the job running for all sources
        job = await daemon.app.knowledge_jobs.wait(first["id"])
        assert job is not None
        polled = await json_call(admin, "GET", f"/v1/knowledge/sync/{first['id']}")
    assert polled == job.as_json()
    assert (polled["status"], polled["error"]) == ("failed", "failed: site")
    help_report, site_report = polled["sources"]
    assert (help_report["added"], help_report["error"]) == (3, None)  # applied all the same
    assert site_report["error"].startswith("GET http://127.0.0.1:9/")


@pytest.mark.postgres
async def test_a_job_skips_a_source_whose_lock_a_schedule_holds(
    pg_url: str, help_center: FakeIntercom
) -> None:
    async with running(
        pg_url,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge={"sources": [{"name": "help", "kind": "intercom", "interval_seconds": 3600}]},
    ) as daemon, daemon.admin() as admin:
        # What a tick of the source's schedule holds while it syncs (on another replica, say).
        async with daemon.app.store.exclusive("supportbot:knowledge:help") as held:
            assert held
            busy = await sync_job(admin, {"source": "help"})
        assert busy["status"] == "failed" and "already running" in busy["sources"][0]["error"]
        assert help_center.calls("GET", "/articles") == []
        done = await sync_job(admin, {"source": "help"})
    assert done["status"] == "succeeded" and done["sources"][0]["added"] == 3


async def test_an_answer_from_the_help_center_cites_the_article_url(
    sqlite_url: str, help_center: FakeIntercom
) -> None:
    async with running(
        sqlite_url,
        real_engine=True,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge=_sources(help_center),
    ) as daemon:
        (report,) = await daemon.app.knowledge_sync.sync()
        assert report.added == 3
        refunds_url = next(
            a["url"] for a in help_center.articles.values() if a["title"] == "Refunds"
        )
        async with daemon.client() as visitor:
            await session(visitor)
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            answer = await ask(visitor, conversation["id"], QUESTIONS[0])
        assert "30 days" in answer["output_text"]
        assert answer["citations"] and {c["url"] for c in answer["citations"]} == {refunds_url}


async def test_the_same_questions_find_the_same_passages_as_the_same_files(
    db_url: str, help_center: FakeIntercom, kb_db: Database, tmp_path: Path
) -> None:
    knowledge = KnowledgeSettings(chunk_chars=400)
    synced = KnowledgeBase(kb_db, knowledge)
    settings = make_settings(
        db_url,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge={"chunk_chars": 400, **_sources(help_center)},
    )
    await KnowledgeSync(synced, settings).sync()
    found_synced = {q: await synced.search(q, limit=1) for q in QUESTIONS}
    async with kb_db.tx() as conn:  # the same index, now from files only
        await conn.exec_driver_sql("DELETE FROM kb_chunks")
        await conn.exec_driver_sql("DELETE FROM kb_terms")
        await conn.exec_driver_sql("DELETE FROM kb_documents")
    for title, body in ARTICLES.items():
        (tmp_path / f"{title}.html").write_text(f"<h1>{title}</h1>{body}", encoding="utf-8")
    await synced.ingest([tmp_path])
    for question in QUESTIONS:
        (from_files,) = await synced.search(question, limit=1)
        (from_help_center,) = found_synced[question]
        assert (from_help_center.title, from_help_center.heading, from_help_center.text) == (
            from_files.title, from_files.heading, from_files.text
        )
        assert from_help_center.source.startswith(help_center.help_center_url)


async def _answers(daemon: Any) -> list[dict[str, Any]]:
    async with daemon.client() as visitor:
        await session(visitor)
        answers = []
        for question in QUESTIONS:
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            answers.append(await ask(visitor, conversation["id"], question))
    return answers


async def test_the_same_questions_get_the_same_answers_as_from_the_same_files(
    sqlite_url: str, help_center: FakeIntercom, tmp_path: Path
) -> None:
    """The whole answer, not only the passage: the same text from the help center as from
    the articles saved as files, the citation aside (the article's URL, the file's name)."""
    async with running(
        sqlite_url,
        real_engine=True,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge=_sources(help_center),
    ) as daemon:
        (report,) = await daemon.app.knowledge_sync.sync()
        assert report.added == len(ARTICLES)
        from_help_center = await _answers(daemon)
    urls = {a["title"]: a["url"] for a in help_center.articles.values()}

    files = tmp_path / "articles"
    files.mkdir()
    for title, body in ARTICLES.items():
        (files / f"{title}.html").write_text(f"<h1>{title}</h1>{body}", encoding="utf-8")
    async with running(
        f"sqlite+aiosqlite:///{tmp_path / 'files.db'}",
        real_engine=True,
        knowledge={"sources": [{"name": "docs", "kind": "files", "paths": [str(files)]}]},
    ) as daemon:  # files sources sync at start
        from_files = await _answers(daemon)

    for question, synced, local in zip(QUESTIONS, from_help_center, from_files, strict=True):
        assert synced["citations"] and local["citations"], question
        synced_text, local_text = synced["output_text"], local["output_text"]
        for s_cite, l_cite in zip(synced["citations"], local["citations"], strict=True):
            assert s_cite["title"] == l_cite["title"], question
            assert s_cite["url"] == urls[s_cite["title"].split(" › ")[0]]
            synced_text = synced_text.replace(s_cite["url"], "<cited>")
            local_text = local_text.replace(l_cite["source"], "<cited>")
        assert synced_text == local_text, question


async def test_serve_syncs_a_source_on_its_schedule_once_per_tick(
    sqlite_url: str, help_center: FakeIntercom
) -> None:
    async with running(
        sqlite_url,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge={"sources": [{"name": "help", "kind": "intercom", "interval_seconds": 3600,
                                "retry_backoff_seconds": 0.01}]},  # 503 four times: 3 retries
    ) as daemon:
        scheduler = daemon.app.knowledge_schedulers["help"]
        record = await scheduler.run_tick("2026-01-01T00:00:00.000+00:00")
        again = await scheduler.run_tick("2026-01-01T00:00:00.000+00:00")
        assert record.ran and record.error is None
        assert not again.ran and again.reason == "tick already swept"
        documents = await json_call_documents(daemon)
        assert len(documents) == 3

        help_center.fail("GET", "/articles", status=503, times=4, retry_after=None)
        failed = await scheduler.run_tick("2026-01-01T01:00:00.000+00:00")
        assert failed.ran and failed.error is not None and "503" in failed.error
        assert len(await json_call_documents(daemon)) == 3


async def json_call_documents(daemon: object) -> list[dict[str, object]]:
    async with daemon.admin() as admin:  # type: ignore[attr-defined]
        listed = await json_call(admin, "GET", "/v1/knowledge/documents")
    return list(listed["data"])


def test_sources_from_the_environment_and_paths_as_a_files_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUPPORTBOT_KNOWLEDGE__SOURCES", json.dumps([
        {"name": "help", "kind": "intercom", "locales": ["en", "fr"], "cron": "0 * * * *"},
        {"name": "site", "kind": "sitemap", "url": "https://acme.test/sitemap.xml"},
    ]))
    settings = Settings()
    assert [s.name for s in settings.knowledge.all_sources()] == ["help", "site"]
    assert settings.knowledge.source("help").scheduled
    monkeypatch.setenv("SUPPORTBOT_KNOWLEDGE__PATHS", json.dumps([str(tmp_path)]))
    with_paths = Settings().knowledge.all_sources()
    first = with_paths[0]
    assert (first.name, first.kind, first.paths) == ("files", "files", [tmp_path])
    monkeypatch.delenv("SUPPORTBOT_KNOWLEDGE__SOURCES")
    monkeypatch.delenv("SUPPORTBOT_KNOWLEDGE__PATHS")
    assert [s.name for s in Settings().knowledge.all_sources()] == ["files"]  # the bundled KB

    for wrong in ({"name": "x", "kind": "sitemap"}, {"name": "x", "kind": "urls",
                  "urls": ["ftp://a"]}, {"name": "a b", "kind": "intercom"}):
        monkeypatch.setenv("SUPPORTBOT_KNOWLEDGE__SOURCES", json.dumps([wrong]))
        with pytest.raises(ValueError):
            Settings()


async def test_a_job_left_running_by_a_dead_replica_is_interrupted_and_blocks_nothing(
    db_url: str, help_center: FakeIntercom
) -> None:
    """A record another replica holds a live lease on is the job a new request gets; once the
    lease has run out (the replica died) it reads as failed, interrupted, and a new sync runs."""
    async with running(
        db_url,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge={"sources": [{"name": "help", "kind": "intercom"}]},
    ) as daemon, daemon.admin() as admin:
        other = new_id("ksync")
        record = {"id": other, "source": "help", "status": "running", "created_at": time.time(),
                  "started_at": time.time(), "finished_at": None, "sources": [], "error": None}

        async def renewed(at: float) -> None:
            await daemon.app.store.db.run_tx(lambda conn: conn.execute(
                cursors.delete().where(cursors.c.name == PREFIX + other)))
            await daemon.app.store.db.run_tx(lambda conn: conn.execute(
                cursors.insert().values(name=PREFIX + other, value=record, updated_at=at)))

        await renewed(time.time())  # alive on another replica
        same = await json_call(admin, "POST", "/v1/knowledge/sync", json={"source": "help"},
                               expect=202)
        assert (same["id"], same["status"]) == (other, "running")
        assert help_center.calls("GET", "/articles") == []

        await renewed(time.time() - LEASE_SECONDS - 5)  # that replica died a while ago
        dead = await json_call(admin, "GET", f"/v1/knowledge/sync/{other}")
        assert dead["status"] == "failed" and dead["error"].startswith("interrupted")
        assert dead["finished_at"] is not None

        await renewed(time.time() - LEASE_SECONDS - 5)  # found by a new request first, too
        done = await sync_job(admin, {"source": "help"})
        assert done["id"] != other and done["status"] == "succeeded"
        assert done["sources"][0]["added"] == 3
        dead = await json_call(admin, "GET", f"/v1/knowledge/sync/{other}")
        assert dead["status"] == "failed" and dead["error"].startswith("interrupted")


async def test_a_running_job_renews_its_lease(sqlite_url: str, help_center: FakeIntercom) -> None:
    """Running longer than its lease, the job keeps it: another replica reads it as running."""
    help_center.stall("GET", "/articles", seconds=1.5)
    async with running(
        sqlite_url,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge={"sources": [{"name": "help", "kind": "intercom"}]},
    ) as daemon:
        mine = SyncJobs(daemon.app.knowledge_sync, lease_seconds=0.6)
        elsewhere = SyncJobs(daemon.app.knowledge_sync, lease_seconds=0.6)
        job = await mine.start("help")
        await asyncio.sleep(1.0)
        seen = await elsewhere.get(job.id)
        assert seen is not None and seen.status == "running"
        finished = await mine.wait(job.id)
    assert finished is not None and finished.status == "succeeded"
