"""The /_sandbox/ admin endpoints: truth, clock, stats, knobs, and drift.

No key is needed; `Gate` answers them only to loopback clients. Drift acts on one call, by the
id the sandbox generated (also a call not dialled yet at the clock): 404 for an unknown or
erased id, 400 for a bad body, 409 when the call cannot take that drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pendulum
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .data import FINAL_STATUSES, DriftConflict, iso
from .recordings import recording_wav
from .responses import BadParam, error, json_response
from .state import State, Stats

MAX_SEGMENTS = 500
Handler = Callable[[Request, int, dict[str, Any]], Awaitable[Response]]


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadParam(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadParam("body must be a JSON object")
    return body


def _only(body: dict[str, Any], *allowed: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadParam(f"unknown field(s) {unknown}; allowed: {list(allowed)}")


def _count(body: dict[str, Any], name: str, hi: int | None = None) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadParam(f"{name!r} must be an integer >= 0, got {value!r}")
    if hi is not None and value > hi:
        raise BadParam(f"{name!r} must be at most {hi}, got {value}")
    return value


def _label(body: dict[str, Any], name: str, allowed: tuple[str, ...] = ()) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or (allowed and value not in allowed):
        want = f"one of {list(allowed)}" if allowed else "a non-empty string"
        raise BadParam(f"{name!r} must be {want}, got {value!r}")
    return value


class Admin:
    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        post = ["POST"]
        return [
            Route("/_sandbox/truth", self.truth),
            Route("/_sandbox/clock", self.clock, methods=["GET", "POST"]),
            Route("/_sandbox/stats", self.stats),
            Route("/_sandbox/stats/reset", self.stats_reset, methods=post),
            Route("/_sandbox/config", self.config, methods=["GET", "POST"]),
            Route("/_sandbox/drift", self.drift),
            Route("/_sandbox/calls/{id}/relabel", self.on_call(self.relabel), methods=post),
            Route("/_sandbox/calls/{id}/erase", self.on_call(self.erase), methods=post),
            Route("/_sandbox/calls/{id}/delay-listing", self.on_call(self.delay), methods=post),
            Route(
                "/_sandbox/calls/{id}/retranscribe", self.on_call(self.retranscribe), methods=post
            ),
            Route("/_sandbox/calls/{id}/refuse-recording", self.on_call(self.refuse), methods=post),
            Route("/_sandbox/calls/{id}/recording", self.recording),
        ]

    # -- truth, clock, stats, config -------------------------------------------------------
    async def truth(self, request: Request) -> Response:
        return json_response(self.state.truth())

    async def clock(self, request: Request) -> Response:
        clock = self.state.clock
        if request.method == "POST":
            try:
                body = await _json_body(request)
                if body.get("now") is not None:
                    clock.set(pendulum.parse(body["now"]).timestamp())  # type: ignore[union-attr]
                elif body.get("advance_seconds") is not None:
                    clock.advance(float(body["advance_seconds"]))
                else:
                    return error(
                        400, "invalid_request", "Send {'now': iso} or {'advance_seconds': n}."
                    )
            except Exception as exc:
                return error(400, "invalid_request", f"Bad clock value: {exc}")
        return json_response({"now": iso(clock.now()), "live": clock.live, "speed": clock.speed})

    async def stats(self, request: Request) -> Response:
        return json_response(self.state.stats.as_json())

    async def stats_reset(self, request: Request) -> Response:
        self.state.stats = Stats()
        return json_response(self.state.stats.as_json())

    async def config(self, request: Request) -> Response:
        st = self.state
        if request.method == "POST":
            try:
                body = await _json_body(request)
                latency = float(body.get("latency_ms", st.latency_ms) or 0)
                faults = float(body.get("fault_rate", st.fault_rate) or 0)
                rate = body.get("rate_limit", st.bucket.rate if st.bucket else None)
                rate = float(rate) if rate else None
                headers = body.get("rate_limit_headers", st.rate_limit_headers)
                if not isinstance(headers, bool):
                    raise BadParam(f"'rate_limit_headers' must be true or false, got {headers!r}")
                deepest = body.get("max_offset", st.max_offset)
                deepest = int(deepest) if deepest is not None else None
                if deepest is not None and deepest < 0:
                    raise BadParam(f"'max_offset' must be null or at least 0, got {deepest}")
            except (BadParam, TypeError, ValueError) as exc:
                return error(400, "invalid_request", f"Bad config: {exc}")
            st.latency_ms, st.fault_rate, st.rate_limit_headers = latency, faults, headers
            st.max_offset = deepest
            if "rate_limit" in body:
                st.set_rate_limit(rate)
        return json_response(st.config_json())

    # -- drift ----------------------------------------------------------------------------
    async def drift(self, request: Request) -> Response:
        return json_response(self.state.drift_json())

    def on_call(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A drift endpoint: find the call, read the body, map the errors."""

        async def endpoint(request: Request) -> Response:
            call_id = request.path_params["id"]
            pos = self.state.data.find(call_id)
            if pos is None:
                return error(404, "not_found", f"No call with id {call_id!r}.")
            try:
                return await handler(request, pos, await _json_body(request))
            except BadParam as exc:
                return error(400, "invalid_request", str(exc))
            except DriftConflict as exc:
                return error(409, "conflict", str(exc))

        return endpoint

    async def relabel(self, request: Request, pos: int, body: dict[str, Any]) -> Response:
        _only(body, "status", "disposition", "duration_seconds")
        status = _label(body, "status", FINAL_STATUSES)
        disposition = _label(body, "disposition")
        duration = (
            None if body.get("duration_seconds") is None else _count(body, "duration_seconds")
        )
        if status is disposition is duration is None:
            raise BadParam("send at least one of 'status', 'disposition', 'duration_seconds'")
        st = self.state
        call = st.data.relabel(
            pos, st.clock.now(), status=status, disposition=disposition, duration=duration
        )
        return json_response({"call": st.call_json(call.id)})

    async def erase(self, request: Request, pos: int, body: dict[str, Any]) -> Response:
        _only(body)
        self.state.data.erase(pos)
        return json_response({"erased": self.state.data.calls[pos].id})

    async def delay(self, request: Request, pos: int, body: dict[str, Any]) -> Response:
        _only(body, "seconds")
        listed_from = self.state.data.delay_listing(pos, _count(body, "seconds"))
        return json_response({"id": self.state.data.calls[pos].id, "listed_from": iso(listed_from)})

    async def retranscribe(self, request: Request, pos: int, body: dict[str, Any]) -> Response:
        _only(body, "segments")
        transcript = self.state.data.retranscribe(pos, _count(body, "segments", MAX_SEGMENTS))
        return json_response({"transcript": transcript})

    async def refuse(self, request: Request, pos: int, body: dict[str, Any]) -> Response:
        _only(body, "refuse")
        refuse = body.get("refuse", True)
        if not isinstance(refuse, bool):
            raise BadParam(f"'refuse' must be true or false, got {refuse!r}")
        call = self.state.data.calls[pos]
        if not call.recording:
            raise DriftConflict(f"call {call.id!r} has no recording")
        (self.state.refused_recordings.add if refuse else self.state.refused_recordings.discard)(
            call.id
        )
        return json_response({"id": call.id, "refused": refuse})

    async def recording(self, request: Request) -> Response:
        """The bytes a signed URL serves for this call, without a signature or a count."""
        data, call_id = self.state.data, request.path_params["id"]
        pos = data.find(call_id)
        if pos is None or not data.calls[pos].recording:
            return error(404, "not_found", f"No recording for call {call_id!r}.")
        return Response(recording_wav(call_id), media_type="audio/wav")
