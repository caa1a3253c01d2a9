"""Benchmark of the sandbox server: startup, memory, throughput and in-flight capacity.

Starts `python -m pipelines.sandbox` in a subprocess and drives it with an aiohttp load
generator in this process (so the client and the server each have about one core).

    .venv/bin/python bench/bench_sandbox.py [--calls 100000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import psutil
from sandbox_proc import sandbox

KEY = "sk_bench"


async def hammer(
    base: str, paths: list[str], seconds: float, concurrency: int, server: psutil.Process
) -> dict[str, Any]:
    """Requests/s over `seconds`, `concurrency` keep-alive connections, cycling `paths`."""
    headers = {"Authorization": f"Bearer {KEY}"}
    done, bad = 0, 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        stop = time.perf_counter() + seconds
        cpu0 = server.cpu_times()

        async def worker(k: int) -> None:
            nonlocal done, bad
            i = k
            while time.perf_counter() < stop:
                async with session.get(paths[i % len(paths)]) as r:
                    await r.read()
                    bad += r.status != 200
                done += 1
                i += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu1 = server.cpu_times()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "rps": done / elapsed,
        "errors": bad,
        "server_cpu": cpu / elapsed,
        "rps_per_server_core": done / cpu if cpu else float("nan"),
    }


async def in_flight(base: str, n: int, latency_ms: float) -> dict[str, Any]:
    """Fire `n` requests at once against `latency_ms` of latency; all should overlap."""
    headers = {"Authorization": f"Bearer {KEY}"}
    root = base[: -len("/v1")]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        async with session.post(f"{root}/_sandbox/config", json={"latency_ms": latency_ms}):
            pass

        async def one() -> int:
            async with session.get(f"{base}/calls?limit=1") as r:
                await r.read()
                return r.status

        t0 = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(n)))
        elapsed = time.perf_counter() - t0
        async with session.post(f"{root}/_sandbox/config", json={"latency_ms": 0}):
            pass
    return {"requests": n, "ok": statuses.count(200), "elapsed": elapsed}


async def main_async(args: argparse.Namespace) -> None:
    with sandbox(args.calls, 0, "--api-key", KEY) as sb:
        base, server = sb.base_url, psutil.Process(sb.proc.pid)
        rss = server.memory_info().rss / 2**20
        print(f"startup with {args.calls:,} calls: {sb.startup_seconds:.2f} s   RSS: {rss:.0f} MB")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
            async with s.get(f"{base}/calls?limit=100&offset=1000") as r:
                ids = [c["id"] for c in (await r.json())["data"]]
            with_transcript = []
            for i in ids:
                async with s.get(f"{base}/calls/{i}") as r:
                    if (await r.json())["transcript_job_id"]:
                        with_transcript.append(i)
        cases = {
            "detail  GET /calls/{id}": [f"{base}/calls/{i}" for i in ids],
            "list    GET /calls?limit=20": [f"{base}/calls?offset={k * 20}" for k in range(50)],
            "list    GET /calls?limit=100": [
                f"{base}/calls?limit=100&offset={k * 100}" for k in range(50)
            ],
            "filter  GET /calls?language=ta-IN": [
                f"{base}/calls?language=ta-IN&offset={k}" for k in range(50)
            ],
            "transcript GET /calls/{id}/transcript": [
                f"{base}/calls/{i}/transcript" for i in with_transcript
            ],
        }
        for name, paths in cases.items():
            res = await hammer(base, paths, args.seconds, args.concurrency, server)
            print(
                f"{name:40s} {res['rps']:8.0f} req/s  (server CPU {res['server_cpu']:.2f} "
                f"cores -> {res['rps_per_server_core']:.0f} req/s per server core; "
                f"non-200: {res['errors']})"
            )
        for n in (2000, 5000):
            res = await in_flight(base, n, 100)
            print(
                f"in flight: {res['requests']} concurrent at 100 ms latency: {res['ok']} ok "
                f"in {res['elapsed']:.2f} s"
            )
        rss = server.memory_info().rss / 2**20
        print(f"RSS after the run: {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
