"""NeuronClient over `httpx.MockTransport`: auth, typed errors, retries, the rate gate, paging.

Time is fake: `FakeTime.sleep` records each delay and moves `FakeTime.now` on, so retry and
rate-limit tests run instantly and assert the exact waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from pipelines.neuron import settings
from pipelines.neuron.api import errors
from pipelines.neuron.api.client import ClientStats, NeuronClient
from pipelines.neuron.api.errors import (
    APIConnectionError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    RateLimitError,
    ResponseError,
    ServerError,
    sanitize_url,
)
from pipelines.neuron.api.limiter import RateLimiter
from pipelines.runner.sync import explain

pytestmark = pytest.mark.unit

KEY = "sk_live_S3CRET_never_shown"
BASE = "https://api.test/v1"
CALL = {"id": "cal_1", "status": "completed"}

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock that only moves when someone sleeps; every delay is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)  # let concurrent tasks run, as a real sleep would
        self.now = max(self.now, wake)


def json_response(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"content-type": "application/json", **headers}
    )


def replay(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering each request with the next response (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses[min(len(seen), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def make_client(handler: Handler, time: FakeTime | None = None, **kw: Any) -> NeuronClient:
    time = time or FakeTime()
    kw.setdefault("random", lambda: 1.0)
    return NeuronClient(
        KEY,
        BASE,
        transport=httpx.MockTransport(handler),
        sleep=time.sleep,
        clock=time.clock,
        **kw,
    )


def run(
    handler: Handler, call: Callable[[NeuronClient], Awaitable[Any]], **kw: Any
) -> tuple[Any, NeuronClient]:
    """`call(client)` on a fresh client; returns its result and the (closed) client."""

    async def go() -> tuple[Any, NeuronClient]:
        async with make_client(handler, **kw) as client:
            return await call(client), client

    return asyncio.run(go())


def get_call(client: NeuronClient) -> Awaitable[dict[str, Any]]:
    return client.get_call("cal_1")


def raises(error: type[Exception], handler: Handler, **kw: Any) -> pytest.ExceptionInfo[Any]:
    with pytest.raises(error) as info:
        run(handler, get_call, **kw)
    return info


# -- requests and answers ----------------------------------------------------------------------


def test_bearer_key_and_json_accept_headers() -> None:
    handler, seen = replay(json_response(CALL))
    body, _ = run(handler, get_call)
    assert body == CALL
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"
    assert seen[0].headers["Accept"] == "application/json"
    assert seen[0].url == "https://api.test/v1/calls/cal_1"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_an_authentication_error_at_once(status: int) -> None:
    time = FakeTime()
    handler, seen = replay(json_response({"error": {"message": f"bad key {KEY}"}}, status))
    info = raises(AuthenticationError, handler, time=time)
    assert len(seen) == 1 and time.sleeps == []
    assert KEY not in str(info.value)
    assert info.value.status_code == status and "SOURCES__" not in str(info.value)
    code, line = explain(info.value)  # the application says how to fix it
    assert code == 2 and "SOURCES__NEURON__API_KEY" in line


def test_missing_call_is_not_found_and_missing_transcript_is_none() -> None:
    handler, seen = replay(json_response({"error": {"code": "not_found"}}, 404))
    raises(NotFoundError, handler)
    transcript, _ = run(handler, lambda c: c.get_transcript("cal_1"))
    assert transcript is None
    assert [r.url.path for r in seen] == ["/v1/calls/cal_1", "/v1/calls/cal_1/transcript"]


def test_processing_transcript_is_returned_as_is() -> None:
    handler, _ = replay(json_response({"status": "processing"}))
    transcript, _ = run(handler, lambda c: c.get_transcript("cal_1"))
    assert transcript == {"status": "processing"}


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_then_succeed(status: int) -> None:
    time = FakeTime()
    handler, seen = replay(
        json_response({}, status), json_response({}, status), json_response(CALL)
    )
    body, client = run(handler, get_call, time=time)
    assert body == CALL
    assert len(seen) == 3
    assert time.sleeps == pytest.approx([0.1, 0.3])  # random() == 1.0: the full backoff cap
    assert client.stats == ClientStats(requests=3, retries=2, rate_limited=0)


@pytest.mark.parametrize(
    ("response", "error", "rate_limited"),
    [
        (json_response({"error": {"message": "boom"}}, 503), ServerError, 0),
        (json_response({}, 429), RateLimitError, 4),
        (json_response({}, 429, **{"Retry-After": "1"}), RateLimitError, 4),
    ],
    ids=["503", "429", "429-retry-after"],
)
def test_retries_exhausted(
    response: httpx.Response, error: type[Exception], rate_limited: int
) -> None:
    handler, seen = replay(response)
    stats = ClientStats()
    raises(error, handler, max_attempts=4, stats=stats)
    assert len(seen) == 4
    assert stats == ClientStats(requests=4, retries=3, rate_limited=rate_limited)


def test_retry_after_is_honoured() -> None:
    time = FakeTime()
    handler, seen = replay(json_response({}, 429, **{"Retry-After": "7"}), json_response(CALL))
    body, client = run(handler, get_call, time=time)
    assert body == CALL
    assert time.sleeps == [7.0]
    assert client.stats == ClientStats(requests=2, retries=1, rate_limited=1)


def test_retry_after_is_capped() -> None:
    time = FakeTime()
    handler, _ = replay(json_response({}, 429, **{"Retry-After": "86400"}), json_response(CALL))
    run(handler, get_call, time=time)
    assert time.sleeps == [settings.RETRY_AFTER_MAX_SECONDS]


def test_a_lone_429_holds_only_its_own_request() -> None:
    """One 429 with Retry-After: 3 among good answers: that request waits its 3 s, the others go
    on at once, and the pace stays the start-up ramp's (one 429 is no evidence of a limit)."""
    time = FakeTime()
    sent_at: dict[str, list[float]] = {}
    refused: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        call_id = request.url.path.rsplit("/", 1)[-1]
        sent_at.setdefault(call_id, []).append(time.now)
        if call_id == "limited" and call_id not in refused:
            refused.add(call_id)
            return json_response({}, 429, **{"Retry-After": "3"})
        return json_response({"id": call_id})

    async def go(client: NeuronClient) -> list[dict[str, Any]]:
        first = await client.get_call("a")
        rest = await asyncio.gather(*(client.get_call(i) for i in ("limited", "b", "c")))
        return [first, *rest]

    bodies, client = run(handler, go, time=time)
    assert [body["id"] for body in bodies] == ["a", "limited", "b", "c"]
    assert sent_at["limited"][1] - sent_at["limited"][0] == pytest.approx(3.0)
    assert max(sent_at["b"] + sent_at["c"]) < 0.1  # not held for the 3 s
    assert client.limiter.resume_at == 0.0 and not client.limiter.limit_met
    assert client.limiter.pace == settings.SLOW_START_REQUESTS_PER_SECOND


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
def test_backoff_without_retry_after_is_exponential_jittered_and_capped(jitter: float) -> None:
    time = FakeTime()
    handler, _ = replay(json_response({}, 429))
    raises(RateLimitError, handler, time=time, max_attempts=10, random=lambda: jitter)
    caps = [0.1, 0.3, 0.9, 2.7, 8.1, 24.3, 30, 30, 30]
    assert time.sleeps == pytest.approx([cap * (0.5 + jitter / 2) for cap in caps])
    assert max(time.sleeps) <= settings.BACKOFF_MAX_SECONDS


@pytest.mark.parametrize(
    "exception",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_are_retried(exception: Exception) -> None:
    handler, _ = replay(exception, json_response(CALL))
    body, client = run(handler, get_call)
    assert body == CALL
    assert client.stats == ClientStats(requests=2, retries=1)

    handler, seen = replay(exception)
    info = raises(APIConnectionError, handler, max_attempts=3)
    assert len(seen) == 3
    message = str(info.value)
    assert type(exception).__name__ in message and "SOURCES__" not in message
    assert "SOURCES__NEURON__BASE_URL" in explain(info.value)[1]
    assert KEY not in message


def test_truncated_json_body_is_retried() -> None:
    cut = httpx.Response(
        200, content=orjson.dumps(CALL)[:-5], headers={"content-type": "application/json"}
    )
    handler, seen = replay(cut, json_response(CALL))
    body, client = run(handler, get_call)
    assert body == CALL and len(seen) == 2 and client.stats.retries == 1

    handler, seen = replay(cut)
    raises(ResponseError, handler, max_attempts=2)
    assert len(seen) == 2


# -- answers that are not the API -------------------------------------------------------------


def test_html_page_is_a_config_error_at_once() -> None:
    time = FakeTime()
    handler, seen = replay(
        httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"})
    )
    info = raises(ConfigError, handler, time=time)
    assert len(seen) == 1 and time.sleeps == []
    assert not isinstance(info.value, AuthenticationError)
    assert "text/html" in str(info.value) and "SOURCES__" not in str(info.value)
    assert explain(info.value)[0] == 2 and "SOURCES__NEURON__BASE_URL" in explain(info.value)[1]


@pytest.mark.parametrize(
    "body", [[CALL], "calls", 42, None], ids=["array", "string", "number", "null"]
)
def test_json_that_is_not_an_object_is_a_response_error(body: Any) -> None:
    handler, seen = replay(json_response(body))
    raises(ResponseError, handler)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "page",
    [
        {"data": {"id": "cal_1"}, "total": 1},
        {"data": None},
        {"total": 0},
        {"data": ["cal_1"], "total": 1},
        {"data": [CALL], "total": "1"},
    ],
    ids=["object", "null", "missing", "strings", "total-string"],
)
def test_malformed_list_page_is_a_response_error(page: dict[str, Any]) -> None:
    handler, seen = replay(json_response(page))
    with pytest.raises(ResponseError):
        run(handler, lambda c: c.list_calls({}))
    assert len(seen) == 1


# -- paging ------------------------------------------------------------------------------------


def list_api(total: int, reported_total: int | None = None) -> tuple[Handler, list[httpx.Request]]:
    """`GET /calls` over `total` calls; the body says `reported_total` (None: omit it)."""
    calls = [{"id": f"cal_{i:04d}"} for i in range(total)]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        page: dict[str, Any] = {"data": calls[offset : offset + limit]}
        if reported_total is not None:
            page["total"] = reported_total
        return json_response(page)

    return handler, seen


async def collect(client: NeuronClient, params: dict[str, Any] | None = None) -> list[list[str]]:
    return [[c["id"] for c in page] async for page in client.iter_calls(params or {})]


@pytest.mark.parametrize(
    ("total", "reported_total", "offsets", "sizes"),
    [
        (250, 250, [0, 100, 200], [100, 100, 50]),
        (200, 200, [0, 100], [100, 100]),  # stops at total: no empty third page
        (250, None, [0, 100, 200], [100, 100, 50]),  # stops on a short page
        (200, None, [0, 100, 200], [100, 100]),  # no total: an empty page ends it
        (30, 1000, [0, 30], [30]),  # total says more: asks on; an empty page ends it
        (0, 0, [0], []),
    ],
)
def test_iter_calls_pages_by_offset(
    total: int, reported_total: int | None, offsets: list[int], sizes: list[int]
) -> None:
    handler, seen = list_api(total, reported_total)
    pages, _ = run(handler, collect)
    assert [int(r.url.params["offset"]) for r in seen] == offsets
    assert {r.url.params["limit"] for r in seen} == {str(settings.PAGE_SIZE)}
    assert [len(page) for page in pages] == sizes
    ids = [call_id for page in pages for call_id in page]
    assert ids == [f"cal_{i:04d}" for i in range(total)]


def test_iter_calls_passes_window_and_filters_on_every_page() -> None:
    handler, seen = list_api(150, 150)
    params = {
        "from": "2024-02-01T00:00:00Z",
        "to": "2024-02-02T00:00:00Z",
        "campaign_id": "cmp_1",
        "language": "hi-IN",
        "limit": 5,  # the caller's limit is replaced by the API maximum
    }
    run(handler, lambda c: collect(c, params))
    assert [dict(r.url.params) for r in seen] == [
        {**params, "limit": "100", "offset": str(offset)} for offset in (0, 100)
    ]


# -- rate cap, construction, URLs --------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [False, True])
def test_max_rps_spaces_requests(concurrent: bool) -> None:
    time = FakeTime()
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(time.now)
        return json_response(CALL)

    async def go(client: NeuronClient) -> None:
        if concurrent:
            await asyncio.gather(*(client.get_call(str(i)) for i in range(4)))
        else:
            for i in range(4):
                await client.get_call(str(i))

    run(handler, go, time=time, max_rps=4)
    assert sent_at == [0.0, 0.25, 0.5, 0.75]


def test_a_request_waiting_for_its_rate_slot_also_honours_a_new_pause() -> None:
    time = FakeTime()
    gate = RateLimiter(max_rps=1, clock=time.clock, sleep=time.sleep)

    async def go() -> None:
        await gate.acquire()  # slot at 0 s
        second = asyncio.create_task(gate.acquire())  # slot at 1 s: sleeps for it
        await asyncio.sleep(0)
        gate.pause(10)  # the first request got 429 Retry-After: 10
        await second

    asyncio.run(go())
    assert time.now >= 10


def test_constructor_makes_no_request() -> None:
    handler, seen = replay(json_response(CALL))

    async def go() -> None:
        client = make_client(handler)
        await client.aclose()

    asyncio.run(go())
    assert seen == []


@pytest.mark.parametrize(
    ("api_key", "base_url", "hint"),
    [
        ("", BASE, "SOURCES__NEURON__API_KEY"),
        (None, BASE, "SOURCES__NEURON__API_KEY"),
        (KEY, "api.test/v1", "SOURCES__NEURON__BASE_URL"),
        (KEY, "ftp://api.test/v1", "SOURCES__NEURON__BASE_URL"),
        (KEY, "https://", "SOURCES__NEURON__BASE_URL"),
        (KEY, "", "SOURCES__NEURON__BASE_URL"),
        (KEY, "https://api.test:port/v1", "SOURCES__NEURON__BASE_URL"),
    ],
)
def test_constructor_rejects_bad_settings(api_key: Any, base_url: str, hint: str) -> None:
    handler, seen = replay(json_response(CALL))
    with pytest.raises(ConfigError) as info:
        NeuronClient(api_key, base_url, transport=httpx.MockTransport(handler))
    assert hint in explain(info.value)[1] and "SOURCES__" not in str(info.value)
    assert KEY not in explain(info.value)[1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://rec.vinfer.ai/signed/cal_1?token=eyJ.abc&expires=1706783785",
            "https://rec.vinfer.ai/signed/cal_1?…",
        ),
        ("https://api.test/v1/calls", "https://api.test/v1/calls"),
        (httpx.URL("https://api.test/v1/calls?key=secret"), "https://api.test/v1/calls?…"),
    ],
)
def test_sanitize_url_drops_the_query_string(url: Any, expected: str) -> None:
    assert sanitize_url(url) == expected
    assert "token" not in sanitize_url(url) and "secret" not in sanitize_url(url)


# -- errors as data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (401, AuthenticationError, "unauthorized"),
        (404, NotFoundError, "not_found"),
        (503, ServerError, "unavailable"),
        (400, ResponseError, "invalid_request"),
    ],
)
def test_status_errors_carry_status_path_and_code(
    status: int, error: type[Exception], code: str
) -> None:
    handler, _ = replay(json_response({"error": {"code": code, "message": "m"}}, status))
    with pytest.raises(error) as info:
        run(
            handler,
            lambda c: c.list_calls({"offset": 5}) if status != 404 else get_call(c),
            max_attempts=1,
        )
    assert isinstance(info.value, errors.APIStatusError)
    assert info.value.status_code == status and info.value.code == code
    assert "?" not in info.value.path and info.value.path.startswith("/calls")


def test_errors_are_imported_from_errors_py_only() -> None:
    """The errors are defined once, in errors.py, and imported from there: the client exports
    none, and no module of the package or the tests takes one from the client."""
    import ast
    from pathlib import Path

    from pipelines.neuron.api import client

    assert not set(client.__all__) & set(errors.__all__)
    root = Path(__file__).resolve().parents[1]
    taken = [
        f"{path.relative_to(root)}: {alias.name}"
        for folder in ("pipelines", "tests", "bench")
        for path in (root / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("client")
        for alias in node.names
        if alias.name in errors.__all__
    ]
    assert taken == []
    assert issubclass(errors.AuthenticationError, errors.ConfigError)
