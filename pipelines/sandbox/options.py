"""The sandbox's command line: `neuron-calls sandbox` and `python -m pipelines.sandbox`.

Kept apart from the server so that building the CLI's parser imports no web stack.
"""

from __future__ import annotations

import argparse
import sys

from .defaults import DEFAULT_API_KEY, DEFAULT_PORT

WEB_STACK = ("starlette", "uvicorn", "uvloop", "httptools")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    a("--port", type=int, default=DEFAULT_PORT, help="port (default 8765; 0 picks a free one)")
    a("--api-key", default=DEFAULT_API_KEY, help="bearer key clients must send")
    a("--calls", type=int, default=2000, help="calls dialled before the clock's start")
    a("--seed", type=int, default=42, help="seed of the generated data and faults")
    a(
        "--now",
        default=None,
        help="freeze the clock at this ISO 8601 time, UTC unless it has an offset (default: now)",
    )
    a("--days", type=int, default=30, help="days of history ending at --now (default 30)")
    a("--live", action="store_true", help="let the clock run, so new calls keep arriving")
    a("--speed", type=float, default=1.0, help="clock speed factor with --live (default 1)")
    a("--latency-ms", type=float, default=0.0, help="mean added latency per API request")
    a("--rate-limit", type=float, default=None, metavar="RPS", help="global requests/s limit")
    a(
        "--rate-limit-headers",
        action="store_true",
        help="with --rate-limit, send RateLimit-Limit/-Remaining/-Reset on every API response",
    )
    a(
        "--plant-pii",
        action="store_true",
        help="transcripts carry the contact's name, number, email, PAN, Aadhaar and card",
    )
    a(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share of API requests answered by a fault (429/500/503/drop/truncated)",
    )
    a(
        "--max-offset",
        type=int,
        default=None,
        metavar="N",
        help="the list answers 400 to an offset past N, as many APIs do (default: no cap)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    problems = [
        (not 0 <= args.port <= 65535, "--port must be 0..65535"),
        (not 0 <= args.fault_rate <= 1, "--fault-rate must be between 0 and 1"),
        (args.calls < 0 or args.days < 1, "--calls must be >= 0 and --days >= 1"),
        (args.latency_ms < 0 or (args.rate_limit or 0) < 0, "--latency-ms, --rate-limit >= 0"),
        ((args.max_offset or 0) < 0, "--max-offset must be >= 0"),
    ]
    for bad, message in problems:
        if bad:
            print(f"neuron-calls sandbox: {message}", file=sys.stderr)
            return 2
    from .server import serve

    try:
        serve(
            calls=args.calls,
            seed=args.seed,
            now=args.now,
            days=args.days,
            api_key=args.api_key,
            live=args.live,
            speed=args.speed,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit,
            rate_limit_headers=getattr(args, "rate_limit_headers", False),
            fault_rate=args.fault_rate,
            max_offset=getattr(args, "max_offset", None),
            plant_pii=getattr(args, "plant_pii", False),
            host=args.host,
            port=args.port,
        )
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in WEB_STACK:
            raise
        print(
            f"neuron-calls sandbox: {exc.name} is not installed; the sandbox needs its web "
            "stack: pip install 'neuron-calls[sandbox]'",
            file=sys.stderr,
        )
        return 2
    except (ValueError, OSError, OverflowError) as exc:
        print(f"neuron-calls sandbox: {exc}", file=sys.stderr)
        return 2
    return 0
