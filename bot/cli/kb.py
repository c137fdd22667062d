"""The ``kb`` commands: ingest, search, sync, list, show and remove documents."""

from __future__ import annotations

import argparse
import json
import sys

from bot.cli.common import open_store, when
from bot.config import Settings


async def cmd_kb_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from bot.knowledge import KnowledgeBase

    paths = [Path(p) for p in args.paths] or list(settings.knowledge.paths)
    store = await open_store(settings)
    kb = KnowledgeBase(store.db, settings.knowledge)
    try:
        report = await kb.ingest(paths)
    except FileNotFoundError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 1
    finally:
        await kb.aclose()
        await store.db.dispose()
    print(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"removed {report.removed}, skipped {report.skipped} documents; {report.chunks} chunks"
    )
    return 0


async def cmd_kb_search(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase, snippet

    store = await open_store(settings)
    kb = KnowledgeBase(store.db, settings.knowledge)
    try:
        empty = await kb.count_chunks() == 0
        passages = [] if empty else await kb.search(args.query, limit=args.limit)
    finally:
        await kb.aclose()
        await store.db.dispose()
    if empty:
        # Nothing to search is not "no match": say how the knowledge base gets its documents.
        print("supportbot: the knowledge base is empty in this database; index it first with "
              "`supportbot kb ingest` (knowledge.paths) or `supportbot kb sync` (configured "
              "sources) — `supportbot serve` syncs on start", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"results": [
            {"rank": n, "document": p.source, "title": p.title,
             "section": p.heading.rsplit(" › ", 1)[-1], "score": p.score,
             "url": p.source if p.source.startswith(("http://", "https://")) else None}
            for n, p in enumerate(passages, start=1)
        ]}, ensure_ascii=False, indent=2))
        return 0
    if not passages:
        print("no matching passages")
        return 0
    for p in passages:
        # The heading path usually starts with the title (the document's h1); don't say it twice.
        where = p.heading if p.heading.startswith(p.title) else f"{p.title} › {p.heading}"
        print(f"{p.score:.2f}  {where}  ({p.source})")
        print(f"      {snippet(p.text, args.query)}")
    return 0


async def cmd_kb_sync(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase
    from bot.knowledge.jobs import sync_exclusive
    from bot.knowledge.sync import KnowledgeSync, reports_json

    store = await open_store(settings)
    kb = KnowledgeBase(store.db, settings.knowledge)
    try:
        sync = KnowledgeSync(kb, settings)
        names = [s.name for s in sync.sources]
        if args.source is not None and args.source not in names:
            known = ", ".join(names) or "none"
            print(f"supportbot: no knowledge source {args.source!r} (configured: {known})",
                  file=sys.stderr)
            return 2
        # Synchronous, under the same per-source lock as serve's schedules and the API's jobs.
        reports = await sync_exclusive(sync, [args.source] if args.source else names)
    finally:
        await kb.aclose()
        await store.db.dispose()
    if args.json:
        print(json.dumps(reports_json(reports), indent=2))
    for r in [] if args.json else reports:
        outcome = f"failed: {r.error}" if r.error else (
            f"added {r.added}, updated {r.updated}, removed {r.removed}, unchanged {r.unchanged}")
        print(f"{r.source} ({r.kind}): {outcome}")
    return 1 if any(r.error for r in reports) else 0


async def cmd_kb_list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase
    from bot.knowledge.sync import list_documents

    store = await open_store(settings)
    try:
        documents = await list_documents(KnowledgeBase(store.db, settings.knowledge))
    finally:
        await store.db.dispose()
    if args.json:
        print(json.dumps({"documents": [d.as_json() for d in documents]}, indent=2))
        return 0
    for d in documents:
        title = f"{d.section} › {d.title}" if d.section else d.title
        print(f"{d.id}  {d.source or '-'}  {title}  ({d.url or d.citation})  "
              f"{d.chunks} chunks  {when(d.updated_at)}")
    return 0


async def cmd_kb_show(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase
    from bot.knowledge.sync import document_chunks, find_document

    store = await open_store(settings)
    try:
        kb = KnowledgeBase(store.db, settings.knowledge)
        document = await find_document(kb, args.document)
        chunks = await document_chunks(kb, document.id) if document else []
    except LookupError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.db.dispose()
    if document is None:
        print(f"supportbot: no document {args.document!r}", file=sys.stderr)
        return 1
    title = f"{document.section} › {document.title}" if document.section else document.title
    print(f"{title}\n{document.url or document.citation}\nid {document.id}, source "
          f"{document.source or '-'}, {document.kind}, updated {when(document.updated_at)}")
    for heading, text in chunks:
        print(f"\n[{heading}]\n{text}")
    return 0


async def cmd_kb_remove(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase
    from bot.knowledge.sync import delete_document

    store = await open_store(settings)
    try:
        removed = await delete_document(KnowledgeBase(store.db, settings.knowledge), args.document)
    except LookupError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.db.dispose()
    if removed is None:
        print(f"supportbot: no document {args.document!r}", file=sys.stderr)
        return 1
    print(f"removed {removed.id} ({removed.title}, {removed.citation})")
    if removed.source is not None:
        print(f"note: source {removed.source!r} still holds it; it returns at its next sync "
              "unless removed there")
    return 0
