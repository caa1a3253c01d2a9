"""The sandbox ASGI app: the /v1 API, signed recordings and the /_sandbox admin endpoints.

One outer ASGI layer (`Gate`) does what the vendor's edge does to /v1 requests: latency,
bearer auth, a global token-bucket rate limit, seeded fault injection, and request counters.
Behind it a plain Starlette router renders the `Dataset` at the sandbox clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import random
import re
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import pendulum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .data import RECORDING_TTL, Dataset, iso, sign, verify

log = logging.getLogger(__name__)

ENDPOINTS = ("list", "detail", "transcript", "recording")
FAULT_KINDS = (("429", 0.3), ("500", 0.2), ("503", 0.2), ("drop", 0.15), ("truncated", 0.15))


class Clock:
    """The sandbox's notion of now: frozen at a moment, or running at `speed` from it."""

    def __init__(self, now: float, *, live: bool = False, speed: float = 1.0) -> None:
        self.live, self.speed = live, speed
        self._anchor, self._mono = float(now), time.monotonic()

    def now(self) -> float:
        if not self.live:
            return self._anchor
        return self._anchor + (time.monotonic() - self._mono) * self.speed

    def set(self, now: float) -> None:
        self._anchor, self._mono = float(now), time.monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)


@dataclass
class Stats:
    by_endpoint: dict[str, Counter[str]] = field(
        default_factory=lambda: {e: Counter() for e in ENDPOINTS}
    )
    faults: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)  # per method+path+query, for faults

    def as_json(self) -> dict[str, Any]:
        by_status: Counter[str] = Counter()
        for c in self.by_endpoint.values():
            by_status.update(c)
        return {
            "total": sum(by_status.values()),
            "by_endpoint": {e: sum(c.values()) for e, c in self.by_endpoint.items()},
            "by_status": dict(by_status),
            "by_endpoint_status": {e: dict(c) for e, c in self.by_endpoint.items()},
            "faults": dict(self.faults),
        }


class TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = max(1.0, rate)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a token was taken; else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class State:
    data: Dataset
    clock: Clock
    api_key: str
    secret: bytes
    seed: int
    origin: str = "http://127.0.0.1"
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    bucket: TokenBucket | None = None
    stats: Stats = field(default_factory=Stats)
    jitter: random.Random = field(default_factory=random.Random)

    def set_rate_limit(self, rps: float | None) -> None:
        self.bucket = TokenBucket(rps) if rps else None

    def recording_url(self, call_id: str) -> str:
        expires = int(self.clock.now()) + RECORDING_TTL
        token = sign(self.secret, call_id, expires)
        return f"{self.origin}/recordings/{call_id}.wav?token={token}&expires={expires}"

    def truth(self) -> dict[str, Any]:
        now = self.clock.now()
        data = self.data
        visible = data.calls[: data.visible(now)][::-1]
        return {
            "now": iso(now),
            "calls": [
                data.call_json(c, now, detail=True, sign_url=self.recording_url) for c in visible
            ],
            "transcripts": {
                c.id: data.transcript_json(c, now)
                for c in visible
                if data.transcript_ready(c, now) and c.ended <= now
            },
        }

    def fault_for(self, method: str, target: str) -> str | None:
        """A reproducible fault decision: hash of (seed, request, attempt number)."""
        if self.fault_rate <= 0:
            return None
        key = f"{method} {target}"
        attempt = self.stats.attempts[key]
        self.stats.attempts[key] += 1
        digest = hashlib.blake2b(f"{self.seed}|{key}|{attempt}".encode(), digest_size=16).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        if roll >= self.fault_rate:
            return None
        pick = int.from_bytes(digest[8:], "big") / 2**64
        for kind, share in FAULT_KINDS:
            if pick < share:
                return kind
            pick -= share
        return FAULT_KINDS[-1][0]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


# -- the edge: latency, auth, rate limit, faults, counters ----------------------------------------
CALL_PATH = re.compile(r"^/v1/calls/([^/]+)(/transcript)?/?$")


def classify(path: str) -> str | None:
    if path.rstrip("/") == "/v1/calls":
        return "list"
    m = CALL_PATH.match(path)
    if m:
        return "transcript" if m.group(2) else "detail"
    if path.startswith("/recordings/"):
        return "recording"
    return None


class Gate:
    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        endpoint = classify(path)
        if endpoint is None and not path.startswith("/v1"):
            await self.app(scope, receive, send)
            return
        st = self.state
        counter = st.stats.by_endpoint.get(endpoint or "", Counter())
        if st.latency_ms > 0:
            await asyncio.sleep(st.latency_ms * st.jitter.uniform(0.5, 1.5) / 1000)
        if endpoint == "recording":
            await self.app(scope, receive, counting(send, counter))
            return
        for name, value in scope["headers"]:
            if name == b"authorization":
                ok = value == f"Bearer {st.api_key}".encode()
                break
        else:
            ok = False
        if not ok:
            resp = error(
                401,
                "unauthorized",
                "Missing or invalid API key. Send 'Authorization: Bearer YOUR_API_KEY'.",
            )
            await resp(scope, receive, counting(send, counter))
            return
        if st.bucket is not None:
            wait = st.bucket.take()
            if wait > 0:
                resp = error(
                    429,
                    "rate_limited",
                    "Too many requests; retry later.",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
                await resp(scope, receive, counting(send, counter))
                return
        query = scope.get("query_string", b"").decode("latin-1")
        fault = st.fault_for(scope["method"], f"{path}?{query}")
        if fault is None:
            await self.app(scope, receive, counting(send, counter))
            return
        st.stats.faults[fault] += 1
        log.debug("injecting fault %s on %s", fault, path)
        if fault == "429":
            resp = error(
                429, "rate_limited", "Too many requests; retry later.", {"Retry-After": "1"}
            )
        elif fault in ("500", "503"):
            resp = error(
                int(fault),
                "server_error" if fault == "500" else "unavailable",
                "The service had a problem; retry later.",
            )
        elif fault == "drop":
            counter["dropped"] += 1
            await drop_connection(send)
            return
        else:
            await self.app(scope, receive, counting(truncating(send), counter))
            return
        await resp(scope, receive, counting(send, counter))


def counting(send: Send, counter: Counter[str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            counter[str(message["status"])] += 1
        await send(message)

    return wrapped


def truncating(send: Send) -> Send:
    """Send a 2xx body cut in half, with a Content-Length that matches the cut body."""
    start: list[Message] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.append(message)
            return
        body: bytes = message.get("body", b"")
        head = start[0]
        if head["status"] < 300:
            body = body[: len(body) // 2]
            headers = [(k, v) for k, v in head["headers"] if k.lower() != b"content-length"]
            head = {**head, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await send(head)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped


async def drop_connection(send: Send) -> None:
    """Close the connection without any response (uvicorn keeps the transport on `send`)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not uvicorn: the nearest thing is a response that breaks off
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        raise ConnectionAbortedError("sandbox dropped the connection")
    transport.close()
    await asyncio.sleep(0)  # let uvicorn see the disconnect so it sends nothing


# -- the API -------------------------------------------------------------------------------------
def _int(value: str | None, default: int, name: str, lo: int, hi: int | None) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise BadParam(f"'{name}' must be an integer, got {value!r}") from None
    if n < lo or (hi is not None and n > hi):
        raise BadParam(
            f"'{name}' must be between {lo} and {hi}"
            if hi is not None
            else f"'{name}' must be >= {lo}"
        )
    return n


def _time(value: str | None, name: str) -> float | None:
    if not value:
        return None
    if "T" in value:  # an unencoded '+05:30' arrives as ' 05:30'
        value = value.replace(" ", "+")
    try:
        parsed = pendulum.parse(value)
    except Exception:
        raise BadParam(f"'{name}' must be an ISO 8601 datetime, got {value!r}") from None
    if not isinstance(parsed, pendulum.DateTime):
        raise BadParam(f"'{name}' must be an ISO 8601 datetime, got {value!r}")
    return parsed.timestamp()


class BadParam(ValueError):
    pass


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadParam(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadParam("body must be a JSON object")
    return body


def build_app(state: State) -> ASGIApp:
    data = state.data
    wav = silent_wav()

    async def list_calls(request: Request) -> Response:
        q = request.query_params
        try:
            limit = _int(q.get("limit"), 20, "limit", 1, 100)
            offset = _int(q.get("offset"), 0, "offset", 0, None)
            start, end = _time(q.get("from"), "from"), _time(q.get("to"), "to")
        except BadParam as exc:
            return error(400, "invalid_request", str(exc))
        now = state.clock.now()
        rows = data.select(
            now,
            campaign_id=q.get("campaign_id") or None,
            start=start,
            end=end,
            disposition=q.get("disposition") or None,
            language=q.get("language") or None,
        )
        total = len(rows)
        page = rows[max(0, total - offset - limit) : max(0, total - offset)]
        calls = data.calls
        items = [data.call_json(calls[p], now, detail=False) for p in reversed(page)]
        return json_response({"data": items, "total": total, "limit": limit, "offset": offset})

    async def get_call(request: Request) -> Response:
        now = state.clock.now()
        call = data.get(request.path_params["id"], now)
        if call is None:
            return error(404, "not_found", f"No call with id {request.path_params['id']!r}.")
        return json_response(data.call_json(call, now, detail=True, sign_url=state.recording_url))

    async def get_transcript(request: Request) -> Response:
        now = state.clock.now()
        call_id = request.path_params["id"]
        call = data.get(call_id, now)
        if call is None:
            return error(404, "not_found", f"No call with id {call_id!r}.")
        body = data.transcript_json(call, now)
        if body is None:
            return error(404, "not_found", f"Call {call_id!r} has no transcript.")
        return json_response(body)

    async def get_recording(request: Request) -> Response:
        call_id = request.path_params["id"]
        token = request.query_params.get("token", "")
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            expires = -1
        if expires < 0 or not verify(state.secret, call_id, expires, token):
            return error(403, "forbidden", "Invalid recording signature.")
        if state.clock.now() > expires:
            return error(403, "forbidden", "Recording URL expired; fetch the call again.")
        return Response(wav, media_type="audio/wav")

    async def not_found(request: Request) -> Response:
        return error(404, "not_found", f"No route for {request.url.path}.")

    async def admin_truth(request: Request) -> Response:
        return json_response(state.truth())

    async def admin_clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _json_body(request)
                if body.get("now") is not None:
                    state.clock.set(pendulum.parse(body["now"]).timestamp())  # type: ignore[union-attr]
                elif body.get("advance_seconds") is not None:
                    state.clock.advance(float(body["advance_seconds"]))
                else:
                    return error(
                        400, "invalid_request", "Send {'now': iso} or {'advance_seconds': n}."
                    )
            except Exception as exc:
                return error(400, "invalid_request", f"Bad clock value: {exc}")
        return json_response(
            {"now": iso(state.clock.now()), "live": state.clock.live, "speed": state.clock.speed}
        )

    async def admin_stats(request: Request) -> Response:
        return json_response(state.stats.as_json())

    async def admin_stats_reset(request: Request) -> Response:
        state.stats = Stats()
        return json_response(state.stats.as_json())

    async def admin_config(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _json_body(request)
                latency = float(body.get("latency_ms", state.latency_ms) or 0)
                faults = float(body.get("fault_rate", state.fault_rate) or 0)
                rate = body.get("rate_limit", state.bucket.rate if state.bucket else None)
                rate = float(rate) if rate else None
            except (BadParam, TypeError, ValueError) as exc:
                return error(400, "invalid_request", f"Bad config: {exc}")
            state.latency_ms, state.fault_rate = latency, faults
            if "rate_limit" in body:
                state.set_rate_limit(rate)
        return json_response(
            {
                "latency_ms": state.latency_ms,
                "fault_rate": state.fault_rate,
                "rate_limit": state.bucket.rate if state.bucket else None,
            }
        )

    routes = [
        Route("/v1/calls", list_calls),
        Route("/v1/calls/{id}", get_call),
        Route("/v1/calls/{id}/transcript", get_transcript),
        Route("/recordings/{id}.wav", get_recording),
        Route("/_sandbox/truth", admin_truth),
        Route("/_sandbox/clock", admin_clock, methods=["GET", "POST"]),
        Route("/_sandbox/stats", admin_stats),
        Route("/_sandbox/stats/reset", admin_stats_reset, methods=["POST"]),
        Route("/_sandbox/config", admin_config, methods=["GET", "POST"]),
        Route("/{path:path}", not_found),
    ]
    return Gate(Starlette(routes=routes), state)


def silent_wav(ms: int = 300, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * (rate * ms // 1000))
    return buf.getvalue()
