"""The ``supportbot`` command. The only place that configures logging.

``main`` and the parser live here; the commands by what they touch — ``run`` (the running
application), ``operator`` (the database), ``kb`` (the knowledge base) — and ``errors`` turns
ordinary mistakes into one line."""

from __future__ import annotations

import argparse
import asyncio
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot import logs
from bot.cli.errors import explain
from bot.cli.kb import (
    cmd_kb_ingest,
    cmd_kb_list,
    cmd_kb_remove,
    cmd_kb_search,
    cmd_kb_show,
    cmd_kb_sync,
)
from bot.cli.operator import (
    cmd_agents_promote,
    cmd_agents_publish,
    cmd_agents_versions,
    cmd_config_check,
    cmd_db_upgrade,
    cmd_runs_list,
    cmd_smiths_erase,
    cmd_smiths_list,
    cmd_threads_show,
)
from bot.cli.run import (
    _add_eval_arguments,
    cmd_chat,
    cmd_eval,
    cmd_health,
    cmd_serve,
    cmd_simulate,
    cmd_triage,
    reachable_host,
)
from bot.config import ConfigError, Settings, load_settings, secret_values
from bot.redact import mask_text

__all__ = [
    "Command",
    "build_parser",
    "cmd_agents_promote",
    "cmd_agents_publish",
    "cmd_agents_versions",
    "cmd_chat",
    "cmd_config_check",
    "cmd_db_upgrade",
    "cmd_eval",
    "cmd_health",
    "cmd_kb_ingest",
    "cmd_kb_list",
    "cmd_kb_remove",
    "cmd_kb_search",
    "cmd_kb_show",
    "cmd_kb_sync",
    "cmd_runs_list",
    "cmd_serve",
    "cmd_simulate",
    "cmd_smiths_erase",
    "cmd_smiths_list",
    "cmd_threads_show",
    "cmd_triage",
    "explain",
    "main",
    "reachable_host",
]

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
    description = (__doc__ or "").split("\n\n", 1)[0]
    parser = argparse.ArgumentParser(prog="supportbot", description=description)
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
    simulate.add_argument("--json", action="store_true",
                          help="print each turn's reply, action, tool calls and citations as JSON")
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
