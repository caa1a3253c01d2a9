"""The client against the sandbox's rate limit: 429 share and time against the rate-bound time.

    python bench/bench_ratelimit.py [--details 600] [--concurrency 32] [--rate 60] [--old]

The sandbox runs in its own process with `--rate-limit RATE` (a token bucket, 429 with
Retry-After). Two cases: the limit held throughout, and the limit lifted halfway through the
bound time. `--old` also runs the client as it was before the learned limiter (the shared
429 gate of commit af1ca9f), loaded from git.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from sandbox_proc import SandboxProc, sandbox

from pipelines.neuron import client as new_client

OLD_COMMIT = "af1ca9f"


def old_client() -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:pipelines/neuron/client.py"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader("pipelines.neuron._client_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "pipelines.neuron"
    sys.modules[spec.name] = module
    exec(compile(source, "client_before.py", "exec"), module.__dict__)
    return module


def configure(sb: SandboxProc, rate: float | None) -> None:
    httpx.post(f"{sb.admin}/config", json={"rate_limit": rate or 0}, timeout=10).raise_for_status()


async def run(
    module: Any, sb: SandboxProc, details: int, concurrency: int, lift_at: float | None
) -> float:
    async with module.NeuronClient(sb.api_key, sb.base_url, max_concurrency=concurrency) as client:
        page = await client.list_calls({"limit": 100})
        ids = [c["id"] for c in page["data"]]
        await asyncio.sleep(1.1)  # the sandbox's bucket full again
        sb.reset_stats()
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(details):
            queue.put_nowait(ids[i % len(ids)])

        async def worker() -> None:
            while not queue.empty():
                await client.get_call(queue.get_nowait())

        async def lifter() -> None:
            if lift_at is not None:
                await asyncio.sleep(lift_at)
                await asyncio.to_thread(configure, sb, None)

        started = time.perf_counter()
        lift = asyncio.create_task(lifter())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        lift.cancel()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=60)
    parser.add_argument("--old", action="store_true", help="also run the client before")
    args = parser.parse_args()
    clients = {"after (learned)": new_client}
    if args.old:
        clients = {"before (429 gate)": old_client(), **clients}
    bound = args.details / args.rate
    print(
        f"{args.details} detail requests, {args.concurrency} in flight, sandbox limit "
        f"{args.rate:g} req/s (own process); rate-bound time {bound:.1f}s"
    )
    print(
        f"{'case':<16}{'client':<20}{'requests':>9}{'429s':>6}{'429 share':>10}"
        f"{'wall s':>8}{'x bound':>8}"
    )
    with sandbox(300, 0, "--rate-limit", str(args.rate)) as sb:
        for case, lift_at in (("fixed limit", None), ("lifted halfway", bound / 2)):
            for name, module in clients.items():
                configure(sb, args.rate)
                wall = asyncio.run(run(module, sb, args.details, args.concurrency, lift_at))
                stats = httpx.get(f"{sb.admin}/stats", timeout=10).json()
                limited = stats["by_status"].get("429", 0)
                print(
                    f"{case:<16}{name:<20}{stats['total']:>9}{limited:>6}"
                    f"{limited / stats['total']:>10.1%}{wall:>8.2f}{wall / bound:>8.2f}"
                )


if __name__ == "__main__":
    main()
