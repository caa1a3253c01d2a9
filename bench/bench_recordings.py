"""What archiving recordings costs: a full sync with and without `RECORDINGS_URL`.

    python bench/bench_recordings.py [--calls 1600] [--latency-ms 50]

The sandbox (its own process, 50 ms mean latency on every request, recordings included) serves
about 1,000 recordings at the default size. Each sync runs in a fresh child process and folder;
prints wall time, recordings per second, MB/s written, peak RSS, and the slowdown of the sync
with recordings on against off.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sandbox_proc import sandbox


def child(args: dict[str, Any]) -> None:
    from pipelines.cli import process_settings
    from pipelines.runner.sync import SyncOptions, run_sync

    process_settings()  # what a `neuron-calls` process sets for itself

    work = Path(args["dir"])
    source_args = {"base_url": args["base_url"], "api_key": args["api_key"]}
    if args.get("recordings"):
        source_args["recordings_url"] = str(work / "recordings")
    started = time.perf_counter()
    result = run_sync(
        SyncOptions(
            duckdb_path=work / "calls.duckdb",
            pipelines_dir=str(work / "dlt"),
            source_args=source_args,
        )
    )
    seconds = time.perf_counter() - started
    if result.exit_code not in (0, 3):
        raise SystemExit(f"sync failed ({result.exit_code}): {result.error}")
    folder = work / "recordings"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "recordings": result.report.recordings,
                "bytes": size,
                "requests": result.report.stats.requests,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run(label: str, base_url: str, api_key: str, recordings: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_recordings_") as tmp:
        args = {"dir": tmp, "base_url": base_url, "api_key": api_key, "recordings": recordings}
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(args)],
            capture_output=True,
            text=True,
            cwd=tmp,
            env={"HOME": tmp, "PATH": "/usr/bin:/bin", "RUNTIME__LOG_LEVEL": "WARNING"},
        )
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    mb = out["bytes"] / 2**20
    rate = out["recordings"] / out["seconds"]
    print(
        f"{label:<18}{out['seconds']:>8.1f}{out['requests']:>10,}{out['recordings']:>12,}"
        f"{rate:>12.0f}{mb / out['seconds']:>9.2f}{out['rss_mb']:>9.0f}",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1600)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print(f"sandbox: {args.calls:,} calls, {args.latency_ms:.0f} ms mean latency")
    print(
        f"{'sync':<18}{'wall s':>8}{'requests':>10}{'recordings':>12}{'rec/s':>12}"
        f"{'MB/s':>9}{'RSS MB':>9}"
    )
    with sandbox(args.calls, args.latency_ms) as sb:
        off = run("recordings off", sb.base_url, sb.api_key, False)
        on = run("recordings on", sb.base_url, sb.api_key, True)
    print(
        f"slowdown with recordings on: {on['seconds'] / off['seconds']:.2f}x "
        f"({on['recordings']:,} recordings, {on['bytes'] / 2**20:.1f} MB)"
    )


if __name__ == "__main__":
    main()
