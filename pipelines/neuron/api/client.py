"""Async HTTP client of the Neuron Calls API: auth, retries, a learned rate limit, typed errors.

One `NeuronClient` owns one `httpx.AsyncClient` over httpx-aiohttp's transport (aiohttp under
httpx's API: httpx's own pool is CPU-bound at our pace, `bench/bench_transport.py`), for the
API's GETs and the signed recordings alike, on one pool of connections. A `transport=` (an httpx
transport, for tests) replaces it. It makes no request in its constructor, and takes an
injectable `sleep`/`clock`/`random` so retry and rate tests run instantly. The API key
goes only into the Authorization header of API requests (never to a signed recording URL); it
is never logged or put in a message.

Every API request passes one `RateLimiter`: a pace learned from the 429s when they show a limit,
a shared pause then (`Retry-After`) or at an exhausted quota (`RateLimit-*` headers); random
429s, 5xx, dropped connections and cut bodies are retried by the request that met them, after a
short backoff of its own (see the class). A retry after a timeout, or one that waits long, is
logged at INFO and shown on the progress line (`ClientStats.waiting`). The errors live in
`errors.py`, the limiter in `limiter.py`: import them from there (this module re-exports none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import pendulum

from .. import settings
from .errors import (
    APIConnectionError,
    AuthenticationError,
    BaseURLError,
    MissingAPIKeyError,
    NeuronError,
    NotFoundError,
    RateLimitError,
    RecordingURLRefused,
    ResponseError,
    ServerError,
    TruncatedBodyError,
    UnexpectedStatusError,
    sanitize_url,
)
from .limiter import RateLimiter, parse_rate_limit_headers, parse_retry_after

__all__ = ["Answer", "ClientStats", "NeuronClient", "check_settings"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _CutQueries(logging.Filter):
    """httpx logs each request's whole URL (at INFO): a signed recording URL's query is its
    token, so what httpx logs loses its query strings, whoever turned its logging on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                sanitize_url(arg) if isinstance(arg, httpx.URL) and arg.query else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_CutQueries())


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers seen, retried or not
    # what a request waits for, while nothing else answers: "GET /calls timed out after 30 s;
    # retry 2 of 5 in 0.3 s" (cleared by the next good answer), and who wants to know at once
    waiting: str = field(default="", compare=False)
    on_waiting: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def wait_note(self, note: str) -> None:
        self.waiting = note
        if self.on_waiting is not None:
            self.on_waiting()


class Answer(NamedTuple):
    """One answer of the API, read whole."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (httpx.Headers)
    body: bytes


# -- settings and answers --------------------------------------------------------------------------


def check_settings(api_key: str | None, base_url: str) -> None:
    """Raise ConfigError, saying how to fix it, for a missing key or a base URL that is no URL."""
    if not api_key:
        raise MissingAPIKeyError("no API key")
    parts = urlsplit(base_url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BaseURLError(f"base URL {base_url!r} is not an http(s) URL")
    try:
        httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise BaseURLError(f"base URL {base_url!r} is not a valid URL ({exc})") from None


def _error_body(body: bytes) -> tuple[str | None, str]:
    """The API's error `code` and a message for people, from `{"error": {...}}` when present."""
    try:
        error = orjson.loads(body).get("error") or {}
        code = error.get("code")
        code = str(code)[:80] if code is not None else None
        return code, str(error.get("message") or code or "")[:200]
    except (orjson.JSONDecodeError, AttributeError):
        return None, ""


def _is_retryable(error: NeuronError) -> bool:
    return isinstance(error, RateLimitError | ServerError | APIConnectionError | TruncatedBodyError)


class NeuronClient:
    """The three read endpoints of the Neuron Calls API, and signed recording downloads."""

    def __init__(
        self,
        api_key: str,
        base_url: str = settings.DEFAULT_BASE_URL,
        *,
        max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY,
        max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
        timeout: float = settings.DEFAULT_TIMEOUT_SECONDS,
        max_rps: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        stats: ClientStats | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        check_settings(api_key, base_url)
        self.base_url = base_url.rstrip("/")
        self._base = httpx.URL(self.base_url)
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep
        self.random = random
        self.limiter = limiter or RateLimiter(
            max_rps, clock=clock, sleep=sleep, max_concurrency=max_concurrency
        )
        self.stats = stats if stats is not None else ClientStats()
        # built once, Host too (see `_get`): httpx copies a `Headers` as it is, where a dict is
        # normalised per request
        self._headers = httpx.Headers(
            {
                "Host": self._base.netloc.decode("ascii"),
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
            }
        )
        self._timeout = timeout
        self._pool_size = max_concurrency + 4
        self._transport = transport
        self._httpx: httpx.AsyncClient | None = None  # made on first use
        self._api_transport: httpx.AsyncBaseTransport | None = None  # its transport for the API
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._date_header = ""  # the last `Date` an answer carried, and what it told:
        self._server_epoch = 0.0
        self._clock_offset: float | None = None  # the server's clock minus ours, in seconds

    @property
    def _http(self) -> httpx.AsyncClient:
        """The one HTTP client, made on first use (building its TLS context takes a while)."""
        if self._httpx is None:
            limits = httpx.Limits(max_connections=self._pool_size)
            self._httpx = _Client(timeout=self._timeout, limits=limits, transport=self._transport)
        return self._httpx

    async def __aenter__(self) -> NeuronClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._httpx is not None:
            await self._httpx.aclose()

    # -- the server's clock -------------------------------------------------------------------

    def server_now(self) -> pendulum.DateTime | None:
        """The API's clock (its answers' `Date` header, carried forward by ours since the last
        one), or None before any answer with a `Date`. "Today" is the API's today."""
        if self._clock_offset is None:
            return None
        return pendulum.from_timestamp(time.time() + self._clock_offset, tz="UTC")

    async def clock(self) -> pendulum.DateTime:
        """The API's now: from the answers so far, else from one `GET /calls?limit=1`; the local
        clock when the server sends no `Date` header."""
        if self._clock_offset is None:
            await self.list_calls({"limit": 1})
        return self.server_now() or pendulum.now("UTC")

    def _note_clock(self, headers: Mapping[str, str]) -> None:
        date = headers.get("date")
        if not date:
            return
        if date != self._date_header:  # parsed once per second, not per answer
            try:
                self._server_epoch = parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                return
            self._date_header = date
        self._clock_offset = self._server_epoch - time.time()

    # -- endpoints ---------------------------------------------------------------------------

    async def list_calls(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of `GET /calls`, validated: `data` is a list of objects with an `id`."""
        try:
            page = await self._get_json(settings.CALLS_PATH, params)
        except NotFoundError:  # the list itself cannot be missing: the URL is wrong
            raise BaseURLError(f"GET /calls: not found at {sanitize_url(self.base_url)}") from None
        data = page.get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ResponseError("malformed response from GET /calls: `data` is not a list of calls")
        total = page.get("total")
        if total is not None and not isinstance(total, int):
            raise ResponseError("malformed response from GET /calls: `total` is not an integer")
        return page

    async def iter_calls(self, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of the filtered list, `limit` at the API's maximum, by offset."""
        offset = 0
        while True:
            page = await self.list_calls({**params, "limit": settings.PAGE_SIZE, "offset": offset})
            data = page["data"]
            if data:
                yield data
            offset += len(data)
            total = page.get("total")
            # `total` is trusted when given (a server may cap pages below our limit)
            last = offset >= total if total is not None else len(data) < settings.PAGE_SIZE
            if not data or last:
                return

    async def get_call(self, call_id: str) -> dict[str, Any]:
        return await self._get_json(settings.CALL_PATH.format(call_id=call_id))

    async def get_transcript(self, call_id: str) -> dict[str, Any] | None:
        """The transcript, `{"status": "processing"}` while it is made, None when there is none."""
        try:
            return await self._get_json(settings.TRANSCRIPT_PATH.format(call_id=call_id))
        except NotFoundError:
            return None

    @contextlib.asynccontextmanager
    async def stream_recording(self, url: str) -> AsyncIterator[tuple[str, AsyncIterator[bytes]]]:
        """`async with client.stream_recording(url) as (content_type, chunks)`: the audio at a
        signed recording URL (from `GET /calls/{id}`), streamed, never whole in memory.

        The API key is not sent there: the URL's token is the credential. 5xx, 429, timeouts
        and dropped connections before the body starts are retried like API requests; a body
        that breaks off raises APIConnectionError. 401/403 (expired or forged) raise
        RecordingURLRefused, 404 NotFoundError. No error holds the URL's query string.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ResponseError(f"recording URL {sanitize_url(url)!r} is not an http(s) URL")
        response = await self._with_retries(
            f"GET {parts.path}", lambda attempt: self._open_recording(url)
        )
        try:
            content_type = response.headers.get("content-type", "application/octet-stream")
            yield content_type, self._recording_chunks(response, url)
        finally:
            await response.aclose()

    # -- one attempt -------------------------------------------------------------------------

    async def _get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._with_retries(
            f"GET {path}", lambda attempt: self._attempt_json(path, params)
        )

    async def _attempt_json(
        self, path: str, params: dict[str, Any] | None
    ) -> dict[str, Any] | NeuronError:
        url = self.base_url + path
        sent_at = await self.limiter.acquire()
        self.stats.requests += 1
        started = time.monotonic()
        try:
            answer = await self._get(path, params)
        except httpx.TransportError as exc:
            # refused, reset, dropped, cut off, timed out
            _log_request(path, params, _failure(exc), started)
            timed_out = _timed_out(exc)
            why = f"no answer in {self._timeout:g} s, " if timed_out else ""
            return APIConnectionError(
                f"cannot reach the API at {sanitize_url(url)} ({why}{_failure(exc)})",
                path=path,
                timed_out=timed_out,
            )
        finally:
            self.limiter.release()
        _log_request(path, params, answer.status, started)
        self._note_clock(answer.headers)
        error = self._status_error(answer, path)
        self._tell_limiter(answer.headers, sent_at, error)
        return error if error is not None else self._parse_json(answer, path)

    def _url(self, path: str) -> httpx.URL:
        """The API's URL of `path` (no query): the base URL, parsed once, with `path` after its
        own. Parsing each URL anew, httpx checks it char by char: a fifth of a request's CPU
        (bench_transport.py); the path, ours, goes to the transport as it is."""
        base = self._base._uri_reference
        url = object.__new__(httpx.URL)
        url._uri_reference = base._replace(path=base.path + path)
        return url

    async def _get(self, path: str, params: dict[str, Any] | None) -> Answer:
        """One GET of the API, read whole, straight to the client's transport for the API's URL:
        no cookies, auth flow or redirects (a 3xx is no JSON answer: BaseURLError; the key goes
        to no other host), which cost as much CPU as the request itself (bench_transport.py)."""
        if self._api_transport is None:  # the pool, or the proxy's for the API (httpx's choice)
            self._api_transport = self._http._transport_for_url(self._base)
        # given its (empty) body, httpx skips the headers it would work out per request (Host:
        # ours, built once); the details' and transcripts' URLs have no query to encode
        request = httpx.Request(
            "GET",
            httpx.URL(self.base_url + path, params=params) if params else self._url(path),
            headers=self._headers,
            extensions=self._extensions,
            stream=_NO_BODY,
        )
        request.read()
        response = await self._api_transport.handle_async_request(request)
        try:
            return Answer(response.status_code, response.headers, await _read(response))
        finally:
            await response.aclose()

    def _tell_limiter(
        self, headers: Mapping[str, str], sent_at: float, error: NeuronError | None
    ) -> None:
        """Feed the limiter: the quota a response announces, a 429, or one more good answer."""
        quota = parse_rate_limit_headers(headers)
        if quota is not None:
            self.limiter.on_quota(quota)
        if isinstance(error, RateLimitError):
            self.stats.rate_limited += 1
            self.limiter.on_rate_limited(sent_at, error.retry_after)
        else:
            self.limiter.on_answer(sent_at)
            if self.stats.waiting:
                self.stats.waiting = ""

    async def _open_recording(self, url: str) -> httpx.Response | NeuronError:
        """One GET of a signed URL without the API key, streamed: the response, or an error."""
        # no Authorization header: the URL's token is the credential
        request = self._http.build_request("GET", url, headers={"Accept": "*/*"})
        path = urlsplit(url).path
        self.stats.requests += 1
        started = time.monotonic()
        try:
            response = await self._http.send(request, stream=True, follow_redirects=True)
        except httpx.TransportError as exc:
            _log_request(path, None, _failure(exc), started)
            return APIConnectionError(
                f"cannot download the recording at {sanitize_url(url)} ({_failure(exc)})",
                path=path,
                timed_out=_timed_out(exc),
            )
        _log_request(path, None, response.status_code, started)  # never the URL's token
        if response.status_code < 300:
            return response
        try:
            body = await response.aread()
        except httpx.TransportError:
            body = b""
        finally:
            await response.aclose()
        answer = Answer(response.status_code, response.headers, body)
        if response.status_code in (401, 403):
            code, message = _error_body(answer.body)
            return RecordingURLRefused(
                f"GET {sanitize_url(url)}: the recording URL was refused ({response.status_code}"
                f"{': ' + message if message else ''}); fetch the call again for a fresh one",
                status_code=response.status_code,
                path=path,
                code=code,
            )
        error = self._status_error(answer, path) or UnexpectedStatusError(
            f"GET {sanitize_url(url)}: answered {response.status_code}",
            status_code=response.status_code,
            path=path,
        )
        if isinstance(error, RateLimitError):
            self.stats.rate_limited += 1
        return error

    async def _recording_chunks(self, response: httpx.Response, url: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes(settings.RECORDING_CHUNK_BYTES):
                yield chunk
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"the recording download from {sanitize_url(url)} broke off ({_failure(exc)})",
                path=urlsplit(url).path,
            ) from None

    # -- retries -----------------------------------------------------------------------------

    async def _with_retries(
        self, what: str, attempt: Callable[[int], Awaitable[T | NeuronError]]
    ) -> T:
        """Run `attempt(n)` until it gives a result, or raise its last error when not to retry."""
        number = 0
        while True:
            number += 1
            result = await attempt(number)
            if not isinstance(result, NeuronError):
                return result
            if not self._should_retry(result, number):
                raise result
            delay = self._retry_delay(result, number)
            self.stats.retries += 1
            self._tell_retry(what, result, number, delay)
            await self.sleep(delay)

    def _tell_retry(self, what: str, error: NeuronError, number: int, delay: float) -> None:
        """One line a retry: at INFO (and on the progress line) after a timeout or before a long
        wait, where a person would otherwise see nothing happen; else at DEBUG (random faults)."""
        timed_out = isinstance(error, APIConnectionError) and error.timed_out
        if timed_out:
            why = f"{what} timed out after {self._timeout:g} s"
        elif isinstance(error, RateLimitError):
            why = f"{what} answered 429"
        else:
            why = str(error) if str(error).startswith(what) else f"{what}: {error}"
        note = f"{why}; retry {number} of {self.max_attempts - 1} in {delay:.2g} s"
        if delay < settings.RETRY_NOTICE_SECONDS and not timed_out:
            log.debug("%s", note)
            return
        log.warning("%s", note)  # a long wait: a person should know why nothing moves
        self.stats.wait_note(note)

    def _should_retry(self, error: NeuronError, attempt: int) -> bool:
        """Retry 429, 5xx, dropped connections and cut bodies, while attempts remain."""
        if not _is_retryable(error):
            return False
        if attempt >= self.max_attempts:
            log.debug("giving up after %d attempts: %s", attempt, error)
            return False
        return True

    def _retry_delay(self, error: NeuronError, attempt: int) -> float:
        """The wait the API asked for (`Retry-After`), else capped exponential backoff."""
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter: 50-100% of the capped delay. It starts short:
        it holds only the request that failed, and a random fault is gone at the next try."""
        delay = settings.BACKOFF_BASE_SECONDS * settings.BACKOFF_FACTOR ** (attempt - 1)
        return min(settings.BACKOFF_MAX_SECONDS, delay) * (0.5 + self.random() / 2)

    # -- reading answers ---------------------------------------------------------------------

    def _status_error(self, answer: Answer, path: str) -> NeuronError | None:
        """The error an answer's status means, or None for a 2xx/3xx."""
        status = answer.status
        if status < 400:
            return None
        where = f"GET {path}"
        code, message = _error_body(answer.body)
        if status in (401, 403):
            return AuthenticationError(
                f"the API refused the key ({status} on {where})",
                status_code=status,
                path=path,
                code=code,
            )
        if status == 404:
            return NotFoundError(f"{where}: not found", status_code=status, path=path, code=code)
        if status == 429:
            return RateLimitError(
                f"{where}: rate limited (429) after {self.max_attempts} attempts",
                path=path,
                code=code,
                retry_after=self._rate_limit_wait(answer.headers),
            )
        if status >= 500:
            return ServerError(
                f"{where}: server error {status} {message}".strip(),
                status_code=status,
                path=path,
                code=code,
            )
        return UnexpectedStatusError(
            f"{where}: the API answered {status} {message}",
            status_code=status,
            path=path,
            code=code,
        )

    @staticmethod
    def _rate_limit_wait(headers: Mapping[str, str]) -> float | None:
        """How long a 429 asks to wait: `Retry-After`, else an exhausted quota's reset."""
        wait = parse_retry_after(headers)
        if wait is None:
            quota = parse_rate_limit_headers(headers)
            if quota is not None and quota.remaining < 1 and quota.reset > 0:
                wait = min(quota.reset, settings.RETRY_AFTER_MAX_SECONDS)
        return wait

    def _parse_json(self, answer: Answer, path: str) -> dict[str, Any] | NeuronError:
        """The JSON object of a 2xx answer, or the error that it is not one."""
        where = f"GET {path}"
        content_type = answer.headers.get("content-type", "")
        if "json" not in content_type:
            return BaseURLError(
                f"{where} answered {content_type or 'no content type'}, not JSON, at "
                f"{sanitize_url(self.base_url)}"
            )
        try:
            body = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return TruncatedBodyError(f"{where}: the API answered malformed JSON")
        if not isinstance(body, dict):
            return ResponseError(f"{where}: expected a JSON object, got {type(body).__name__}")
        return body


def _log_request(path: str, params: Mapping[str, Any] | None, status: Any, started: float) -> None:
    """One line per request at DEBUG (`-v`): method, path and the list's parameters, status,
    time. Never a header (the key) nor a signed URL's query (its token)."""
    if log.isEnabledFor(logging.DEBUG):
        query = f"?{urlencode(params)}" if params else ""
        took = (time.monotonic() - started) * 1000
        log.debug("GET %s%s -> %s in %.0f ms", path, query, status, took)


_NO_BODY = httpx.ByteStream(b"")


async def _read(response: httpx.Response) -> bytes:
    """The whole body: the transport's chunks as they come, unless content-encoded (httpx's own
    read decodes, through four layers of generators a chunk: bench_transport.py)."""
    stream = response.stream
    if "content-encoding" in response.headers or not isinstance(stream, httpx.AsyncByteStream):
        return await response.aread()
    return b"".join([chunk async for chunk in stream])


def _failure(exc: BaseException) -> str:
    """What went wrong, by name: the transport's own error under httpx's (aiohttp's
    `ServerDisconnectedError`, `ClientConnectorError`, ...), else httpx's."""
    return type(exc.__cause__ or exc).__name__


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TimeoutException)


def default_transport(pool_size: int, proxy: httpx.Proxy | None = None) -> httpx.AsyncBaseTransport:
    """The transport of every request: aiohttp under httpx's API, `pool_size` connections."""
    from .transport import Transport  # aiohttp: 0.2 s to import, for runs that ask the API only

    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    return Transport(limits=limits, proxy=proxy)


class _Client(httpx.AsyncClient):
    """httpx's client over `default_transport`, straight and through each proxy the environment
    names (HTTP(S)_PROXY, NO_PROXY: read once, when it is made), unless given a `transport`."""

    def _init_transport(  # type: ignore[override]
        self, *, limits: httpx.Limits, transport: httpx.AsyncBaseTransport | None, **_: Any
    ) -> httpx.AsyncBaseTransport:
        return transport or default_transport(limits.max_connections or 100)

    def _init_proxy_transport(  # type: ignore[override]
        self, proxy: httpx.Proxy, *, limits: httpx.Limits, **_: Any
    ) -> httpx.AsyncBaseTransport:
        return default_transport(limits.max_connections or 100, proxy)
