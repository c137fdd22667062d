"""The operator's commands on the database: ``config check``, ``db upgrade``, ``agents``,
``smiths``, ``runs`` and ``threads``."""

from __future__ import annotations

import argparse
import json
import sys

from bot.cli.common import open_store, when
from bot.config import Settings, masked


async def cmd_config_check(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(masked(settings), indent=2, default=str))
    print("configuration OK", file=sys.stderr)
    return 0


async def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store.database import Database
    from bot.store.migrate import current_revision, upgrade

    db = Database(settings.database)
    try:
        before = await current_revision(db.engine)
        await upgrade(db.engine)
        after = await current_revision(db.engine)
    finally:
        await db.dispose()
    print(f"database upgraded: {before or 'empty'} → {after}")
    return 0


async def cmd_agents_publish(args: argparse.Namespace, settings: Settings) -> int:
    from bot.agent.definition import definition_from_settings

    try:
        definition = definition_from_settings(settings, args.slug)
    except KeyError:
        print(f"supportbot: no agent {args.slug!r} in the configuration", file=sys.stderr)
        return 2
    store = await open_store(settings)
    try:
        version = await store.publish_agent(definition, args.note)
        agent = await store.get_agent(args.slug)
    finally:
        await store.db.dispose()
    live = " (live)" if agent.live_version == version.version else ""
    print(f"published {args.slug} version {version.version}{live}")
    return 0


async def cmd_agents_promote(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings)
    try:
        await store.set_live_version(args.slug, args.version)
    finally:
        await store.db.dispose()
    print(f"{args.slug} version {args.version} is live")
    return 0


async def cmd_agents_versions(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings)
    try:
        agent = await store.get_agent(args.slug)
        versions = await store.agent_versions(args.slug)
    finally:
        await store.db.dispose()
    for v in versions:
        live = "live" if v.version == agent.live_version else ""
        print(f"{v.version:>4}  {when(v.created_at)}  {live:<4}  {v.note}")
    return 0


async def cmd_smiths_list(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings)
    try:
        smiths = await store.list_smiths(external_id_prefix=args.prefix, limit=args.limit)
    finally:
        await store.db.dispose()
    for s in smiths:
        print(f"{s.id}  {s.external_id or '-':<40}  {s.display_name or '':<24}  memory={'on' if s.auto_memory else 'off'}")
    return 0


async def cmd_smiths_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Erase for good, after a confirmation: typed at a terminal, or ``--yes`` in a script (a
    script without it is refused rather than left waiting for an answer nobody will type)."""
    from bot.domain import NotFound
    from bot.store.erasure import Erasures

    if not args.yes and not sys.stdin.isatty():
        print(f"supportbot: erasing {args.smith_id} removes it and all its data for good and "
              "cannot be undone; pass --yes to confirm", file=sys.stderr)
        return 2
    missing = f"supportbot: no smith {args.smith_id} (see `supportbot smiths list`)"
    store = await open_store(settings)
    try:
        try:
            smith = await store.get_smith(args.smith_id, include_archived=True)
        except NotFound:
            print(missing, file=sys.stderr)
            return 2
        if not args.yes:
            threads = await store.list_threads(smith_id=smith.id, limit=10_000)
            print(f"smith {smith.id}  {smith.external_id or '-'}  {smith.display_name or ''}  "
                  f"({len(threads)} threads)")
            answer = input("Erase this smith and all its data for good? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("not erased", file=sys.stderr)
                return 1
        try:
            erasure = await Erasures(store.db).erase_smith(smith.id, requested_by="cli")
        except NotFound:  # erased by someone else while we asked
            print(missing, file=sys.stderr)
            return 2
    finally:
        await store.db.dispose()
    removed = ", ".join(f"{n} {name}" for name, n in erasure.counts.items() if n)
    print(f"erased smith {erasure.smith_id}: {removed} (audit record {erasure.id})")
    return 0


async def cmd_runs_list(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings)
    try:
        runs = await store.list_runs(external_id_prefix=args.prefix, limit=args.limit)
    finally:
        await store.db.dispose()
    for r in runs:
        tools = ",".join(c.name for c in r.tool_calls) or "-"
        print(f"{r.id}  {when(r.started_at)}  {r.thread_id}  {r.stop_reason.value:<15} tools={tools}")
    return 0


async def cmd_threads_show(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings)
    try:
        thread = await store.get_thread(args.thread_id)
        smith = await store.get_smith(thread.smith_id, include_archived=True)
        runs = await store.thread_runs(thread.id, limit=1000)
    finally:
        await store.db.dispose()
    print(f"thread {thread.id}  {thread.external_id}  state={thread.state.value} control={thread.control.value}")
    print(f"customer {smith.external_id or smith.id}  {smith.display_name or ''}")
    print(f"title: {thread.title or ''}\n")
    for run in runs:
        for item in run.input:
            print(f"[{when(run.started_at)}] customer: {item.get('content', '')}")
        for call in run.tool_calls:
            outcome = f"error: {call.error}" if call.error else json.dumps(call.result, default=str)[:200]
            print(f"    ↳ {call.name}({json.dumps(call.arguments)}) → {outcome}")
        print(f"[{when(run.finished_at)}] bot ({run.stop_reason.value}): {run.output_text}\n")
    return 0
