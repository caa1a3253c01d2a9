"""What `SOURCES__NEURON__PII=pseudonymize` costs: the CPU of redaction, then whole syncs.

    python bench/bench_pii.py [--calls 3000] [--latency-ms 50] [--concurrency 32] [--repeat 2]
                              [--skip-sync]

1. In process, on the sandbox's own transcripts (`--calls` of them, as generated, then with
   the planted identifiers of `--plant-pii`: the contact's name and number, email, PAN, Aadhaar,
   card, another number, an order number in every transcript): the CPU of `Privacy.screen`
   per call and per segment under keep and pseudonymize, and, for comparison, what
   `phonenumbers.PhoneNumberMatcher` alone takes on every segment.
2. Whole syncs of a sandbox with planted identifiers (its own process, `--latency-ms`), keep
   then pseudonymize, `--repeat` times each, each in a fresh child process and folder: seconds
   and CPU; the ratio keep / pseudonymize is the sync's efficiency relative to keep.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sandbox_proc import sandbox

KEY = "bench-pii-key-0123456789abcdef"
NOW = 1793534400  # 2026-11-01T12:00:00Z, the sandbox's frozen clock in the benchmarks


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fetched_calls(calls: int, plant: bool) -> list[tuple[dict[str, Any], Any]]:
    """(calls row, transcript rows) of every generated call with a transcript."""
    from pipelines.neuron.rows import call_row, transcript_rows
    from pipelines.sandbox.data import generate
    from pipelines.sandbox.transcripts import make_transcript, plant_pii, planted_pii

    data = generate(calls, 42, NOW)
    out = []
    for pos, c in enumerate(data.calls):
        if c.job_id is None:
            continue
        transcript = make_transcript(data.seed, pos, c)
        if plant:
            transcript = plant_pii(transcript, planted_pii(data.seed, pos, c))
        row = call_row({"id": c.id, "contact": {"phone": c.phone, "name": c.name}})
        out.append((row, transcript_rows(c.id, transcript)))
    return out


def screen_cpu(privacy: Any, calls: list[tuple[dict[str, Any], Any]]) -> float:
    """CPU seconds of `privacy.screen` over every call (best of five: a shared machine)."""
    best = float("inf")
    for _ in range(5):
        items = [SimpleNamespace(call=row, transcript=rows) for row, rows in calls]
        started = _cpu()
        for item in items:
            privacy.screen(item)
        best = min(best, _cpu() - started)
    return best


def matcher_cpu(calls: list[tuple[dict[str, Any], Any]]) -> float:
    import phonenumbers

    texts = [s["text"] for _, rows in calls for s in rows[1]]
    started = _cpu()
    for text in texts:
        list(phonenumbers.PhoneNumberMatcher(text, "IN"))
    return _cpu() - started


def redaction_section(calls: int) -> None:
    from pipelines.neuron.pii import Privacy

    print(f"\nredaction, in process: {calls:,} generated calls, the ones with a transcript")
    print(
        f"{'transcripts':<34}{'calls':>7}{'segments':>10}{'policy':>14}{'µs/call':>9}{'µs/seg':>8}"
    )
    for plant in (False, True):
        corpus = fetched_calls(calls, plant)
        segments = sum(len(rows[1]) for _, rows in corpus)
        label = "as generated" if not plant else "with planted identifiers"
        for privacy in (Privacy(), Privacy("pseudonymize", KEY.encode())):
            cpu = screen_cpu(privacy, corpus)
            print(
                f"{label:<34}{len(corpus):>7,}{segments:>10,}{privacy.policy:>14}"
                f"{cpu / len(corpus) * 1e6:>9.1f}{cpu / segments * 1e6:>8.1f}",
                flush=True,
            )
        cpu = matcher_cpu(corpus)
        print(
            f"{label:<34}{len(corpus):>7,}{segments:>10,}{'PhoneMatcher':>14}"
            f"{cpu / len(corpus) * 1e6:>9.1f}{cpu / segments * 1e6:>8.1f}   (for comparison)",
            flush=True,
        )


# -- whole syncs -----------------------------------------------------------------------------


def child(raw: str) -> None:
    from pipelines.cli import process_settings
    from pipelines.runner.sync import SyncOptions, run_sync

    process_settings()  # what a `neuron-calls` process sets for itself

    args = json.loads(raw)
    work = Path(args["dir"])
    source_args = {"base_url": args["base_url"], "api_key": args["api_key"]}
    source_args.update(max_concurrency=args["concurrency"], pii=args["pii"], pii_key=KEY)
    options = SyncOptions(
        duckdb_path=work / "sync.duckdb",
        pipelines_dir=str(work / "pipelines"),
        source_args=source_args,
    )
    started, cpu = time.monotonic(), _cpu()
    result = run_sync(options)
    if result.exit_code not in (0, 3):
        raise SystemExit(f"sync failed ({result.exit_code}): {result.error}")
    out = {
        "seconds": time.monotonic() - started,
        "cpu": _cpu() - cpu,
        "calls": result.report.calls,
    }
    print(json.dumps(out))


def run_child(args: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "HOME": args["dir"], "RUNTIME__LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=args["dir"],
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def sync_section(calls: int, latency_ms: float, concurrency: int, repeat: int, plant: bool) -> None:
    label = "with planted identifiers" if plant else "with the sandbox's own transcripts"
    print(
        f"\nwhole syncs: {calls:,} calls {label}, {latency_ms:.0f} ms, "
        f"c={concurrency}, {repeat}x each, alternating; medians"
    )
    runs: dict[str, list[dict[str, Any]]] = {"keep": [], "pseudonymize": []}
    options = ("--plant-pii",) if plant else ()
    with (
        tempfile.TemporaryDirectory(prefix="bench_pii_") as tmp,
        sandbox(calls, latency_ms, *options) as sb,
    ):
        for i in range(repeat):
            for policy in runs:
                work = Path(tmp, f"{policy}_{i}_{plant}")
                work.mkdir()
                args = {"dir": str(work), "base_url": sb.base_url, "api_key": sb.api_key}
                runs[policy].append(run_child({**args, "concurrency": concurrency, "pii": policy}))
    print(f"{'policy':<14}{'seconds':>9}{'CPU s':>8}{'CPU ms/call':>13}")
    medians: dict[str, float] = {}
    for policy, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        medians[policy] = seconds
        per_call = cpu / max(results[0]["calls"], 1) * 1e3
        print(f"{policy:<14}{seconds:>9.2f}{cpu:>8.2f}{per_call:>13.3f}")
    ratio = medians["keep"] / medians["pseudonymize"]
    verdict = "ok" if ratio >= 0.95 else "OVER"
    print(f"efficiency of pseudonymize relative to keep: {ratio:.3f} (goal >= 0.95: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument(
        "--transcripts",
        choices=["generated", "planted", "both"],
        default="both",
        help="the syncs' sandbox: its own transcripts, with planted identifiers, or both",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    redaction_section(args.calls)
    if not args.skip_sync:
        for plant in {"generated": [False], "planted": [True], "both": [False, True]}[
            args.transcripts
        ]:
            sync_section(args.calls, args.latency_ms, args.concurrency, args.repeat, plant)


if __name__ == "__main__":
    main()
