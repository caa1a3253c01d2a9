"""Async HTTP client of the Neuron Calls API: auth, retries, a shared rate gate, typed errors.

One `NeuronClient` owns one `httpx.AsyncClient`. It makes no request in its constructor, takes a
`transport=` for tests, and an injectable `sleep`/`clock`/`random` so retry tests run instantly.
The API key goes only into the Authorization header; it is never logged or put in a message.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from . import settings

log = logging.getLogger(__name__)


class NeuronError(Exception):
    """Root of every error the client raises."""


class ConfigError(NeuronError):
    """Settings or input are wrong; the run cannot start (exit 2)."""


class AuthenticationError(ConfigError):
    """401/403: the key is missing, wrong or revoked."""


class NotFoundError(NeuronError):
    """404: the call (or its transcript) does not exist."""


class RateLimitError(NeuronError):
    """429 after every retry."""


class ServerError(NeuronError):
    """5xx after every retry."""


class APIConnectionError(NeuronError):
    """The API could not be reached, or dropped the connection, after every retry."""


class ResponseError(NeuronError):
    """The API answered something that is not the documented JSON."""


def sanitize_url(url: str | httpx.URL) -> str:
    """The URL without its query string (signed URLs carry tokens there)."""
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers seen, retried or not


class RateGate:
    """One gate every request passes: a shared pause after a 429 and an optional requests/s cap.

    When one request is told to wait (Retry-After), every request waits, instead of each
    retrying on its own and hammering a limiter that already said no.
    """

    def __init__(
        self,
        max_rps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / max_rps if max_rps else 0.0
        self.clock = clock
        self.sleep = sleep
        self.resume_at = 0.0
        self.next_slot = 0.0

    def pause(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, self.clock() + seconds)

    async def wait(self) -> None:
        while True:
            now = self.clock()
            if now < self.resume_at:
                await self.sleep(self.resume_at - now)
                continue
            if not self.interval:
                return
            slot = max(self.next_slot, now)
            self.next_slot = slot + self.interval
            if slot <= now:
                return
            await self.sleep(slot - now)
            if self.clock() >= self.resume_at:
                return
            # a pause began while this request waited for its slot: wait that out too


def check_settings(api_key: str | None, base_url: str) -> None:
    """Raise ConfigError, saying how to fix it, for a missing key or a base URL that is no URL."""
    if not api_key:
        raise ConfigError(
            "no API key: set SOURCES__NEURON__API_KEY, or api_key under [sources.neuron] "
            "in .dlt/secrets.toml"
        )
    parts = urlsplit(base_url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"base URL {base_url!r} is not an http(s) URL: set SOURCES__NEURON__BASE_URL "
            f"(default {settings.DEFAULT_BASE_URL})"
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), settings.RETRY_AFTER_MAX_SECONDS)
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        error = orjson.loads(response.content).get("error") or {}
        return str(error.get("message") or error.get("code") or "")[:200]
    except (orjson.JSONDecodeError, AttributeError):
        return ""


class NeuronClient:
    """The three read endpoints of the Neuron Calls API."""

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
    ) -> None:
        check_settings(api_key, base_url)
        if transport is None:
            transport = _default_transport(max_concurrency)
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep
        self.random = random
        self.gate = RateGate(max_rps, clock=clock, sleep=sleep)
        self.stats = stats if stats is not None else ClientStats()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> NeuronClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints ---------------------------------------------------------------------------

    async def list_calls(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of `GET /calls`, validated: `data` is a list of objects with an `id`."""
        try:
            page = await self._get_json(settings.CALLS_PATH, params)
        except NotFoundError:  # the list itself cannot be missing: the URL is wrong
            raise ConfigError(
                f"GET /calls: not found at {sanitize_url(self.base_url)}: is SOURCES__NEURON__"
                f"BASE_URL the API's /v1 URL (default {settings.DEFAULT_BASE_URL})?"
            ) from None
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

    # -- transport -----------------------------------------------------------------------------

    async def _get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            retry_in: float | None = None
            await self.gate.wait()
            self.stats.requests += 1
            try:
                response = await self._http.get(path, params=params)
            except httpx.TransportError as exc:  # refused, reset, dropped, timed out
                failure: NeuronError = APIConnectionError(
                    f"cannot reach the API at {sanitize_url(self.base_url + path)} "
                    f"({type(exc).__name__}); check SOURCES__NEURON__BASE_URL and the network"
                )
            else:
                result = self._parse(response, path)
                if isinstance(result, dict):
                    return result
                failure = result
                if response.status_code == 429:
                    self.stats.rate_limited += 1
                    retry_in = _retry_after(response)
                    if retry_in is not None:
                        self.gate.pause(retry_in)
            if not _retryable(failure) or attempt >= self.max_attempts:
                raise failure
            self.stats.retries += 1
            delay = retry_in if retry_in is not None else self._backoff(attempt)
            log.debug("retrying %s in %.2fs after: %s", path, delay, failure)
            await self.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter: 50-100% of the capped delay."""
        cap = min(settings.BACKOFF_MAX_SECONDS, settings.BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        return cap * (0.5 + self.random() / 2)

    def _parse(self, response: httpx.Response, path: str) -> dict[str, Any] | NeuronError:
        status = response.status_code
        where = f"GET {path}"
        if status in (401, 403):
            return AuthenticationError(
                f"the API refused the key ({status} on {where}): check SOURCES__NEURON__API_KEY"
            )
        if status == 404:
            return NotFoundError(f"{where}: not found")
        if status == 429:
            return RateLimitError(f"{where}: rate limited (429) after {self.max_attempts} attempts")
        if status >= 500:
            return ServerError(f"{where}: server error {status} {_error_message(response)}".strip())
        if status >= 400:
            return ResponseError(f"{where}: the API answered {status} {_error_message(response)}")
        content_type = response.headers.get("content-type", "")
        if "json" not in content_type:
            return ConfigError(
                f"{where} answered {content_type or 'no content type'}, not JSON: is "
                f"SOURCES__NEURON__BASE_URL ({sanitize_url(self.base_url)}) the API's /v1 URL?"
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return _TruncatedBody(f"{where}: the API answered malformed JSON")
        if not isinstance(body, dict):
            return ResponseError(f"{where}: expected a JSON object, got {type(body).__name__}")
        return body


class _TruncatedBody(ResponseError):
    """A JSON body that does not parse: usually a cut connection, so it is retried."""


def _retryable(error: NeuronError) -> bool:
    return isinstance(error, RateLimitError | ServerError | APIConnectionError | _TruncatedBody)


def _default_transport(max_concurrency: int) -> httpx.AsyncBaseTransport:
    """aiohttp under httpx's API: ~9x the requests/s of httpx's own pool at 32 in flight."""
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(
        max_connections=max_concurrency + 4, max_keepalive_connections=max_concurrency + 4
    )
    return AiohttpTransport(limits=limits, trust_env=True)
