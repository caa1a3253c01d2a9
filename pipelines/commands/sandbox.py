"""`neuron-calls sandbox`: serve the sandbox API until stopped.

Its options and server live in `pipelines.sandbox`; the web stack is imported only when it
starts serving."""

from __future__ import annotations

import argparse

from pipelines.sandbox import add_arguments as _sandbox_arguments
from pipelines.sandbox import run_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _sandbox_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_from_args(args)
