"""Shared fixtures: sandboxes of the Neuron Calls API on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipelines.sandbox import Sandbox

SANDBOX_NOW = "2026-11-01T12:00:00Z"
SANDBOX_CALLS = 300


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A shared, frozen sandbox (300 calls, seed 42, clock at SANDBOX_NOW). Do not move its
    clock or change its knobs: use `make_sandbox` for that."""
    with Sandbox(calls=SANDBOX_CALLS, seed=42, now=SANDBOX_NOW) as sb:
        yield sb


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Factory: `make_sandbox(**Sandbox options)` starts one, stopped at the end of the test."""
    started: list[Sandbox] = []

    def make(**kw: Any) -> Sandbox:
        kw.setdefault("calls", SANDBOX_CALLS)
        kw.setdefault("now", SANDBOX_NOW)
        sb = Sandbox(**kw).start()
        started.append(sb)
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL server for the session (skips without one, fails under CI=true)."""
    from .servers import Postgres

    server = Postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[Any]:
    """A real S3-compatible server (moto in server mode) on loopback for the session."""
    from .servers import S3Server

    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


# Unit tests (no server, no subprocess) carry `pytestmark = pytest.mark.unit`: `make test-unit`
# runs them alone in seconds. End-to-end tests are every other file.

# the longest tests (15-30 s each at 4 workers: real processes stopped mid-run, many syncs),
# started first so that none is left running alone at the end of `make test`
LONGEST = (
    "test_soak_",
    "test_sigterm_",
    "test_kill_9_at_",
    "test_ctrl_c_at_",
    "test_runs_each_stopped_",
    "test_an_interrupted_",
    "test_pseudonymized_duckdb_",
    "test_readers_hold_",
    "test_every_block_runs_as_written",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # end-to-end tests before unit tests (which fill the gaps), the longest of all first
    items.sort(
        key=lambda item: (
            item.get_closest_marker("unit") is not None,
            not item.name.startswith(LONGEST),
        )
    )
