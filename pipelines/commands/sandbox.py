"""`neuron-calls sandbox`: serve the sandbox API until stopped.

Its options and server live in `pipelines.sandbox`; the web stack is imported only when it
starts serving."""

from __future__ import annotations

import argparse
import signal

from pipelines.sandbox import add_arguments as _sandbox_arguments
from pipelines.sandbox import run_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _sandbox_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # a server, not a run: SIGTERM ends it whenever it comes. The entry's handler stops a run by
    # raising, and one raised while the web server started up could be lost in it, leaving the
    # sandbox serving (seen twice in CI); uvicorn installs its own while it serves.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return run_from_args(args)
