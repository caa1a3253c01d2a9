"""The one staged write: stage -> write -> record -> publish, on any target.

    with staged_write(target, pipeline) as write:
        with write.warehouse() as wh:
            ...  # SQL, or a dlt load between two `write.warehouse()` sessions
        write.record(run_row(result))  # the run log's row, published with what was written

On DuckDB the writes go to a private copy of the analysts' file (`DuckDBTarget.stage`), which is
published whole when the block ends without an error; an error drops the copy, so the analysts'
file stays as it was. Other destinations are written in place (nothing to publish). The caller
holds the locks (`sync.locked`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from pipelines.warehouse.access import Warehouse
from pipelines.warehouse.targets import Target


class StagedWrite:
    """A write in progress: the warehouse to write (the staged copy on DuckDB), and the run
    log's row to record before publishing."""

    def __init__(self, pipeline: Any, staging: float) -> None:
        self.pipeline = pipeline
        self.staging = staging  # seconds the target took to stage (DuckDB: copy the file)
        self.row: dict[str, Any] | None = None

    def warehouse(self) -> Warehouse:
        """A connection to what is being written; open it around SQL only, not around a dlt
        load (an idle connection must not hold locks through one)."""
        return Warehouse.of(self.pipeline)

    def record(self, row: dict[str, Any]) -> None:
        """The run log's row (`sync.run_row`), written last, so it is published with the write."""
        self.row = row


@contextlib.contextmanager
def staged_write(
    target: Target, pipeline: Any, *, kept_open: bool = False
) -> Iterator[StagedWrite]:
    """Stage, let the block write, record its run, publish; an error publishes nothing.
    `kept_open`: the staged copy stays open through the block (a run's segment: DuckDB then
    loads its catalog once, not at every step)."""
    started = time.monotonic()
    with target.stage():
        write = StagedWrite(pipeline, time.monotonic() - started)
        with target.kept_open(pipeline) if kept_open else contextlib.nullcontext():
            yield write
            if write.row is not None:
                with write.warehouse() as wh:
                    wh.record_run(write.row)
        target.publish()
