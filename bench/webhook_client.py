"""A webhook load client in a process of its own (``bench/ingest_ceiling.py`` runs it): POSTs
signed bodies to one URL with a fixed number of requests in flight and prints one JSON line —
the requests per second, each request's latency and the statuses.

    python bench/webhook_client.py URL REQUESTS.json CONCURRENCY

``REQUESTS.json`` is a list of ``[body, signature header]`` pairs (the body as text), signed by
whoever wrote it with the secret the server checks; they are sent in that order. Only aiohttp
is imported, so the client starts fast and shares nothing with the server but the machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque

import aiohttp


async def run(url: str, requests: list[tuple[bytes, str]], concurrency: int) -> dict[str, object]:
    queue = deque(requests)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                body, signature = queue.popleft()
                headers = {"Content-Type": "application/json", "X-Hub-Signature": signature}
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - started)

        # Open the connections first, so the timed run measures requests, not handshakes.
        async with session.head(url):
            pass
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rate": len(requests) / elapsed,
        "elapsed": elapsed,
        "latencies": latencies,
        "statuses": statuses,
        "cpu": time.process_time(),
    }


def main() -> None:
    url, path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path) as file:
        requests = [(body.encode(), signature) for body, signature in json.load(file)]
    print(json.dumps(asyncio.run(run(url, requests, concurrency))))


if __name__ == "__main__":
    main()
