"""The client against the sandbox's rate limit: 429 share and time against the rate-bound time.

    python bench/bench_ratelimit.py [--details 600] [--concurrency 32] [--rate 60]
                                    [--old [COMMIT]]

The sandbox runs in its own process with `--rate-limit RATE` (a token bucket, 429 with
Retry-After). Cases: the limit held throughout; the limit lifted halfway through the bound time
(both against the rate-bound time); then no limit, 20 ms, `--faults` details with no faults, 2%
and 12% of requests failing at random (the sandbox's fault injection: 30% of them 429 with
`Retry-After: 1`, the rest 5xx, dropped or cut off), against the fault-free time. `--old` also
runs the client of another commit, loaded from git: by default af1ca9f, before the learned
limiter (a shared 429 gate). Then whole first syncs (`--sync-calls`, 3,000 calls at 20 ms) with
0, 2% and 12% of random faults, each against the fault-free sync.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from sandbox_proc import SandboxProc, sandbox

from pipelines.neuron.api import client as new_client

OLD_COMMIT = "af1ca9f"


def old_client(commit: str = OLD_COMMIT) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:pipelines/neuron/client.py"],
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


def configure(
    sb: SandboxProc, rate: float | None, fault_rate: float = 0.0, latency_ms: float = 0.0
) -> None:
    settings = {"rate_limit": rate or 0, "fault_rate": fault_rate, "latency_ms": latency_ms}
    httpx.post(f"{sb.admin}/config", json=settings, timeout=10).raise_for_status()


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
    parser.add_argument("--faults", type=int, default=3000)
    parser.add_argument("--sync-calls", type=int, default=3000, help="0: no whole syncs")
    parser.add_argument(
        "--old", nargs="?", const=OLD_COMMIT, metavar="COMMIT", help="also run this commit's client"
    )
    args = parser.parse_args()
    clients = {"after (learned)": new_client}
    if args.old:
        clients = {f"before ({args.old})": old_client(args.old), **clients}
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
                print_row(sb, case, name, wall, bound)
        # random faults: against the same run without faults
        clean = 0.0
        for fault_rate in (0.0, 0.02, 0.12):
            for name, module in clients.items():
                configure(sb, None, fault_rate=fault_rate, latency_ms=20)
                wall = asyncio.run(run(module, sb, args.faults, args.concurrency, None))
                clean = clean or wall
                print_row(sb, f"{fault_rate:.0%} faults", name, wall, clean)
        print(f"(faults: {args.faults} details at 20 ms; x bound = wall / the fault-free wall)")
    if args.sync_calls:
        sync_section(args.sync_calls, args.concurrency)


def sync_section(calls: int, concurrency: int) -> None:
    """Whole first syncs of `calls` calls at 20 ms with 0, 2% and 12% of random faults, each in a
    child process as `bench_sync.py` runs them (its time runs to the end of publishing)."""
    import bench_sync

    print(f"\nfirst sync of {calls:,} calls at 20 ms, {concurrency} in flight, each a fresh one")
    with sandbox(calls, 20) as sb, tempfile.TemporaryDirectory() as root:
        clean = 0.0
        for fault_rate in (0.0, 0.02, 0.12):
            configure(sb, None, fault_rate=fault_rate, latency_ms=20)
            sb.reset_stats()
            work = Path(root) / f"faults-{fault_rate}"
            work.mkdir()
            job = {"dir": str(work), "base_url": sb.base_url, "api_key": sb.api_key}
            wall = bench_sync.run_child("ours", {**job, "concurrency": concurrency})["seconds"]
            clean = clean or wall
            print_row(sb, f"{fault_rate:.0%} faults", "sync", wall, clean)
    print("(x bound = wall / the fault-free sync's)")


def print_row(sb: SandboxProc, case: str, client: str, wall: float, bound: float) -> None:
    limited, total = counts(sb)
    print(
        f"{case:<16}{client:<20}{total:>9}{limited:>6}{limited / total:>10.1%}"
        f"{wall:>8.2f}{wall / bound:>8.2f}"
    )


def counts(sb: SandboxProc) -> tuple[int, int]:
    """429s and all requests since the last reset."""
    stats = httpx.get(f"{sb.admin}/stats", timeout=10).json()
    return stats["by_status"].get("429", 0), stats["total"]


if __name__ == "__main__":
    main()
