"""The commands that run the application: ``serve``, ``health``, ``triage``, ``chat``,
``simulate`` and ``eval``; the only module that imports ``bot.app``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bot.allocator import limit_arenas, pin_mmap_threshold
from bot.config import Settings


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a command imports the application.

    Those imports create some 130,000 tracked objects — modules, classes, functions — that live
    as long as the process; the collections their allocations trigger (gen-0 every 700, up to
    full ones) traverse them again and again and find almost nothing (about a thousand objects
    of garbage). Afterwards they are handed to the oldest generation, as if they had survived
    those collections, and the collector is resumed (``Application.start`` then freezes what
    the start built, these among them). ``bench/triage_start.py``: collector passes before
    ``triage --once``'s first model call 302 -> 155, 0.05-0.08 s of CPU. A collector the
    caller had disabled stays disabled.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # every tracked object to the permanent generation …
        gc.unfreeze()  # … and from there to the oldest one
        if enabled:
            gc.enable()


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    with collector_paused():
        from bot.app import Application

    # Before the daemon allocates its pools and buffers and starts its threads: its heap stays
    # flat, its threads share a few arenas (bot/allocator.py).
    pin_mmap_threshold()
    limit_arenas()
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

    with collector_paused():
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


async def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    with collector_paused():
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

    with collector_paused():
        from bot.agent.simulate import simulate
        from bot.app import launcher

    return await simulate(
        settings, Path(args.file), sys.stdout, launch=launcher(), as_json=args.json
    )


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

    with collector_paused():
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
