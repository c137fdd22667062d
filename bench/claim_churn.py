"""What one claim reads on PostgreSQL once many messages and actions were finished since the
stored tables' last vacuum: the store seeded ``churned`` (bench/seeding.py), then the
statements an empty lane claim and action claim run, each explained with
``EXPLAIN (ANALYZE, BUFFERS)`` a few times over (a scan that marks dead index entries reads
less the next time; a bitmap scan never does).

    PYTHONPATH=. python bench/claim_churn.py [--size 300000] [--calls 3] [--no-autovacuum]

``--no-autovacuum`` leaves every table as the churn left it, the small live work tables too
(what a claim reads before autovacuum comes by, or on a server that runs without it).
Buffers are a load-free count; the milliseconds are not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import seeding
from sqlalchemy import event
from support import scratch_database

from bot.config import DatabaseSettings
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import Store


async def _recorded(store: Store) -> list[tuple[str, Any]]:
    """The reads of an empty lane claim and an empty action claim, as the store runs them."""
    seen: dict[str, Any] = {}

    def record(_c: Any, _cur: Any, statement: str, params: Any, _x: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.setdefault(statement, params)

    event.listen(store.db.engine.sync_engine, "before_cursor_execute", record)
    await store.claim_lanes(limit=8, lease_seconds=30)
    await store.claim_actions(limit=8, lease_seconds=30)
    event.remove(store.db.engine.sync_engine, "before_cursor_execute", record)
    return list(seen.items())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--no-autovacuum", action="store_true")
    args = parser.parse_args()
    if args.no_autovacuum:
        async def untouched(_conn: Any) -> list[str]:
            return []

        seeding.autovacuum_fixed_thresholds = untouched  # type: ignore[attr-defined,unused-ignore]
    async with scratch_database("postgresql") as url:
        if url is None:
            print("PostgreSQL not reachable")
            return
        db = Database(DatabaseSettings(url=url))
        try:
            await upgrade(db.engine)
            store = Store(db)
            agent = await store.ensure_agent("support", "Support")
            took = await seeding.seed_store(url, agent.id, "support", args.size, "churned")
            print(f"seeded {args.size:,} threads churned in {took:.0f} s"
                  + (", no autovacuum" if args.no_autovacuum else ""))
            statements = await _recorded(store)
            async with db.engine.connect() as conn:
                for statement, params in statements:
                    print(" ".join(statement.split())[:110])
                    for call in range(args.calls):
                        plan = (await conn.exec_driver_sql(
                            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement,
                            tuple(params or ()),
                        )).scalar_one()
                        top = (plan if isinstance(plan, list) else json.loads(plan))[0]
                        blocks = (top["Plan"].get("Shared Hit Blocks", 0)
                                  + top["Plan"].get("Shared Read Blocks", 0))
                        print(f"  call {call}: {blocks:>7} buffers {top['Execution Time']:>8.2f} ms")
                await conn.rollback()
        finally:
            await db.dispose()
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
