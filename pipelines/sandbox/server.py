"""Running the sandbox: `Sandbox` (a background server for tests and the demo) and `serve`.

uvicorn and starlette are imported when a server starts, not when this module loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import socket
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pendulum

from .data import generate
from .defaults import DEFAULT_API_KEY
from .state import Clock, State, Stats

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


def _parse_now(now: str | datetime | float | None) -> int:
    """The clock's start as unix seconds; default: the current time rounded down to the minute."""
    if now is None:
        return int(time.time()) // 60 * 60
    if isinstance(now, int | float):
        return int(now)
    if isinstance(now, datetime):
        return int(pendulum.instance(now).timestamp())
    try:
        parsed = pendulum.parse(now)
    except ValueError:  # pendulum's own words name neither the option nor the format
        parsed = None
    if not isinstance(parsed, pendulum.DateTime):
        raise ValueError(
            f"--now {now!r} is not an ISO 8601 time, e.g. 2026-11-01T12:00:00Z "
            "(UTC unless it has an offset)"
        )
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
        rate_limit_headers: bool = False,
        fault_rate: float = 0.0,
        max_offset: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        plant_pii: bool = False,
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
            rate_limit_headers=rate_limit_headers,
            max_offset=max_offset,
        )
        self.state.set_rate_limit(rate_limit)
        self.state.data.plant_pii = plant_pii  # transcripts carry the contacts' identifiers
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def admin_url(self) -> str:
        """`http://HOST:PORT/_sandbox` once started."""
        return f"{self.base_url.removesuffix('/v1')}/_sandbox"

    # -- lifecycle ---------------------------------------------------------------------------
    def _bind(self) -> tuple[uvicorn.Server, socket.socket]:
        import uvicorn

        from .app import build_app

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror}; "
                "stop what serves there, or pass another --port (0 picks a free one)"
            ) from None
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
            date_header=False,  # the app sends the sandbox clock's own `Date`
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
        rate_limit_headers: bool | None = None,
        fault_rate: float | None = None,
        max_offset: int | None = None,
    ) -> None:
        """Change knobs at runtime; None leaves one unchanged, `rate_limit=0` disables it,
        `max_offset=-1` lifts the cap."""
        if latency_ms is not None:
            self.state.latency_ms = latency_ms
        if rate_limit is not None:
            self.state.set_rate_limit(rate_limit)
        if rate_limit_headers is not None:
            self.state.rate_limit_headers = rate_limit_headers
        if fault_rate is not None:
            self.state.fault_rate = fault_rate
        if max_offset is not None:
            self.state.max_offset = max_offset if max_offset >= 0 else None  # -1: no cap

    # -- drift and recordings: through the admin endpoints, so they land between requests ---
    def relabel(
        self,
        call_id: str,
        status: str | None = None,
        disposition: str | None = None,
        duration_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Relabel a final call; returns it as GET /v1/calls/{id} now answers."""
        body = {"status": status, "disposition": disposition, "duration_seconds": duration_seconds}
        fields = {k: v for k, v in body.items() if v is not None}
        call: dict[str, Any] = self._drift(call_id, "relabel", fields)["call"]
        return call

    def erase(self, call_id: str) -> None:
        """Erase a call: gone from the list, details, transcript, recording and truth."""
        self._drift(call_id, "erase", {})

    def delay_listing(self, call_id: str, seconds: int) -> str:
        """Keep a call out of GET /v1/calls until the clock reaches `started_at + seconds`
        (0 lifts the delay); returns that moment (ISO 8601)."""
        listed_from: str = self._drift(call_id, "delay-listing", {"seconds": seconds})[
            "listed_from"
        ]
        return listed_from

    def retranscribe(self, call_id: str, segments: int) -> dict[str, Any]:
        """Re-generate a call's transcript with `segments` segments (same job id); returns the
        completed transcript the API serves once it is ready."""
        transcript: dict[str, Any] = self._drift(call_id, "retranscribe", {"segments": segments})[
            "transcript"
        ]
        return transcript

    def refuse_recording(self, call_id: str, refuse: bool = True) -> None:
        """Make the call's recording answer 403 even on a fresh signed URL (or stop that)."""
        self._drift(call_id, "refuse-recording", {"refuse": refuse})

    def recording_bytes(self, call_id: str) -> bytes:
        """The WAV a signed URL of this call serves (not counted in the stats)."""
        response = self._admin("GET", f"calls/{call_id}/recording", None)
        return response.content

    def drift(self) -> dict[str, Any]:
        """The drift applied so far: relabelled, erased, delayed, retranscribed, refused."""
        body: dict[str, Any] = self._admin("GET", "drift", None).json()
        return body

    def _drift(self, call_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("POST", f"calls/{call_id}/{action}", body).json()
        return result

    def _admin(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """Call an admin endpoint; KeyError for a 404, ValueError for a 400 or 409."""
        if self._server is None:
            raise RuntimeError("start the sandbox first")
        response = httpx.request(method, f"{self.admin_url}/{path}", json=body, timeout=30)
        if response.status_code == 404:
            raise KeyError(path.split("/")[1] if path.startswith("calls/") else path)
        if response.status_code in (400, 409):
            raise ValueError(response.json()["error"]["message"])
        response.raise_for_status()
        return response


def serve(**options: Any) -> None:
    """Blocking: serve a sandbox built from `Sandbox` options; prints its URL and key."""
    sandbox = Sandbox(**options)
    server, sock = sandbox._bind()
    now = sandbox.now().to_iso8601_string()
    print(f"Neuron sandbox at {sandbox.base_url}  key: {sandbox.api_key}", flush=True)
    print(
        f"  clock: {now}{' (live)' if sandbox.state.clock.live else ' (frozen)'}; "
        f"admin: {sandbox.admin_url}/  (truth, clock, stats, config, drift)",
        flush=True,
    )
    print(
        "point neuron-calls at it (in another shell):\n"
        f"  export SOURCES__NEURON__API_KEY={sandbox.api_key}\n"
        f"  export SOURCES__NEURON__BASE_URL={sandbox.base_url}",
        flush=True,
    )
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(server.serve(sockets=[sock]))
