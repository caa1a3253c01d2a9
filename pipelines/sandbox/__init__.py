"""The sandbox: a seeded emulator of the Neuron Calls API, served over real HTTP.

Importing this package, or building the CLI's parser with `add_arguments`, loads no web
server: starlette and uvicorn are imported only when a sandbox starts serving.

Modules, from the bottom up:
    data.py         the generated calls (`generate`, `Dataset`) and drift on them
    transcripts.py  phrase banks and the deterministic transcripts
    recordings.py   signed recording URLs and the WAV behind each
    state.py        the clock, counters, rate limit and knobs of a running sandbox
    app.py          the ASGI app: the edge (`Gate`) and the /v1 API
    admin.py        the /_sandbox/ admin endpoints
    server.py       `Sandbox` (a background server) and `serve` (blocking)
    options.py      the command line: `add_arguments`, `run_from_args`
    responses.py    JSON answers and errors, shared by app.py and admin.py
    defaults.py     the default key and port, shared by options.py and server.py
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .defaults import DEFAULT_API_KEY
from .options import add_arguments, run_from_args

if TYPE_CHECKING:
    from .server import Sandbox, serve

__all__ = ["DEFAULT_API_KEY", "Sandbox", "add_arguments", "run_from_args", "serve"]


def __getattr__(name: str) -> Any:
    """`Sandbox` and `serve` on first use (PEP 562)."""
    if name in ("Sandbox", "serve"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
