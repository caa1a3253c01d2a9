"""Our client's transports, on the sandbox: httpx-aiohttp's (every request's), httpx's own.

Usage: python bench/bench_transport.py [--requests 4000] [--concurrency 32] [--latency-ms 0]
Prints requests/s and CPU seconds per 1,000 requests of the client process for each transport.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import httpx
from sandbox_proc import sandbox

from pipelines.neuron.api.client import NeuronClient


async def drive(
    base_url: str,
    key: str,
    transport: httpx.AsyncBaseTransport | None,
    total: int,
    concurrency: int,
) -> tuple[float, float]:
    async with NeuronClient(
        key, base_url, transport=transport, max_concurrency=concurrency
    ) as client:
        page = await client.list_calls({"limit": 100})
        ids = [c["id"] for c in page["data"]]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(ids[i % len(ids)])

        async def worker() -> None:
            while not queue.empty():
                await client.get_call(queue.get_nowait())

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=0)
    args = parser.parse_args()
    with sandbox(2000, args.latency_ms) as sb:
        base_url, key = sb.base_url, sb.api_key
        print(
            f"{args.requests} detail requests, {args.concurrency} in flight, sandbox latency "
            f"{args.latency_ms:g} ms (sandbox in its own process)"
        )
        print(f"{'transport':<28}{'req/s':>8}{'client CPU s / 1k req':>24}")
        # the learned limiter's start-up ramp is part of each run (as in a sync)
        transports: dict[str, Callable[[], httpx.AsyncBaseTransport | None]] = {
            "httpx over aiohttp (ours)": lambda: None,
            "httpx default (httpcore)": lambda: httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=args.concurrency + 4)
            ),
        }
        for name, make in transports.items():
            wall, cpu = asyncio.run(drive(base_url, key, make(), args.requests, args.concurrency))
            print(f"{name:<28}{args.requests / wall:>8.0f}{cpu / args.requests * 1000:>24.2f}")


if __name__ == "__main__":
    main()
