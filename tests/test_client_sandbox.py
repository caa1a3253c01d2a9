"""NeuronClient against a real sandbox over loopback: the learned rate limit and recordings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.neuron import settings
from pipelines.neuron.api.client import NeuronClient
from pipelines.neuron.api.errors import APIConnectionError, BaseURLError, RecordingURLRefused
from pipelines.sandbox import Sandbox
from tests.helpers import read_state, sync, timed_details


async def _details(sb: Sandbox, count: int, concurrency: int) -> float:
    async with NeuronClient(sb.api_key, sb.base_url, max_concurrency=concurrency) as client:
        ids = [c["id"] for page in [p async for p in client.iter_calls({})] for c in page]
        sb.reset_stats()
        return await timed_details(client, ids, count, concurrency)


def test_a_60_per_second_limit_is_met_with_few_429s(make_sandbox: Callable[..., Sandbox]) -> None:
    """300 details at 32 in flight against 60 req/s: at most 5% answered 429 (the run's time
    against the rate bound: test_client_ratelimit, on virtual time)."""
    sb = make_sandbox(rate_limit=60)
    asyncio.run(_details(sb, 300, 32))
    by_status = sb.stats()["by_endpoint_status"]["detail"]
    assert by_status.get("200") == 300
    limited = by_status.get("429", 0)
    assert limited / (300 + limited) <= 0.05, by_status


def test_a_sync_tells_the_next_whether_it_met_a_limit(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through dlt's state: after a sync that met no limit the next one starts at full speed;
    after one that met a limit it ramps up again, and keeps to few 429s."""
    free, limited = make_sandbox(calls=100), make_sandbox(calls=60, rate_limit=50)
    caplog.set_level(logging.DEBUG, logger="pipelines.neuron.api.limiter")
    for sb, met in ((free, False), (limited, True)):
        work = tmp_path / str(met)
        assert sync(sb, work).exit_code == 0
        assert read_state(work / "calls.duckdb")["rate_limit"] == {"limit_met": met}
        caplog.clear()
        sb.reset_stats()
        assert sync(sb, work).exit_code == 0
        assert ("starting at full speed" in caplog.text) is not met
    statuses = limited.stats()["by_status"]
    assert statuses.get("429", 0) <= 0.05 * sum(statuses.values()), statuses


async def _fresh_recording_url(sb: Sandbox) -> tuple[NeuronClient, str]:
    client = NeuronClient(sb.api_key, sb.base_url)
    page = await client.list_calls({"limit": 100})
    for call in page["data"]:
        detail = await client.get_call(call["id"])
        if detail.get("recording_url"):
            return client, detail["recording_url"]
    raise AssertionError("no call with a recording in the sandbox")


def test_stream_recording_from_a_fresh_url(sandbox: Sandbox) -> None:
    async def go() -> tuple[str, bytes]:
        client, url = await _fresh_recording_url(sandbox)
        async with client, client.stream_recording(url) as (content_type, chunks):
            body = b"".join([chunk async for chunk in chunks])
        return content_type, body

    content_type, body = asyncio.run(go())
    assert content_type == "audio/wav"
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"


def test_a_forged_recording_url_is_refused_without_its_token(sandbox: Sandbox) -> None:
    async def go() -> RecordingURLRefused:
        client, url = await _fresh_recording_url(sandbox)
        forged = url.replace("token=", "token=0000")
        async with client:
            with pytest.raises(RecordingURLRefused) as info:
                async with client.stream_recording(forged):
                    pass
        return info.value

    error = asyncio.run(go())
    assert error.status_code == 403 and error.code == "forbidden"
    assert error.path.startswith("/recordings/") and error.path.endswith(".wav")
    assert "token" not in str(error) and "expires" not in str(error)
    assert "token" not in error.path


# -- recordings over MockTransport: no key sent, retries, streaming ---------------------------


def test_stream_recording_sends_no_key_retries_and_streams() -> None:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []

    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for _ in range(3):
                yield b"x" * 10

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503)
        if len(seen) == 2:
            raise httpx.ReadTimeout("slow")
        return httpx.Response(200, headers={"content-type": "audio/wav"}, stream=Chunks())

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def go() -> tuple[str, list[bytes]]:
        async with NeuronClient(
            "sk_key", "https://api.test/v1", transport=httpx.MockTransport(handler), sleep=sleep
        ) as client:
            url = "https://rec.test/signed/cal_1.wav?token=abc&expires=1"
            async with client.stream_recording(url) as (content_type, chunks):
                return content_type, [chunk async for chunk in chunks]

    content_type, chunks = asyncio.run(go())
    assert content_type == "audio/wav" and b"".join(chunks) == b"x" * 30
    assert len(seen) == 3 and len(sleeps) == 2
    assert all("Authorization" not in r.headers for r in seen)
    assert str(seen[0].url) == "https://rec.test/signed/cal_1.wav?token=abc&expires=1"


@contextlib.asynccontextmanager
async def stand_in(handler: Callable[[Any], Awaitable[Any]]) -> AsyncIterator[str]:
    """A throwaway aiohttp server on loopback answering every request with `handler`: its URL."""
    from aiohttp import web

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def test_the_proxy_the_environment_names_is_used(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY carries the API's requests (read once per client), NO_PROXY exempts a
    host: a stand-in proxy answers an empty list and notes the absolute URL it was asked for."""
    from aiohttp import web

    asked: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        asked.append(str(request.url))
        return web.json_response({"data": [], "total": 0, "limit": 100, "offset": 0})

    async def go(no_proxy: str) -> int:
        async with stand_in(proxy) as proxy_url:
            for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
                monkeypatch.setenv(name, proxy_url)
            for name in ("NO_PROXY", "no_proxy"):
                monkeypatch.setenv(name, no_proxy)
            async with NeuronClient(sandbox.api_key, sandbox.base_url) as client:
                page = await client.list_calls({"limit": 100})
                return int(page["total"])

    assert asyncio.run(go("")) == 0
    assert asyncio.run(go("127.0.0.1")) == len(sandbox.truth()["calls"])
    assert len(asked) == 1 and asked[0].startswith(sandbox.base_url + "/calls?")


def test_a_redirect_is_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A base URL that redirects (a web page, a moved API) is one clear error, and the key is
    sent nowhere else: the client does not follow it."""
    from aiohttp import web

    hosts: list[str] = []

    async def site(request: web.Request) -> web.Response:
        hosts.append(request.path)
        raise web.HTTPFound("/login")

    async def go() -> None:
        async with stand_in(site) as url, NeuronClient("sk_key", url + "/v1") as client:
            await client.list_calls({"limit": 1})

    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BaseURLError, match="not JSON"):
        asyncio.run(go())
    assert hosts == ["/v1/calls"]


# -- one HTTP stack: the API and the recordings share the transport ------------------------------


def test_the_api_and_a_recording_share_one_connection() -> None:
    """A call's details, then its recording on the same host: one pool, so the recording goes
    over the connection the API request left open (two pools would open a second one)."""
    from aiohttp import web

    peers: list[Any] = []

    async def site(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        if request.path.startswith("/recordings/"):
            return web.Response(body=b"RIFF....WAVE", content_type="audio/wav")
        origin = f"{request.scheme}://{request.host}"
        url = f"{origin}/recordings/cal_1.wav?token=t&expires=1"
        return web.json_response({"id": "cal_1", "recording_url": url})

    async def go() -> bytes:
        async with stand_in(site) as url, NeuronClient("sk_key", url + "/v1") as client:
            detail = await client.get_call("cal_1")
            async with client.stream_recording(detail["recording_url"]) as (_, chunks):
                return b"".join([chunk async for chunk in chunks])

    assert asyncio.run(go()) == b"RIFF....WAVE"
    assert len(peers) == 2 and peers[0] == peers[1], peers


def test_a_dropped_connection_is_retried_and_not_called_a_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that closes each connection without an answer, for the API and a recording
    alike: retried, then one APIConnectionError that does not say the API was slow."""
    served: list[bytes] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(await reader.readline())
        writer.close()

    async def no_wait(seconds: float) -> None:
        pass

    async def go() -> list[APIConnectionError]:
        server = await asyncio.start_server(drop, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        errors = []
        async with server, NeuronClient("sk_key", base + "/v1", sleep=no_wait) as client:
            for request in (
                lambda: client.get_call("cal_1"),
                lambda: client.stream_recording(base + "/r/cal_1.wav?token=t").__aenter__(),
            ):
                with pytest.raises(APIConnectionError) as info:
                    await request()
                errors.append(info.value)
        return errors

    caplog.set_level(logging.DEBUG, logger="pipelines.neuron.api.client")
    errors = asyncio.run(go())
    # every attempt reached the server (aiohttp itself sends a request again, once, on a
    # connection closed under it)
    assert len(served) >= 2 * settings.DEFAULT_MAX_ATTEMPTS
    assert [e.path for e in errors] == ["/calls/cal_1", "/r/cal_1.wav"]
    assert not any(e.timed_out for e in errors), [str(e) for e in errors]
    assert all("(ServerDisconnectedError)" in str(e) for e in errors), [str(e) for e in errors]
    assert "timed out" not in caplog.text and "Timeout" not in caplog.text
    assert "token" not in caplog.text and "sk_key" not in caplog.text


def test_any_httpx_transport_carries_the_api_requests(make_sandbox: Callable[..., Sandbox]) -> None:
    """The client's lean GET (its Host header built once, its URL not parsed anew) is a whole
    HTTP request for any httpx transport: httpx's own (httpcore, which refuses a request without
    Host) as well as the default over aiohttp, against the sandbox on a base URL with a port."""
    sb = make_sandbox(calls=5)

    async def go(transport: httpx.AsyncBaseTransport | None) -> list[str]:
        async with NeuronClient(sb.api_key, sb.base_url, transport=transport) as client:
            page = await client.list_calls({"limit": 5, "offset": 0})
            ids = [call["id"] for call in page["data"]]
            return [(await client.get_call(call_id))["id"] for call_id in ids]

    for transport in (None, httpx.AsyncHTTPTransport()):
        assert len(asyncio.run(go(transport))) == 5
    assert sb.stats()["by_endpoint_status"]["detail"] == {"200": 10}
