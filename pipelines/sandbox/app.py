"""The sandbox ASGI app: the /v1 API, signed recordings, and the /_sandbox admin endpoints.

One outer ASGI layer (`Gate`) does what the vendor's edge does to /v1 requests: latency,
bearer auth, a global token-bucket rate limit, seeded fault injection, and request counters;
it also keeps /_sandbox to loopback clients. Behind it a plain Starlette router renders the
`Dataset` at the sandbox clock (`Api` here, `Admin` in admin.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
from collections import Counter
from email.utils import formatdate

import pendulum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .admin import Admin
from .recordings import recording_wav, verify
from .responses import BadParam, error, json_response
from .state import State

log = logging.getLogger(__name__)


def build_app(state: State) -> ASGIApp:
    async def not_found(request: Request) -> Response:
        return error(404, "not_found", f"No route for {request.url.path}.")

    routes = [
        *Api(state).routes(),
        *Admin(state).routes(),
        Route("/{path:path}", not_found),
    ]
    return Gate(Starlette(routes=routes), state)


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


def from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:  # an in-process transport: nothing came over a network
        return True
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class Gate:
    """The vendor's edge in front of the API, in the order it applies them."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_send, send = send, dated(send, self.state)
        path: str = scope["path"]
        endpoint = classify(path)
        if endpoint is None and not path.startswith("/v1"):
            await self._admin_or_other(scope, receive, send)
            return
        st = self.state
        counter = st.stats.by_endpoint.get(endpoint or "", Counter())
        counted = counting(send, counter)
        if st.latency_ms > 0:
            await asyncio.sleep(st.latency_ms * st.jitter.uniform(0.5, 1.5) / 1000)
        if endpoint == "recording":  # the signature is the credential, not the key
            await self.app(scope, receive, counted)
            return
        refusal = self._unauthorized(scope)
        if refusal is None:
            refusal = self._rate_limited()
            if st.bucket is not None and st.rate_limit_headers:
                counted = with_headers(counted, st.bucket.headers())
        if refusal is not None:
            await refusal(scope, receive, counted)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        fault = st.fault_for(scope["method"], f"{path}?{query}")
        if fault is None:
            await self.app(scope, receive, counted)
        elif fault == "drop":
            st.stats.faults[fault] += 1
            counter["dropped"] += 1
            await drop_connection(raw_send)  # uvicorn's own `send` holds the transport
        else:
            st.stats.faults[fault] += 1
            await self._fault(fault, scope, receive, counted)

    async def _admin_or_other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/_sandbox") and not from_loopback(scope):
            resp = error(403, "forbidden", "The sandbox's admin endpoints answer only loopback.")
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _unauthorized(self, scope: Scope) -> Response | None:
        expected = f"Bearer {self.state.api_key}".encode()
        if any(k == b"authorization" and v == expected for k, v in scope["headers"]):
            return None
        return error(
            401,
            "unauthorized",
            "Missing or invalid API key. Send 'Authorization: Bearer YOUR_API_KEY'.",
        )

    def _rate_limited(self) -> Response | None:
        bucket = self.state.bucket
        wait = 0.0 if bucket is None else bucket.take()
        if wait <= 0:
            return None
        retry = {"Retry-After": str(max(1, math.ceil(wait)))}
        return error(429, "rate_limited", "Too many requests; retry later.", retry)

    async def _fault(self, fault: str, scope: Scope, receive: Receive, send: Send) -> None:
        log.debug("injecting fault %s on %s", fault, scope["path"])
        if fault == "truncated":
            await self.app(scope, receive, truncating(send))
            return
        if fault == "429":
            retry = {"Retry-After": "1"}
            resp = error(429, "rate_limited", "Too many requests; retry later.", retry)
        else:
            code = "server_error" if fault == "500" else "unavailable"
            resp = error(int(fault), code, "The service had a problem; retry later.")
        await resp(scope, receive, send)


def dated(send: Send, state: State) -> Send:
    """Every answer carries the sandbox's clock (frozen or live) in its `Date` header, as the
    real API carries its own: clients take "today" from there."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            date = formatdate(state.clock.now(), usegmt=True).encode()
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
            message = {**message, "headers": [*headers, (b"date", date)]}
        await send(message)

    return wrapped


def counting(send: Send, counter: Counter[str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            counter[str(message["status"])] += 1
        await send(message)

    return wrapped


def with_headers(send: Send, headers: dict[str, str]) -> Send:
    """Add `headers` to the response that goes through `send`."""
    extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
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


class Api:
    """GET /v1/calls, /v1/calls/{id}, /v1/calls/{id}/transcript and the signed recordings."""

    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/calls", self.list_calls),
            Route("/v1/calls/{id}", self.get_call),
            Route("/v1/calls/{id}/transcript", self.get_transcript),
            Route("/recordings/{id}.wav", self.get_recording),
        ]

    async def list_calls(self, request: Request) -> Response:
        q = request.query_params
        try:
            limit = _int(q.get("limit"), 20, "limit", 1, 100)
            offset = _int(q.get("offset"), 0, "offset", 0, self.state.max_offset)
            start, end = _time(q.get("from"), "from"), _time(q.get("to"), "to")
        except BadParam as exc:
            return error(400, "invalid_request", str(exc))
        data, now = self.state.data, self.state.clock.now()
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
        items = [data.call_json(data.calls[p], now, detail=False) for p in reversed(page)]
        return json_response({"data": items, "total": total, "limit": limit, "offset": offset})

    async def get_call(self, request: Request) -> Response:
        call_id = request.path_params["id"]
        body = self.state.call_json(call_id)
        if body is None:
            return error(404, "not_found", f"No call with id {call_id!r}.")
        return json_response(body)

    async def get_transcript(self, request: Request) -> Response:
        data, now = self.state.data, self.state.clock.now()
        call_id = request.path_params["id"]
        call = data.get(call_id, now)
        if call is None:
            return error(404, "not_found", f"No call with id {call_id!r}.")
        body = data.transcript_json(call, now)
        if body is None:
            return error(404, "not_found", f"Call {call_id!r} has no transcript.")
        return json_response(body)

    async def get_recording(self, request: Request) -> Response:
        st, call_id = self.state, request.path_params["id"]
        token = request.query_params.get("token", "")
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            expires = -1
        if expires < 0 or not verify(st.secret, call_id, expires, token):
            return error(403, "forbidden", "Invalid recording signature.")
        if st.clock.now() > expires:
            return error(403, "forbidden", "Recording URL expired; fetch the call again.")
        if st.data.get(call_id, st.clock.now()) is None:
            return error(404, "not_found", f"No call with id {call_id!r}.")
        if call_id in st.refused_recordings:
            return error(403, "forbidden", "Access to this recording is denied.")
        return Response(recording_wav(call_id), media_type="audio/wav")
