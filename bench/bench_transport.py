"""Ways to send the API's GETs, on the sandbox: aiohttp alone (the yardstick), httpx's client over
httpx-aiohttp's transport, our client (httpx over that transport, each GET straight to it), and
our client over httpx's own transport (httpcore).

Usage: python bench/bench_transport.py [--requests 4000] [--concurrency 32] [--latency-ms 20]
                                       [--repeat 2]
Prints requests/s and CPU microseconds per request of this process for each way, `--repeat`
rounds one after the other (the machine's load moves: compare within a round); then what the
retry wrapper alone costs a request, ours against tenacity's.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import httpx
import orjson
from sandbox_proc import sandbox

from pipelines.neuron.api.client import NeuronClient

Get = Callable[[str], Awaitable[object]]
Way = Callable[[AsyncExitStack, str, str, int], Awaitable[Get]]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def aiohttp_alone(stack: AsyncExitStack, base: str, key: str, pool: int) -> Get:
    session = await stack.enter_async_context(
        aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            connector=aiohttp.TCPConnector(limit=pool),
        )
    )

    async def get(call_id: str) -> object:
        async with session.get(f"{base}/calls/{call_id}") as reply:
            return orjson.loads(await reply.read())

    return get


async def httpx_client(stack: AsyncExitStack, base: str, key: str, pool: int) -> Get:
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    client = await stack.enter_async_context(
        httpx.AsyncClient(
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            transport=AiohttpTransport(limits=limits),
        )
    )

    async def get(call_id: str) -> object:
        return orjson.loads((await client.get(f"{base}/calls/{call_id}")).content)

    return get


def ours(transport: Callable[[int], httpx.AsyncBaseTransport | None]) -> Way:
    async def make(stack: AsyncExitStack, base: str, key: str, pool: int) -> Get:
        client = NeuronClient(key, base, max_concurrency=pool - 4, transport=transport(pool))
        return (await stack.enter_async_context(client)).get_call

    return make


WAYS: dict[str, Way] = {
    "aiohttp alone": aiohttp_alone,
    "httpx AsyncClient.get": httpx_client,
    "ours (httpx-aiohttp)": ours(lambda pool: None),
    "ours over httpcore": ours(
        lambda pool: httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=pool))
    ),
}


async def drive(way: Way, base: str, key: str, total: int, c: int) -> tuple[float, float]:
    async with AsyncExitStack() as stack:
        get = await way(stack, base, key, c + 4)
        ids = [item["id"] for item in (await ours_page(base, key))["data"]]
        await asyncio.gather(*(get(call_id) for call_id in ids[:c]))  # connections open
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(ids[i % len(ids)])

        async def worker() -> None:
            while not queue.empty():
                await get(queue.get_nowait())

        cpu, wall = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        return time.perf_counter() - wall, cpu_seconds() - cpu


async def ours_page(base: str, key: str) -> dict[str, Any]:
    async with NeuronClient(key, base) as client:
        return await client.list_calls({"limit": 100})


async def retry_cost(n: int = 20_000) -> None:
    """CPU of the retry wrapper alone, for a request that succeeds at once: our loop against
    tenacity's `AsyncRetrying` (built per request: it keeps its state on the instance)."""
    from tenacity import AsyncRetrying, stop_after_attempt, wait_random_exponential

    async def attempt(number: int = 1) -> int:
        return 1

    async def with_tenacity() -> int:
        async for step in AsyncRetrying(
            stop=stop_after_attempt(5), wait=wait_random_exponential(0.05, 5), reraise=True
        ):
            with step:
                return await attempt()
        raise AssertionError("unreachable")

    client = NeuronClient("key", "http://127.0.0.1/v1")
    ways: dict[str, Callable[[], Awaitable[int]]] = {
        "ours (_with_retries)": lambda: client._with_retries("GET /calls", attempt),
        "tenacity AsyncRetrying": with_tenacity,
    }
    for name, way in ways.items():
        cpu = cpu_seconds()
        for _ in range(n):
            await way()
        print(f"retries, {name:<24}{(cpu_seconds() - cpu) / n * 1e6:>8.1f} us CPU / request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with sandbox(2000, args.latency_ms) as sb:
        print(
            f"{args.requests} detail requests, {args.concurrency} in flight, sandbox latency "
            f"{args.latency_ms:g} ms (sandbox in its own process)"
        )
        print(f"{'round':<6}{'how a GET is sent':<26}{'req/s':>8}{'CPU us / req':>14}")
        for round_ in range(1, args.repeat + 1):
            for name, way in WAYS.items():
                wall, cpu = asyncio.run(
                    drive(way, sb.base_url, sb.api_key, args.requests, args.concurrency)
                )
                per = cpu / args.requests * 1e6
                print(f"{round_:<6}{name:<26}{args.requests / wall:>8.0f}{per:>14.0f}", flush=True)
    asyncio.run(retry_cost())


if __name__ == "__main__":
    main()
