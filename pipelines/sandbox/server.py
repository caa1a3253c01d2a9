"""Running the sandbox: `Sandbox` (a background server for tests and the demo) and `serve`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import math
import socket
import sys
import threading
import time
from datetime import datetime
from typing import Any

import pendulum
import uvicorn

from .app import Clock, State, Stats, build_app
from .data import generate

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "sk_sandbox_neuron_calls_0000"
DEFAULT_PORT = 8765


def _parse_now(now: str | datetime | float | None) -> int:
    """The clock's start as unix seconds; default: the current time rounded down to the minute."""
    if now is None:
        return int(time.time()) // 60 * 60
    if isinstance(now, int | float):
        return int(now)
    if isinstance(now, datetime):
        return int(pendulum.instance(now).timestamp())
    parsed = pendulum.parse(now)
    if not isinstance(parsed, pendulum.DateTime):
        raise ValueError(f"not an ISO 8601 datetime: {now!r}")
    return int(parsed.timestamp())


class Sandbox:
    """A seeded emulator of the Neuron Calls API on a real HTTP server on loopback.

    >>> with Sandbox(calls=300, now="2026-11-01T12:00:00Z") as sb:
    ...     httpx.get(f"{sb.base_url}/calls", headers={"Authorization": f"Bearer {sb.api_key}"})
    """

    def __init__(
        self,
        *,
        calls: int = 2000,
        seed: int = 42,
        now: str | datetime | None = None,
        days: int = 30,
        api_key: str = DEFAULT_API_KEY,
        live: bool = False,
        speed: float = 1.0,
        latency_ms: float = 0,
        rate_limit: float | None = None,
        fault_rate: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        start = _parse_now(now)
        self.api_key, self.host, self.port = api_key, host, port
        self.base_url = ""
        self.state = State(
            # A live clock at `speed` needs more future calls to keep them coming.
            data=generate(
                calls,
                seed,
                start,
                days,
                future_days=min(365, max(1, math.ceil(speed))) if live else 1,
            ),
            clock=Clock(start, live=live, speed=speed),
            api_key=api_key,
            # Derived from seed and key so that two equal sandboxes sign equal URLs.
            secret=hashlib.sha256(f"sandbox:{seed}:{api_key}".encode()).digest(),
            seed=seed,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
        )
        self.state.set_rate_limit(rate_limit)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def _bind(self) -> tuple[uvicorn.Server, socket.socket]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        origin = f"http://{self.host}:{self.port}"
        self.state.origin = origin
        self.base_url = f"{origin}/v1"
        config = uvicorn.Config(
            build_app(self.state),
            loop="uvloop",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            backlog=2048,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        return uvicorn.Server(config), sock

    def start(self) -> Sandbox:
        server, sock = self._bind()
        self._server = server

        def run() -> None:
            import uvloop

            asyncio.set_event_loop_policy(None)
            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve(sockets=[sock]))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"sandbox:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.005)
        log.info("sandbox serving at %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clock, truth, stats, knobs ----------------------------------------------------------
    def now(self) -> pendulum.DateTime:
        return pendulum.from_timestamp(int(self.state.clock.now()), tz="UTC")

    def set_now(self, when: str | datetime | float) -> None:
        self.state.clock.set(_parse_now(when))

    def advance(self, seconds: float) -> None:
        self.state.clock.advance(seconds)

    def truth(self) -> dict[str, Any]:
        return self.state.truth()

    def stats(self) -> dict[str, Any]:
        return self.state.stats.as_json()

    def reset_stats(self) -> None:
        self.state.stats = Stats()

    def configure(
        self,
        *,
        latency_ms: float | None = None,
        rate_limit: float | None = None,
        fault_rate: float | None = None,
    ) -> None:
        """Change knobs at runtime; None leaves one unchanged, `rate_limit=0` disables it."""
        if latency_ms is not None:
            self.state.latency_ms = latency_ms
        if rate_limit is not None:
            self.state.set_rate_limit(rate_limit)
        if fault_rate is not None:
            self.state.fault_rate = fault_rate


def serve(**options: Any) -> None:
    """Blocking: serve a sandbox built from `Sandbox` options; prints its URL and key."""
    sandbox = Sandbox(**options)
    server, sock = sandbox._bind()
    now = sandbox.now().to_iso8601_string()
    print(f"Neuron sandbox at {sandbox.base_url}  key: {sandbox.api_key}", flush=True)
    print(
        f"  clock: {now}{' (live)' if sandbox.state.clock.live else ' (frozen)'}; "
        f"admin: {sandbox.base_url[:-3]}/_sandbox/  (truth, clock, stats, config)",
        flush=True,
    )
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(server.serve(sockets=[sock]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    a("--port", type=int, default=DEFAULT_PORT, help="port (default 8765; 0 picks a free one)")
    a("--api-key", default=DEFAULT_API_KEY, help="bearer key clients must send")
    a("--calls", type=int, default=2000, help="calls dialled before the clock's start")
    a("--seed", type=int, default=42, help="seed of the generated data and faults")
    a("--now", default=None, help="freeze the clock at this ISO 8601 time (default: now)")
    a("--days", type=int, default=30, help="days of history ending at --now (default 30)")
    a("--live", action="store_true", help="let the clock run, so new calls keep arriving")
    a("--speed", type=float, default=1.0, help="clock speed factor with --live (default 1)")
    a("--latency-ms", type=float, default=0.0, help="mean added latency per API request")
    a("--rate-limit", type=float, default=None, metavar="RPS", help="global requests/s limit")
    a(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share of API requests answered by a fault (429/500/503/drop/truncated)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    problems = [
        (not 0 <= args.port <= 65535, "--port must be 0..65535"),
        (not 0 <= args.fault_rate <= 1, "--fault-rate must be between 0 and 1"),
        (args.calls < 0 or args.days < 1, "--calls must be >= 0 and --days >= 1"),
        (args.latency_ms < 0 or (args.rate_limit or 0) < 0, "--latency-ms, --rate-limit >= 0"),
    ]
    for bad, message in problems:
        if bad:
            print(f"neuron-calls sandbox: {message}", file=sys.stderr)
            return 2
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
            fault_rate=args.fault_rate,
            host=args.host,
            port=args.port,
        )
    except (ValueError, OSError, OverflowError) as exc:
        print(f"neuron-calls sandbox: {exc}", file=sys.stderr)
        return 2
    return 0
