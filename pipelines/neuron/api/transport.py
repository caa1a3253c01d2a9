"""The transport under every request: httpx-aiohttp's (aiohttp, the fastest measured here,
behind httpx's API), its errors told apart. Imported when a client first makes one: commands that
only read the warehouse never load aiohttp."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport


class Transport(AiohttpTransport):
    """httpx-aiohttp's transport, its errors told apart: it calls every lost connection
    (refused, reset, dropped) a `ConnectTimeout`, and lets a few of aiohttp's own errors through
    (a reply that is no HTTP). A timeout stays a timeout; a refused or reset connection is a
    `ConnectError`, the rest a `RemoteProtocolError`: a dropped connection is no slow API."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TimeoutException as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, TimeoutError):
                raise
            lost = httpx.ConnectError if isinstance(cause, OSError) else httpx.RemoteProtocolError
            raise lost(f"{type(cause).__name__}: {cause}") from cause
        except httpx.TransportError:
            raise
        except TimeoutError as exc:
            raise httpx.TimeoutException(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            if not type(exc).__module__.startswith("aiohttp"):
                raise
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
