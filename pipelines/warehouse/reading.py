"""The one way to open a warehouse for reading (status, sql, report, the audit, Dagster).

On DuckDB it is the published file, opened read-only: a reader never blocks a sync and never
waits for one (a sync writes a private copy, `snapshot.py`). Elsewhere it is dlt's `sql_client`
on the destination: the run's own pipeline when there is one, else a throwaway one (reading
needs no local state, and takes no lock).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dlt

from pipelines.runner.outcomes import EXIT_CONFIG, SyncAborted, explain

from .access import DATASET_NAME, PIPELINE_NAME, Warehouse
from .snapshot import held_read_write, read_write_holder_message
from .targets import DuckDBTarget, Target

T = TypeVar("T")


def reading(target: Target, pipeline: Any = None) -> Warehouse:
    """The warehouse to read (use it as a context manager). A DuckDB file that does not exist
    yet, or that another process holds read-write, is refused in one line (exit 2)."""
    if isinstance(target, DuckDBTarget):
        path = target.path
        if not path.exists():
            raise SyncAborted(f"{path} does not exist yet: run `neuron-calls sync` first")
        if held_read_write(path):  # DuckDB would say "IO Error: Could not set lock on file"
            raise SyncAborted(read_write_holder_message(path))
        return Warehouse.duckdb_file(path)
    if pipeline is not None:
        return Warehouse.of(pipeline)
    dialect = target.destination().capabilities().sqlglot_dialect or "duckdb"
    return Warehouse(lambda: _throwaway_client(target), dialect)


@contextlib.contextmanager
def _throwaway_client(target: Target) -> Iterator[Any]:
    """dlt's sql_client on the destination, from a pipeline in a throwaway folder."""
    with tempfile.TemporaryDirectory(prefix="neuron-read-") as workdir:
        pipeline = dlt.pipeline(
            pipeline_name=PIPELINE_NAME,
            pipelines_dir=workdir,
            destination=target.destination(),
            dataset_name=DATASET_NAME,
        )
        with pipeline.sql_client() as client:
            yield client


def read(
    target: Target, what: Callable[[Warehouse], T], failed: str = "cannot read the warehouse"
) -> T:
    """`what(warehouse)`; a failure to open or read becomes one line (`failed: why`), exit 2."""
    try:
        with reading(target) as wh:
            return what(wh)
    except (SyncAborted, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the one line says why
        _, line = explain(exc)
        raise SyncAborted(f"{failed}: {line}", EXIT_CONFIG) from None
