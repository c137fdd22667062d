"""The right to erasure and retention, on SQLite and PostgreSQL: after an erasure no row anywhere
in the database names the smith, its words or its files; the audit record says only how much went.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.engine import Connection

from bot.domain import (
    Action,
    ActionKind,
    Attachment,
    InboundMessage,
    Run,
    StopReason,
    ThreadState,
    ToolCallRecord,
    Usage,
    action_id,
    new_id,
    now,
)
from bot.store.deliveries import Deliveries
from bot.store.erasure import ERASED_TABLES, UNRELATED_TABLES, Erasures
from bot.store.messages import PersonMessages
from bot.store.schema import erasures, metadata, smiths, threads
from bot.store.store import LeaseLost, NotFound, Store, ThreadChange
from bot.store.web import WebStore

DAY = 86_400.0


@dataclass(frozen=True)
class Footprint:
    """One customer's data spread over every table that can hold it."""

    smith_id: str
    thread_ids: tuple[str, ...]
    needles: tuple[str, ...]  # what must not be found anywhere after erasing them


async def footprint(
    store: Store, who: str, *, waiting: bool = True, unparsed: bool = False
) -> Footprint:
    """A customer ``who`` with a web conversation (closed by its turn), a stored upload attached
    to the message, a tool result with their email, a memory, a claim-on-login alias, an
    outbox reply, and (``waiting``) a second message still in the inbox for a thread not made
    yet."""
    external_id, alias = f"anon:{who}-visitor-token", f"web:{who}-signed-in"
    name, email = f"{who.title()} Lovelace", f"{who}@example.org"
    words, later = f"{who} cannot log in to invoice 4471", f"{who} also needs a refund"
    secret_bytes = f"{who}-scan-of-passport".encode()
    agent = await store.ensure_agent("support", "Support")
    smith = await store.ensure_smith(
        external_id, agent.id, display_name=name, metadata={"email": email}, auto_memory=True
    )
    web = WebStore(store)
    conversation = await web.create_conversation(smith, title=words[:30])
    upload = await web.put_file(
        smith.id, filename=f"{who}-passport.png", content_type="image/png", data=secret_bytes
    )
    assert await web.add_alias(agent.id, alias, smith.id)
    thread = await store.get_thread(conversation.thread_id)
    assert await store.inbox_put(
        InboundMessage(
            source="web", dedup_key=new_id("msg"), thread_external_id=thread.external_id,
            smith_external_id=external_id, text=words, display_name=name,
            attachments=(Attachment(f"{who}-passport.png", "image/png", len(secret_bytes),
                                    file_id=upload.id),),
        ),
        "support",
    )
    claims = await store.claim_lanes(limit=100, lease_seconds=60)
    (claim,) = [c for c in claims if c.lane.endswith(thread.external_id)]
    run_id = new_id("run")
    at = now()
    run = Run(
        id=run_id, thread_id=thread.id, smith_id=smith.id, agent_id=agent.id, agent_version=None,
        input=[{"role": "user", "content": words,
                "attachments": [{"file_id": upload.id, "name": f"{who}-passport.png"}]}],
        output_text=f"Sorry {name}, I closed it.", stop_reason=StopReason.CLOSED, model="test",
        usage=Usage(), rag_results=[], error=None, started_at=at, finished_at=at,
        tool_calls=(ToolCallRecord(0, "call_1", "USER_INFO_LOOKUP", {"user_id": external_id},
                                   result={"name": name, "email": email}),),
    )
    reply = Action(id=action_id(run_id, 0), run_id=run_id, thread_id=thread.id, channel="web",
                   kind=ActionKind.REPLY, text=f"Sorry {name}, I closed it.")
    await store.commit_turn(
        claim, run, [reply],
        thread_change=ThreadChange(state=ThreadState.CLOSED),
        new_memories=[f"their email is {email}"],
    )
    await store.feedback.rate(run_id, rater=f"smith:{smith.id}", rating="down",
                              comment=f"{name} did not like it", source="conversation")
    said = f"Hello {name}, Grace here about {email}"
    await PersonMessages(store.db).add(thread.id, author_name="Grace", text=said)
    needles = (external_id, alias, name, email, words, secret_bytes.decode(),
               f"{name} did not like it", said)
    if waiting:
        # Delivered, but no turn has run for it yet (no thread exists for it).
        assert await store.inbox_put(
            InboundMessage(source="web", dedup_key=new_id("msg"),
                           thread_external_id=f"web:{who}-2", smith_external_id=external_id,
                           text=later, display_name=name),
            "support",
        )
        needles += (later,)
    if unparsed:
        # A webhook delivery of their conversation, stored (acknowledged) but not parsed yet.
        body = f'{{"text": "{who} sent the card number 4111 1111"}}'.encode()
        (stored,) = await store.deliveries.write(
            [Deliveries.row(thread.channel, f"{who}-notification", thread.external_id, body)]
        )
        assert stored is not None
        needles += (f"{who} sent the card number 4111 1111",)
    return Footprint(smith.id, (thread.id,), needles)


def _dump(conn: Connection) -> str:
    """Every value of every row of every table the database has (reflected, not just ours:
    the full-text index's own tables and ``alembic_version`` too)."""
    out: list[str] = []
    for table in inspect(conn).get_table_names():
        for row in conn.execute(text(f'SELECT * FROM "{table}"')):
            for value in row:
                if isinstance(value, bytes | memoryview):
                    value = bytes(value).decode("latin-1")
                out.append(f"{table}: {value!r}")
    return "\n".join(out)


async def dump(store: Store) -> str:
    return await store.db.run_read(_dump)


async def test_erasing_a_smith_leaves_no_row_that_mentions_it(store: Store) -> None:
    victim = await footprint(store, "ada", unparsed=True)
    bystander = await footprint(store, "bob", unparsed=True)
    before = await dump(store)
    assert all(needle in before for needle in victim.needles)

    erasure = await Erasures(store.db).erase_smith(victim.smith_id, requested_by="cli")

    after = await dump(store)
    found = [needle for needle in victim.needles if needle in after]
    assert found == [], f"still in the database after erasure: {found}"
    # The dump does see data: the other customer is all still there.
    assert all(needle in after for needle in bystander.needles)
    assert erasure.counts == {
        "lanes": 1, "tool_calls": 1, "feedback": 1, "outbox": 1, "inbox": 2, "conversations": 1,
        "runs": 1, "threads": 1, "files": 1, "memories": 1, "smith_aliases": 1, "smiths": 1,
        "person_messages": 1, "deliveries": 1,
    }
    # Their delivery not parsed yet is gone with them, and stays gone: kept as parsed, without
    # its body, a redelivery of it is ignored (parsed, it would bring them back).
    assert await store.deliveries.counts() == {"done": 1, "pending": 1}
    assert await store.deliveries.claim(limit=10, lease_seconds=60) is not None  # bob's
    again = Deliveries.row("web", "ada-notification", "web:whatever", b"{}")
    assert await store.deliveries.write([again]) == [None]
    with pytest.raises(NotFound):
        await store.get_smith(victim.smith_id, include_archived=True)
    with pytest.raises(NotFound):
        await store.get_thread(victim.thread_ids[0])

    # The audit record: the opaque smith id, who asked, the counts, and nothing personal.
    (record,) = await Erasures(store.db).list_erasures(smith_id=victim.smith_id)
    assert record == erasure
    assert record.requested_by == "cli" and record.smith_id.startswith("smt_")
    async with store.db.read() as conn:
        rows = list((await conn.execute(select(erasures))).mappings())
    assert len(rows) == 1 and set(rows[0]) == {
        "id", "smith_id", "agent_id", "erased_at", "counts", "requested_by"}
    assert not any(needle in repr(dict(rows[0])) for needle in victim.needles)

    with pytest.raises(NotFound):
        await Erasures(store.db).erase_smith(victim.smith_id, requested_by="cli")


async def test_an_archived_smith_can_be_erased(store: Store) -> None:
    victim = await footprint(store, "cy")
    await store.archive_smith(victim.smith_id)
    erasure = await Erasures(store.db).erase_smith(victim.smith_id, requested_by="api")
    assert erasure.counts["smiths"] == 1 and erasure.requested_by == "api"
    after = await dump(store)
    assert not [needle for needle in victim.needles if needle in after]


async def test_a_turn_running_while_its_smith_is_erased_commits_nothing(store: Store) -> None:
    agent = await store.ensure_agent("support", "Support")
    smith = await store.ensure_smith("test:dee", agent.id, display_name="Dee")
    thread = await store.ensure_thread(smith, "test:dee-thread", "test")
    assert await store.inbox_put(
        InboundMessage(source="test", dedup_key="k1", thread_external_id=thread.external_id,
                       smith_external_id="test:dee", text="dee's secret question"),
        "support",
    )
    (claim,) = await store.claim_lanes(limit=10, lease_seconds=60)
    await Erasures(store.db).erase_smith(smith.id, requested_by="api")
    at = now()
    run = Run(id=new_id("run"), thread_id=thread.id, smith_id=smith.id, agent_id=agent.id,
              agent_version=None, input=[{"role": "user", "content": "dee's secret question"}],
              output_text="answer", stop_reason=StopReason.END_TURN, model="test", usage=Usage(),
              rag_results=[], error=None, started_at=at, finished_at=at)
    with pytest.raises(LeaseLost):
        await store.commit_turn(claim, run, [], thread_change=ThreadChange())
    assert "dee's secret question" not in await dump(store)


async def _backdate(store: Store, *, thread_id: str | None = None, smith_id: str | None = None,
                    days: float) -> None:
    at = now() - days * DAY
    async with store.db.tx() as conn:
        if thread_id is not None:
            await conn.execute(update(threads).where(threads.c.id == thread_id).values(updated_at=at))
        if smith_id is not None:
            await conn.execute(update(smiths).where(smiths.c.id == smith_id).values(updated_at=at))


async def test_retention_erases_only_threads_closed_longer_ago(store: Store) -> None:
    agent = await store.ensure_agent("support", "Support")
    # Ada: one thread closed 40 days ago and one closed yesterday; she stays, with the new one.
    ada = await store.ensure_smith("test:ada", agent.id, display_name="Ada")
    ada_old = await store.ensure_thread(ada, "test:ada-old", "test")
    ada_new = await store.ensure_thread(ada, "test:ada-new", "test")
    for t in (ada_old, ada_new):
        await store.update_thread(t.id, ThreadChange(state=ThreadState.CLOSED))
    await _backdate(store, thread_id=ada_old.id, smith_id=ada.id, days=40)
    await _backdate(store, thread_id=ada_new.id, days=1)
    # Bob: one thread, closed 40 days ago, untouched since, nothing waiting: he goes entirely.
    bob = await footprint(store, "bob", waiting=False)
    await _backdate(store, thread_id=bob.thread_ids[0], smith_id=bob.smith_id, days=40)
    # Fay: the same, but a message of hers waits for a new thread: the old thread goes, she stays.
    fay = await footprint(store, "fay")
    await _backdate(store, thread_id=fay.thread_ids[0], smith_id=fay.smith_id, days=40)
    # Cy: open for 40 days (not closed): kept.
    cy = await store.ensure_smith("test:cy", agent.id)
    cy_open = await store.ensure_thread(cy, "test:cy-open", "test")
    await _backdate(store, thread_id=cy_open.id, days=40)
    # Eve: closed 40 days ago, but a webhook of hers is stored and not parsed yet: left too.
    eve = await footprint(store, "eve", waiting=False, unparsed=True)
    await _backdate(store, thread_id=eve.thread_ids[0], smith_id=eve.smith_id, days=40)
    # Dee: closed 40 days ago, but the customer just wrote again: left for a later pass.
    dee = await store.ensure_smith("test:dee", agent.id)
    dee_back = await store.ensure_thread(dee, "test:dee-back", "test")
    await store.update_thread(dee_back.id, ThreadChange(state=ThreadState.CLOSED))
    await _backdate(store, thread_id=dee_back.id, days=40)
    assert await store.inbox_put(
        InboundMessage(source="test", dedup_key="dee-1", thread_external_id="test:dee-back",
                       smith_external_id="test:dee", text="it broke again"),
        "support",
    )

    report = await Erasures(store.db).erase_closed_threads(days=30, batch=2)

    remaining = {t.id for t in await store.list_threads(limit=100)}
    assert not {ada_old.id, bob.thread_ids[0], fay.thread_ids[0]} & remaining
    assert {ada_new.id, cy_open.id, dee_back.id, eve.thread_ids[0]} <= remaining
    assert (await store.get_smith(ada.id)).display_name == "Ada"
    with pytest.raises(NotFound):
        await store.get_smith(bob.smith_id, include_archived=True)
    after = await dump(store)
    assert not [needle for needle in bob.needles if needle in after]
    assert "it broke again" in after and "fay also needs a refund" in after
    assert (await store.get_smith(fay.smith_id)).display_name == "Fay Lovelace"
    assert "fay cannot log in" not in after
    assert report.threads == 3 and report.smiths == 1 and report.busy_threads == 2
    assert await store.deliveries.counts() == {"pending": 1}
    records = {e.smith_id: e for e in await Erasures(store.db).list_erasures()}
    assert set(records) == {ada.id, bob.smith_id, fay.smith_id}
    assert all(e.requested_by == "retention" for e in records.values())
    assert records[ada.id].counts["threads"] == 1 and records[ada.id].counts["smiths"] == 0
    assert records[bob.smith_id].counts["smiths"] == 1

    # Nothing else is due: a second pass erases nothing and records nothing.
    again = await Erasures(store.db).erase_closed_threads(days=30)
    assert again.erasures == [] and len(await Erasures(store.db).list_erasures()) == 3


async def test_retention_keeps_a_file_another_kept_thread_still_shows(store: Store) -> None:
    agent = await store.ensure_agent("support", "Support")
    smith = await store.ensure_smith("test:eve", agent.id)
    web = WebStore(store)
    upload = await web.put_file(smith.id, filename="a.txt", content_type="text/plain", data=b"x")
    kept_thread = None
    for name in ("old", "new"):
        thread = await store.ensure_thread(smith, f"test:eve-{name}", "test")
        assert await store.inbox_put(
            InboundMessage(source="test", dedup_key=f"eve-{name}", thread_external_id=thread.external_id,
                           smith_external_id="test:eve", text="see file",
                           attachments=(Attachment("a.txt", "text/plain", 1, file_id=upload.id),)),
            "support",
        )
        (claim,) = await store.claim_lanes(limit=10, lease_seconds=60)
        at = now()
        run = Run(id=new_id("run"), thread_id=thread.id, smith_id=smith.id, agent_id=agent.id,
                  agent_version=None, input=[{"content": "see file", "file_id": upload.id}],
                  output_text="ok", stop_reason=StopReason.CLOSED, model="test", usage=Usage(),
                  rag_results=[], error=None, started_at=at, finished_at=at)
        await store.commit_turn(claim, run, [], thread_change=ThreadChange(state=ThreadState.CLOSED))
        if name == "old":
            await _backdate(store, thread_id=thread.id, days=40)
        else:
            kept_thread = thread
    report = await Erasures(store.db).erase_closed_threads(days=30)
    assert report.threads == 1 and report.erasures[0].counts["files"] == 0
    assert (await web.get_file(upload.id)).id == upload.id
    assert kept_thread is not None
    await _backdate(store, thread_id=kept_thread.id, smith_id=smith.id, days=40)
    report = await Erasures(store.db).erase_closed_threads(days=30)
    assert report.smiths == 1 and report.erasures[0].counts["files"] == 1


def _references(table_name: str) -> set[str]:
    return {fk.column.table.name for fk in metadata.tables[table_name].foreign_keys}


def test_every_table_is_either_erased_or_holds_no_smith_data() -> None:
    """A new table must be classified: erased with the smith, or unrelated to any smith. A table
    that references threads or smiths (directly or through another table) must be erased."""
    tables = set(metadata.tables)
    assert not set(ERASED_TABLES) & UNRELATED_TABLES
    unclassified = tables - set(ERASED_TABLES) - UNRELATED_TABLES
    assert not unclassified, (
        f"tables {sorted(unclassified)} are neither erased with a smith (bot/store/erasure.py "
        "ERASED_TABLES, and erase their rows in _erase) nor listed as UNRELATED_TABLES"
    )
    assert set(ERASED_TABLES) <= tables and UNRELATED_TABLES <= tables
    # Everything that reaches threads or smiths by foreign keys.
    reaching = {"threads", "smiths"}
    grew = True
    while grew:
        more = {name for name in tables if _references(name) & reaching} - reaching
        reaching |= more
        grew = bool(more)
    missing = reaching - set(ERASED_TABLES)
    assert not missing, f"tables {sorted(missing)} reference a smith's rows but are not erased"
    # And erased in an order the foreign keys allow: no table after a table it references.
    order = {name: i for i, name in enumerate(ERASED_TABLES)}
    for name in ERASED_TABLES:
        for parent in _references(name) & set(ERASED_TABLES):
            assert order[name] < order[parent], f"{name} must be erased before {parent}"
