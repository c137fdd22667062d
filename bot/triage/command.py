"""``supportbot triage``: one sweep (``--once``) or sweeps on the configured schedule in the
foreground, with a progress bar, the digest as a table (and JSON), and ``--dry-run``."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path
from typing import Any, TextIO

from bot.config import Settings
from bot.daemon import Launch
from bot.domain import JSON
from bot.triage.digest import Progress, post_digest
from bot.triage.sweep import Sweeper, SweepOptions, parse_since

log = logging.getLogger(__name__)


# -- the ``supportbot triage`` command ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriageCommand:
    """The command line of ``supportbot triage``."""

    once: bool = False
    since: str | None = None
    limit: int | None = None
    concurrency: int | None = None
    channel: str | None = None
    dry_run: bool = False
    json_path: Path | None = None


def command_settings(settings: Settings, command: TriageCommand) -> Settings:
    """The settings ``supportbot triage`` runs the application with: its own concurrency, no
    connector polling on its own (the sweep does the listing), no schedule for ``--once``.
    (``--dry-run`` is the connectors' own: ``Connector.dry_run``.)"""
    concurrency = (
        command.concurrency or settings.triage.concurrency or settings.pipeline.concurrency
    )
    update: dict[str, Any] = {
        "pipeline": settings.pipeline.model_copy(update={"concurrency": concurrency}),
    }
    if command.once:
        update["triage"] = settings.triage.model_copy(
            update={"interval_seconds": None, "cron": None}
        )
    return settings.without_polling().model_copy(update=update)


def command_options(settings: Settings, command: TriageCommand) -> SweepOptions:
    base = SweepOptions.from_settings(settings.triage)
    since = base.since
    if command.since is not None:
        since = (
            parse_since(command.since, timezone=settings.triage.timezone) if command.since else None
        )
    return SweepOptions(
        since=since,
        limit=command.limit if command.limit is not None else base.limit,
        channels=(command.channel,) if command.channel else base.channels,
        dry_run=command.dry_run,
        timeout_seconds=base.timeout_seconds,
    )


class ProgressBar:
    """A one-line progress bar on a terminal; on anything else, a log line every 10 %."""

    WIDTH = 30

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._tty = stream.isatty()
        self._last_decile = -1
        self._started = time.monotonic()

    def __call__(self, progress: Progress) -> None:
        if not progress.total:
            return
        share = progress.finished / progress.total
        if self._tty:
            filled = int(share * self.WIDTH)
            tally = " ".join(f"{k} {v}" for k, v in sorted(progress.counts.items()))
            elapsed = time.monotonic() - self._started
            self._stream.write(
                f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{progress.finished}/{progress.total}  {elapsed:5.1f} s  {tally}\033[K"
            )
            if progress.finished == progress.total:
                self._stream.write("\n")
            self._stream.flush()
            return
        decile = int(share * 10)
        if decile != self._last_decile:
            self._last_decile = decile
            log.info("triage: %d/%d conversations finished", progress.finished, progress.total)


async def run_command(
    settings: Settings,
    command: TriageCommand,
    *,
    out: TextIO,
    err: TextIO,
    launch: Launch,
    stop: asyncio.Event | None = None,
) -> int:
    """``supportbot triage``: 0 when every conversation was handled, 1 when some failed or a
    channel could not list its work, 2 for a usage or start-up error."""
    from bot.store.migrate import SchemaBehind

    run_settings = command_settings(settings, command)
    if not command.once and not run_settings.triage.scheduled:
        err.write(
            "supportbot: no [triage] schedule is configured (triage.interval_seconds or "
            "triage.cron); use --once for a single sweep\n"
        )
        return 2
    try:
        options = command_options(run_settings, command)
    except ValueError as exc:
        err.write(f"supportbot: {exc}\n")
        return 2
    async with AsyncExitStack() as running:
        try:
            daemon = await running.enter_async_context(
                launch(
                    run_settings,
                    # Each connector's own override (``Connector.dry_run`` itself would skip
                    # those).
                    connector_wrapper=methodcaller("dry_run") if command.dry_run else None,
                )
            )
        except SchemaBehind as exc:
            err.write(f"supportbot: {exc}\n")
            return 2
        if options.channels is not None:
            missing = [c for c in options.channels if c not in daemon.connectors]
            if missing:
                err.write(
                    f"supportbot: no enabled connector named {', '.join(missing)} "
                    f"(enabled: {', '.join(daemon.connectors) or 'none'})\n"
                )
                return 2
        if not command.once:
            return await _run_scheduled(stop, err)
        digest = await Sweeper(daemon).sweep(options, progress=ProgressBar(err))
        out.write(digest.table() + "\n")
        out.flush()
        if command.json_path is not None:
            await asyncio.to_thread(_write_json, command.json_path, digest.to_json())
        if run_settings.triage.digest_destinations:
            await post_digest(daemon.connectors, digest, run_settings.triage.digest_destinations)
    return 0 if digest.ok else 1


async def _run_scheduled(stop: asyncio.Event | None, err: TextIO) -> int:
    """Sweep on the configured schedule until SIGINT/SIGTERM (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread (tests), or no signals on this platform
    err.write("supportbot: sweeping on the [triage] schedule; Ctrl-C to stop\n")
    err.flush()
    try:
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return 0


def _write_json(path: Path, data: JSON) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
