"""Every error the Neuron client raises, in one tree (like httpx's `_exceptions.py`).

    NeuronError                      the root: `except NeuronError` catches them all
    ├── ConfigError                  settings or input are wrong; the run cannot start (exit 2)
    │   ├── MissingAPIKeyError       no API key was given
    │   ├── BaseURLError             the base URL is no URL, or what answers there is not the API
    │   └── AuthenticationError *    401/403 from the API: the key is wrong or revoked
    ├── APIStatusError               an error status; has status_code, path and code
    │   ├── AuthenticationError *    (also a ConfigError, above)
    │   ├── NotFoundError            404: the call, its transcript or the recording does not exist
    │   ├── RateLimitError           429 after every retry; carries retry_after
    │   ├── ServerError              5xx after every retry
    │   ├── UnexpectedStatusError    any other 4xx (also a ResponseError)
    │   └── RecordingURLRefused      401/403 on a signed recording URL: expired or forged
    ├── APIConnectionError           unreachable, timed out or dropped, after every retry; has path
    └── ResponseError                an answer that is not the documented JSON
        ├── TruncatedBodyError       JSON cut short (a dropped connection): retried
        └── UnexpectedStatusError    (also an APIStatusError, above)

Status errors are data: branch on `status_code`, `path` and the API's error `code`
(`{"error": {"code": ...}}`), not on the message. `path` never holds a query string (signed
recording URLs carry their token there). No error ever holds the API key.
"""

from __future__ import annotations

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AuthenticationError",
    "BaseURLError",
    "ConfigError",
    "MissingAPIKeyError",
    "NeuronError",
    "NotFoundError",
    "RateLimitError",
    "RecordingURLRefused",
    "ResponseError",
    "ServerError",
    "TruncatedBodyError",
    "UnexpectedStatusError",
    "sanitize_url",
]


def sanitize_url(url: object) -> str:
    """A URL or path without its query string or fragment (signed URLs carry their token
    there), fit for logs and messages; `?…` marks a query that was cut."""
    head, query, _ = str(url).split("#", 1)[0].partition("?")
    return head + ("?…" if query else "")


class NeuronError(Exception):
    """Root of every error the client raises."""


class ConfigError(NeuronError):
    """Settings or input are wrong; the run cannot start (exit 2)."""


class MissingAPIKeyError(ConfigError):
    """No API key was given."""


class BaseURLError(ConfigError):
    """The base URL is not an http(s) URL, or what answers there is not the Neuron API."""


class APIStatusError(NeuronError):
    """The API answered an error status.

    `status_code` is the HTTP status, `path` the request's path without its query string,
    `code` the API's error code from an `{"error": {"code": ...}}` body (None without one).
    """

    def __init__(
        self, message: str, *, status_code: int, path: str, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.path = sanitize_url(path)
        self.code = code


class AuthenticationError(ConfigError, APIStatusError):
    """401/403: the key is missing, wrong or revoked."""


class NotFoundError(APIStatusError):
    """404: the call (or its transcript, or the recording) does not exist."""


class RateLimitError(APIStatusError):
    """429 after every retry; `retry_after` is the last wait the API asked for (seconds)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        path: str,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, path=path, code=code)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx after every retry."""


class RecordingURLRefused(APIStatusError):
    """401/403 on a signed recording URL: it expired or is not valid; get a fresh one."""


class APIConnectionError(NeuronError):
    """The API could not be reached, dropped the connection, or did not answer in time (then
    `timed_out`), after every retry."""

    def __init__(self, message: str, *, path: str | None = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.path = sanitize_url(path) if path is not None else None
        self.timed_out = timed_out


class ResponseError(NeuronError):
    """The API answered something that is not the documented JSON."""


class TruncatedBodyError(ResponseError):
    """A JSON body that does not parse: usually a cut connection, so it is retried."""


class UnexpectedStatusError(ResponseError, APIStatusError):
    """A 4xx the client has no class for (400 for a bad parameter, 409, 422, ...)."""
