"""The ``supportbot`` command. The only place that configures logging."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from bot import logs
from bot.config import ConfigError, Settings, load_settings, masked, secret_values
from bot.redact import mask_text, mask_url

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        sys.exit(2)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    secrets = secret_values(settings)
    logs.configure(settings.log.level, settings.log.format, secrets)
    try:
        sys.exit(asyncio.run(args.command(args, settings)))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 — each is either explained or printed in full below
        explanation = explain(exc, settings)
        if explanation is None:
            # A bug: the whole traceback, but never a credential in it.
            print(mask_text(traceback.format_exc(), secrets), file=sys.stderr, end="")
            sys.exit(1)
        print(f"supportbot: {mask_text(explanation, secrets)}", file=sys.stderr)
        sys.exit(2)


# -- ordinary mistakes: one line naming the cause and the fix, exit 2 ---------------------------
#
# Commands let these propagate; ``main`` turns them into that line. Anything not recognised here
# is a bug and keeps its traceback.


def _plain(exc: Exception, settings: Settings) -> str | None:
    """The exception's own message is the line (SchemaBehind's already says to run `db upgrade`)."""
    return str(exc)


def _os_error(exc: Exception, settings: Settings) -> str | None:
    assert isinstance(exc, OSError)
    where = f"port {settings.http.port} on {settings.http.host}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is in use: stop the other process or set http.port"
    if exc.errno == errno.EACCES and _raised_in(exc, "aiohttp", "asyncio"):
        return f"not allowed to listen on {where}: choose a port above 1023 (http.port)"
    if exc.errno == errno.EADDRNOTAVAIL and _raised_in(exc, "aiohttp", "asyncio"):
        return f"{settings.http.host} is not an address of this machine: fix http.host"
    if _raised_in(exc, "sqlalchemy", "asyncpg", "aiosqlite"):
        # The drivers let socket errors through untranslated: where it was raised is what says
        # that it was the database that could not be reached.
        return _database_unusable(settings, str(exc) or type(exc).__name__)
    if exc.filename:
        # A file or folder named on the command line or in the settings (``--json PATH``).
        return f"{exc.filename}: {exc.strerror or exc}: check the path"
    return None


# SQLSTATE classes that mean "could not connect or log in", not "this statement was wrong":
# connection exception, invalid authorization, no such database, insufficient resources,
# operator intervention (shutting down, cannot connect now).
_CONNECTION_SQLSTATES = ("08", "28", "3D", "53", "57")


def _database_error(exc: Exception, settings: Settings) -> str | None:
    assert isinstance(exc, DBAPIError)
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    # OperationalError is the DB-API's "not the program's fault" (unreachable, cannot open the
    # file, locked); other DBAPI errors are the statement's, i.e. bugs, unless the SQLSTATE says
    # the connection failed. Only the driver's own message: str(exc) would add the statement and
    # its parameters, which can hold customer data.
    if isinstance(exc, OperationalError) or sqlstate.startswith(_CONNECTION_SQLSTATES):
        return _database_unusable(settings, str(exc.orig).strip().splitlines()[0])
    return None


def _database_unusable(settings: Settings, reason: str) -> str:
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite":
        return f"the SQLite database {url.database} cannot be opened ({reason}): check database.url"
    return (
        f"cannot use the database at {mask_url(settings.database.url)} ({reason}): "
        f"check that it is running and that database.url is right"
    )


def _raised_in(exc: BaseException, *packages: str) -> bool:
    """Whether ``exc`` passed through code of one of ``packages`` on its way up."""
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in packages:
            return True
        tb = tb.tb_next
    return False


def _explainers() -> list[tuple[type[Exception], Callable[[Exception, Settings], str | None]]]:
    from bot.domain import NotFound
    from bot.store.database import DatabaseUnavailable
    from bot.store.migrate import SchemaBehind

    return [
        (DatabaseUnavailable, _plain),
        (SchemaBehind, _plain),
        (NotFound, _plain),
        (ConfigError, _plain),
        (DBAPIError, _database_error),
        (OSError, _os_error),
    ]


def explain(exc: Exception, settings: Settings) -> str | None:
    """The one line for an ordinary mistake (a database behind or unreachable, a port in use,
    a name that does not exist); None for anything else, which is a bug."""
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        return explain(exc.exceptions[0], settings)
    for kind, describe in _explainers():
        if isinstance(exc, kind):
            return describe(exc, settings)
    return None


class _Subparsers:
    """``add_subparsers`` whose every parser (and nested subparser) inherits ``--config``."""

    def __init__(self, action: Any, common: argparse.ArgumentParser):
        self._action = action
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> _Parser:
        parser = self._action.add_parser(name, parents=[self._common], **kwargs)
        return _Parser(parser, self._common)


class _Parser:
    def __init__(self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser):
        self._parser = parser
        self._common = common

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def add_subparsers(self, **kwargs: Any) -> _Subparsers:
        return _Subparsers(self._parser.add_subparsers(**kwargs), self._common)


def build_parser() -> argparse.ArgumentParser:
    config_help = "TOML settings file (default: $SUPPORTBOT_CONFIG or ./supportbot.toml)"
    parser = argparse.ArgumentParser(prog="supportbot", description=__doc__)
    parser.add_argument("--config", help=config_help)
    # ``--config`` is accepted after any subcommand too (``supportbot config check --config F``).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    sub = _Subparsers(parser.add_subparsers(metavar="COMMAND"), common)

    serve = sub.add_parser("serve", help="run the daemon")
    serve.set_defaults(command=cmd_serve)

    health = sub.add_parser(
        "health", help="ask the daemon configured here whether it is alive (exit 0) or not (1)")
    health.add_argument("--timeout", type=float, default=4.0, help="seconds to wait (default 4)")
    health.set_defaults(command=cmd_health)

    config = sub.add_parser("config", help="configuration").add_subparsers(metavar="ACTION")
    check = config.add_parser("check", help="validate and print the effective settings (secrets masked)")
    check.set_defaults(command=cmd_config_check)

    db = sub.add_parser("db", help="database").add_subparsers(metavar="ACTION")
    db.add_parser("upgrade", help="apply schema migrations").set_defaults(command=cmd_db_upgrade)

    agents = sub.add_parser("agents", help="agents and their versions").add_subparsers(metavar="ACTION")
    publish = agents.add_parser("publish", help="freeze the configured agent as a new version")
    publish.add_argument("slug")
    publish.add_argument("--note", default="")
    publish.set_defaults(command=cmd_agents_publish)
    promote = agents.add_parser("promote", help="make a published version the live one")
    promote.add_argument("slug")
    promote.add_argument("version", type=int)
    promote.set_defaults(command=cmd_agents_promote)
    versions = agents.add_parser("versions", help="list an agent's versions")
    versions.add_argument("slug")
    versions.set_defaults(command=cmd_agents_versions)

    smiths = sub.add_parser("smiths", help="end-user identities").add_subparsers(metavar="ACTION")
    smiths_list = smiths.add_parser("list")
    smiths_list.add_argument("--prefix", help="external_id prefix, e.g. anon: or intercom:")
    smiths_list.add_argument("--limit", type=int, default=100)
    smiths_list.set_defaults(command=cmd_smiths_list)
    smiths_erase = smiths.add_parser(
        "erase", help="remove a smith and all its data for good (the right to erasure)")
    smiths_erase.add_argument("smith_id", metavar="ID", help="the smith's id (smt_…)")
    smiths_erase.add_argument("--yes", action="store_true",
                              help="do not ask (required when stdin is not a terminal)")
    smiths_erase.set_defaults(command=cmd_smiths_erase)

    runs = sub.add_parser("runs", help="the audit log of turns").add_subparsers(metavar="ACTION")
    runs_list = runs.add_parser("list")
    runs_list.add_argument("--prefix", help="only runs of smiths whose external_id starts so")
    runs_list.add_argument("--limit", type=int, default=50)
    runs_list.set_defaults(command=cmd_runs_list)

    threads = sub.add_parser("threads", help="conversations").add_subparsers(metavar="ACTION")
    show = threads.add_parser("show", help="a thread's transcript with tool calls")
    show.add_argument("thread_id")
    show.set_defaults(command=cmd_threads_show)

    kb = sub.add_parser("kb", help="the knowledge base").add_subparsers(metavar="ACTION")
    kb_ingest = kb.add_parser("ingest", help="index files or directories (default: knowledge.paths)")
    kb_ingest.add_argument("paths", nargs="*", metavar="PATH")
    kb_ingest.set_defaults(command=cmd_kb_ingest)
    kb_search = kb.add_parser("search", help="search the knowledge base like the bot does")
    kb_search.add_argument("query")
    kb_search.add_argument("--limit", type=int, default=5)
    kb_search.add_argument("--json", action="store_true", help="print the results as JSON")
    kb_search.set_defaults(command=cmd_kb_search)
    kb_sync = kb.add_parser("sync", help="sync the configured knowledge sources")
    kb_sync.add_argument("--source", metavar="NAME", help="only this source")
    kb_sync.add_argument("--json", action="store_true", help="print the report as JSON")
    kb_sync.set_defaults(command=cmd_kb_sync)
    kb_list = kb.add_parser("list", help="list the indexed documents")
    kb_list.add_argument("--json", action="store_true", help="print JSON")
    kb_list.set_defaults(command=cmd_kb_list)
    kb_show = kb.add_parser("show", help="show a document and its chunks")
    kb_show.add_argument("document", metavar="DOC", help="document id, URL or path")
    kb_show.set_defaults(command=cmd_kb_show)
    kb_remove = kb.add_parser("remove", help="remove a document from the index")
    kb_remove.add_argument("document", metavar="DOC", help="document id, URL or path")
    kb_remove.set_defaults(command=cmd_kb_remove)

    chat = sub.add_parser("chat", help="talk to the bot in the terminal (the real pipeline)")
    chat.add_argument("--agent", metavar="SLUG", help="agent to talk to (default: default_agent)")
    chat.add_argument("--as", dest="as_external_id", metavar="EXTERNAL_ID",
                      help="the customer you play (default: cli:<your login>)")
    chat.add_argument("--name", help="your display name (default: from your login)")
    chat.set_defaults(command=cmd_chat)

    simulate = sub.add_parser("simulate", help="run scripted conversations and check expectations")
    simulate.add_argument("file", metavar="FILE", help="YAML scenarios (see examples/scenarios.yaml)")
    simulate.set_defaults(command=cmd_simulate)

    evaluation = sub.add_parser("eval", help="measure answers on customer conversations (JSONL cases)")
    _add_eval_arguments(evaluation)
    evaluation.set_defaults(command=cmd_eval)

    triage = sub.add_parser(
        "triage",
        help="sweep conversations waiting for an answer through the bot (once or on a schedule)",
    )
    triage.add_argument("--once", action="store_true",
                        help="one sweep now, then exit (default: sweep on the [triage] schedule)")
    triage.add_argument("--since", metavar="DURATION|TIMESTAMP",
                        help="only conversations updated since: 30m, 2h, 1d or an ISO 8601 time "
                        "(default: triage.since; '' for all)")
    triage.add_argument("--limit", type=_positive_int, metavar="N",
                        help="at most N conversations (default: triage.limit)")
    triage.add_argument("--concurrency", type=_positive_int, metavar="C",
                        help="turns at once (default: triage.concurrency, else pipeline.concurrency)")
    triage.add_argument("--channel", metavar="NAME", help="only this channel (intercom, slack, …)")
    triage.add_argument("--dry-run", action="store_true",
                        help="send nothing customer-facing: Intercom replies become notes, other "
                        "channels' actions are recorded but not sent")
    triage.add_argument("--json", dest="json_path", metavar="PATH", help="also write the digest as JSON")
    triage.set_defaults(command=cmd_triage)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def _open_store(settings: Settings) -> Any:
    from bot.store.database import Database
    from bot.store.migrate import ensure_current
    from bot.store.store import Store

    db = Database(settings.database)
    try:
        await ensure_current(db.engine, auto_upgrade=db.is_sqlite)
    except BaseException:
        await db.dispose()  # the caller's ``finally`` never runs when opening failed
        raise
    return Store(db)


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import Application

    app = Application(settings)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = settings.http.public_url or f"http://{reachable_host(settings.http.host)}:{app.http_port}"
    url = url.rstrip("/")
    print(f"supportbot is up on {url} — open {url}/chat to talk to the bot", flush=True)
    try:
        await stop.wait()
    finally:
        print("supportbot: stopping (draining running turns)…", file=sys.stderr, flush=True)
        await app.stop()
    return 0


def reachable_host(host: str) -> str:
    """An address a person can open for a listening ``host``: a wildcard bind is reachable on
    the loopback address, and an IPv6 literal needs brackets in a URL."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """GET /healthz on the port this configuration listens on (the Docker HEALTHCHECK)."""
    import aiohttp

    url = f"http://{reachable_host(settings.http.host)}:{settings.http.port}/healthz"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout)) as http,
            http.get(url) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"supportbot: not healthy: {url} did not answer ({exc or type(exc).__name__})",
              file=sys.stderr)
        return 1
    if status != 200:
        print(f"supportbot: not healthy: {url} answered {status}", file=sys.stderr)
        return 1
    print(f"healthy: {url}")
    return 0


async def cmd_triage(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from bot.app import launcher
    from bot.triage import TriageCommand, run_command

    command = TriageCommand(
        once=args.once,
        since=args.since,
        limit=args.limit,
        concurrency=args.concurrency,
        channel=args.channel,
        dry_run=args.dry_run,
        json_path=Path(args.json_path) if args.json_path else None,
    )
    return await run_command(settings, command, out=sys.stdout, err=sys.stderr, launch=launcher())


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
    from bot.app import definition_from_settings

    try:
        definition = definition_from_settings(settings, args.slug)
    except KeyError:
        print(f"supportbot: no agent {args.slug!r} in the configuration", file=sys.stderr)
        return 2
    store = await _open_store(settings)
    try:
        version = await store.publish_agent(definition, args.note)
        agent = await store.get_agent(args.slug)
    finally:
        await store.db.dispose()
    live = " (live)" if agent.live_version == version.version else ""
    print(f"published {args.slug} version {version.version}{live}")
    return 0


async def cmd_agents_promote(args: argparse.Namespace, settings: Settings) -> int:
    store = await _open_store(settings)
    try:
        await store.set_live_version(args.slug, args.version)
    finally:
        await store.db.dispose()
    print(f"{args.slug} version {args.version} is live")
    return 0


async def cmd_agents_versions(args: argparse.Namespace, settings: Settings) -> int:
    store = await _open_store(settings)
    try:
        agent = await store.get_agent(args.slug)
        versions = await store.agent_versions(args.slug)
    finally:
        await store.db.dispose()
    for v in versions:
        live = "live" if v.version == agent.live_version else ""
        print(f"{v.version:>4}  {_when(v.created_at)}  {live:<4}  {v.note}")
    return 0


async def cmd_smiths_list(args: argparse.Namespace, settings: Settings) -> int:
    store = await _open_store(settings)
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
    store = await _open_store(settings)
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
    store = await _open_store(settings)
    try:
        runs = await store.list_runs(external_id_prefix=args.prefix, limit=args.limit)
    finally:
        await store.db.dispose()
    for r in runs:
        tools = ",".join(c.name for c in r.tool_calls) or "-"
        print(f"{r.id}  {_when(r.started_at)}  {r.thread_id}  {r.stop_reason.value:<15} tools={tools}")
    return 0


async def cmd_threads_show(args: argparse.Namespace, settings: Settings) -> int:
    store = await _open_store(settings)
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
            print(f"[{_when(run.started_at)}] customer: {item.get('content', '')}")
        for call in run.tool_calls:
            outcome = f"error: {call.error}" if call.error else json.dumps(call.result, default=str)[:200]
            print(f"    ↳ {call.name}({json.dumps(call.arguments)}) → {outcome}")
        print(f"[{_when(run.finished_at)}] bot ({run.stop_reason.value}): {run.output_text}\n")
    return 0


async def cmd_kb_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from bot.knowledge import KnowledgeBase

    paths = [Path(p) for p in args.paths] or list(settings.knowledge.paths)
    store = await _open_store(settings)
    try:
        report = await KnowledgeBase(store.db, settings.knowledge).ingest(paths)
    except FileNotFoundError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.db.dispose()
    print(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"removed {report.removed}, skipped {report.skipped} documents; {report.chunks} chunks"
    )
    return 0


async def cmd_kb_search(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase, snippet

    store = await _open_store(settings)
    try:
        passages = await KnowledgeBase(store.db, settings.knowledge).search(args.query, limit=args.limit)
    finally:
        await store.db.dispose()
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

    store = await _open_store(settings)
    try:
        sync = KnowledgeSync(KnowledgeBase(store.db, settings.knowledge), settings)
        names = [s.name for s in sync.sources]
        if args.source is not None and args.source not in names:
            known = ", ".join(names) or "none"
            print(f"supportbot: no knowledge source {args.source!r} (configured: {known})",
                  file=sys.stderr)
            return 2
        # Synchronous, under the same per-source lock as serve's schedules and the API's jobs.
        reports = await sync_exclusive(sync, [args.source] if args.source else names)
    finally:
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

    store = await _open_store(settings)
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
              f"{d.chunks} chunks  {_when(d.updated_at)}")
    return 0


async def cmd_kb_show(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase
    from bot.knowledge.sync import document_chunks, find_document

    store = await _open_store(settings)
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
          f"{document.source or '-'}, {document.kind}, updated {_when(document.updated_at)}")
    for heading, text in chunks:
        print(f"\n[{heading}]\n{text}")
    return 0


async def cmd_kb_remove(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeBase
    from bot.knowledge.sync import delete_document

    store = await _open_store(settings)
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


async def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.agent.terminal import ChatOptions, chat, default_identity
    from bot.app import launcher

    if settings.log.level == "INFO":
        # Turn-by-turn INFO lines would bury the conversation; warnings still show.
        logging.getLogger().setLevel(logging.WARNING)
    slug = args.agent or settings.default_agent
    try:
        settings.agent(slug)
    except KeyError:
        print(f"supportbot: no agent {slug!r} in the configuration", file=sys.stderr)
        return 2
    external_id, login_name = default_identity()
    options = ChatOptions(
        agent=slug,
        external_id=args.as_external_id or external_id,
        display_name=args.name or (None if args.as_external_id else login_name),
    )
    return await chat(settings, options, sys.stdin, sys.stdout, launch=launcher())


async def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from bot.agent.simulate import simulate
    from bot.app import launcher

    return await simulate(settings, Path(args.file), sys.stdout, launch=launcher())


def _add_eval_arguments(parser: Any) -> None:
    parser.add_argument("file", metavar="CASES", help="JSON Lines cases (see examples/eval/)")
    parser.add_argument("--kb", action="append", metavar="DIR",
                        help="knowledge to answer from (repeatable; default: knowledge.paths)")
    parser.add_argument("--json", dest="json_path", metavar="OUT", help="also write the report as JSON")
    parser.add_argument("--provider", help="model provider to evaluate (default: model.provider)")
    parser.add_argument("--min-action", type=float, metavar="PCT",
                        help="exit 1 when right action is under PCT percent")
    parser.add_argument("--min-article", type=float, metavar="PCT",
                        help="exit 1 when right article is under PCT percent")


async def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from bot.agent.evaluation import run_eval
    from bot.app import launcher

    if settings.log.level == "INFO":
        logging.getLogger().setLevel(logging.WARNING)  # per-turn lines would bury the table
    return await run_eval(
        settings,
        Path(args.file),
        sys.stdout,
        kb=[Path(p) for p in args.kb] if args.kb else None,
        provider=args.provider,
        json_path=Path(args.json_path) if args.json_path else None,
        min_action=args.min_action,
        min_article=args.min_article,
        launch=launcher(),
    )


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    main()
