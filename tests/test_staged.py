"""The one staged write (`runner.staged`): what the block writes and its run log's row are
published together on the analysts' DuckDB file; a failure in the block leaves the file as it
was."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.runner import sync as runner
from pipelines.runner.staged import staged_write
from pipelines.warehouse.access import RUNS_TABLE


def analysts_file(path: Path) -> Path:
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema neuron; create table neuron.notes (n integer)")
        conn.execute("insert into neuron.notes values (1)")
    return path


def read(path: Path) -> tuple[list[int], list[str]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        notes = conn.execute("select n from neuron.notes order by n").fetchall()
        tables = conn.execute("select table_name from duckdb_tables()").fetchall()
        modes = (
            conn.execute(f"select mode from neuron.{RUNS_TABLE}").fetchall()
            if (RUNS_TABLE,) in tables
            else []
        )
    return [row[0] for row in notes], [row[0] for row in modes]


def write_note(tmp_path: Path, db: Path, fail: bool) -> None:
    options = runner.SyncOptions(duckdb_path=db, pipelines_dir=str(tmp_path / "dlt"))
    target = runner.target_of(options)
    with (
        runner.locked(options, target, loads=False) as pipeline,
        staged_write(target, pipeline) as write,
    ):
        with write.warehouse() as wh:
            wh.execute("insert into neuron.notes values (2)")
        write.record({"mode": "note", "exit_code": 0})
        if fail:
            raise RuntimeError("the write failed after its SQL")


def test_the_write_and_its_run_are_published_together(tmp_path: Path) -> None:
    db = analysts_file(tmp_path / "calls.duckdb")
    write_note(tmp_path, db, fail=False)
    assert read(db) == ([1, 2], ["note"])
    assert not (tmp_path / ".calls.duckdb.sync").exists()  # no copy left beside the file


def test_a_failed_write_leaves_the_analysts_file_as_it_was(tmp_path: Path) -> None:
    db = analysts_file(tmp_path / "calls.duckdb")
    before = db.read_bytes()
    with pytest.raises(RuntimeError, match="failed after its SQL"):
        write_note(tmp_path, db, fail=True)
    assert db.read_bytes() == before
    assert read(db) == ([1], [])
    assert not (tmp_path / ".calls.duckdb.sync").exists()
