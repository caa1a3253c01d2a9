"""Every SQL access outside dlt's own loads: counts, the run log, state read-back, ad-hoc queries.

One interface, two ways in:
- `Warehouse.of(pipeline)`: through the dlt pipeline's `sql_client()`, on any destination dlt
  supports (DuckDB, Postgres, MotherDuck, ...); used by runs, which write.
- `Warehouse.duckdb_file(path)`: a DuckDB file opened read-only; `reading.py` opens the
  analysts' file so for every reader, which never blocks a sync and is never blocked by one.

SQL is written once in DuckDB's dialect and transpiled with sqlglot to the destination's.
This module depends on dlt, duckdb, sqlglot and the source's row shapes, nothing above it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from dlt.common.versioned_state import decompress_state

from pipelines.neuron.audit import StoredTranscript
from pipelines.neuron.rows import LIST_FIELDS, SEGMENT_FIELDS, TRANSCRIPT_FIELDS

PIPELINE_NAME = "neuron_calls"
DATASET_NAME = "neuron"
DEFAULT_DUCKDB_PATH = "neuron_calls.duckdb"
# DuckDB settings while dlt loads: merges spill to disk past the limit instead of growing RSS
DUCKDB_LOAD_CONFIG = {"memory_limit": "64MB", "preserve_insertion_order": False}

RUNS_TABLE = "_sync_runs"
# The run log's columns (DuckDB types, transpiled per destination). New columns are added to an
# existing run log, so an upgrade keeps the history.
RUN_COLUMNS: dict[str, str] = {
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "mode": "varchar",
    "exit_code": "integer",
    "listed": "bigint",
    "inserted": "bigint",
    "updated": "bigint",
    "transcripts": "bigint",
    "pending": "bigint",
    "deferred": "bigint",
    "requests": "bigint",
    "retries": "bigint",
    "rate_limited": "bigint",
    "seconds": "double",
    "error": "varchar",
    "outcome": "varchar",
    "audit_days": "bigint",
    "drift_found": "bigint",
    "drift_repaired": "bigint",
    "recordings": "bigint",
    "checkpoints": "bigint",
}
STATUS_COLUMNS = [
    "started_at",
    "mode",
    "outcome",
    "exit_code",
    "listed",
    "inserted",
    "updated",
    "transcripts",
    "pending",
    "drift_found",
    "drift_repaired",
    "requests",
    "retries",
    "seconds",
    "checkpoints",
]


class Warehouse:
    """A dataset in a warehouse, queried in SQL. Use as a context manager (one connection)."""

    def __init__(self, opener: Any, dialect: str, dataset: str = DATASET_NAME) -> None:
        self._opener = opener
        self._stack = contextlib.ExitStack()
        self._client: Any = None
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._native: Any = None  # Postgres: the driver's connection, in a transaction
        self.dialect = dialect
        self.dataset = dataset

    @classmethod
    def of(cls, pipeline: Any) -> Warehouse:
        dialect = pipeline.destination.capabilities().sqlglot_dialect or "duckdb"
        return cls(pipeline.sql_client, dialect, pipeline.dataset_name)

    @classmethod
    def duckdb_file(cls, path: Path, dataset: str = DATASET_NAME) -> Warehouse:
        return cls(lambda: duckdb.connect(str(path), read_only=True), "duckdb", dataset)

    @classmethod
    def on(cls, conn: duckdb.DuckDBPyConnection, dataset: str = DATASET_NAME) -> Warehouse:
        """An open DuckDB connection (tests, benchmarks); left open on exit."""
        return cls(lambda: contextlib.nullcontext(conn), "duckdb", dataset)

    def __enter__(self) -> Warehouse:
        opened = self._stack.enter_context(self._opener())
        if isinstance(opened, duckdb.DuckDBPyConnection):
            self._conn = opened
        else:
            self._client = opened
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._client = self._conn = None

    # -- SQL -------------------------------------------------------------------------------

    def table(self, name: str) -> str:
        """The qualified, quoted name of a table or view of the dataset."""
        if self._client is not None:
            return str(self._client.make_qualified_table_name(name))
        return f'"{self.dataset}"."{name}"'

    def schema(self) -> str:
        if self._client is not None:
            return str(self._client.fully_qualified_dataset_name())
        return f'"{self.dataset}"'

    def transpile(self, sql: str) -> list[str]:
        """DuckDB SQL in the destination's dialect (statement by statement)."""
        if self.dialect == "duckdb":
            return [sql]
        return sqlglot.transpile(sql, read="duckdb", write=self.dialect)

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Columns and rows of one query (written for the destination's dialect)."""
        if self._conn is not None:
            cursor = self._conn.execute(sql)
            return [c[0] for c in cursor.description or []], cursor.fetchall()
        if self._native is not None:
            with self._native.cursor() as native:
                native.execute(sql)
                return [c[0] for c in native.description or []], list(native.fetchall())
        with self._client.execute_query(sql) as cursor:
            columns = [c[0] for c in cursor.description or []]
            return columns, list(cursor.fetchall())

    def execute(self, *statements: str) -> None:
        for statement in statements:
            if self._conn is not None:
                self._conn.execute(statement)
            elif self._native is not None:
                with self._native.cursor() as native:
                    native.execute(statement)
            else:
                self._client.execute_sql(statement)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every statement inside, DDL too, or none of them (Postgres and DuckDB; elsewhere
        each statement on its own). On Postgres through the driver's own connection: dlt's
        client ends the transaction at the first error, and savepoints need it to go on."""
        if self._conn is not None:  # an open DuckDB connection
            conn: Any = self._conn
            conn.execute("begin transaction")
        elif self.dialect == "duckdb":
            with self._client.begin_transaction():
                yield
            return
        elif self.dialect == "postgres":
            conn = self._native = self._client.native_connection
            conn.autocommit = False
        else:
            yield
            return
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            if self._native is not None:
                conn.autocommit, self._native = True, None

    def relations(self) -> dict[str, str]:
        """Tables and views of the dataset: name -> 'BASE TABLE' or 'VIEW'."""
        _, rows = self.query(
            "select table_name, table_type from information_schema.tables "
            f"where table_schema = {literal(self.schema_name())}"
        )
        return {str(name): str(kind) for name, kind in rows}

    def schema_name(self) -> str:
        """The dataset's schema as the catalog names it (unquoted)."""
        return self.schema().split(".")[-1].strip('"`[]')

    def columns(self, table: str) -> set[str]:
        _, rows = self.query(
            "select column_name from information_schema.columns "
            f"where table_schema = {literal(self.schema_name())} "
            f"and table_name = {literal(table)}"
        )
        return {str(row[0]) for row in rows}

    def count(self, table: str) -> int:
        if table not in self.relations():
            return 0
        _, rows = self.query(f"select count(*) from {self.table(table)}")
        return int(rows[0][0])

    # -- the run log -------------------------------------------------------------------------

    def record_run(self, run: dict[str, Any]) -> None:
        """Append one run to `_sync_runs`, creating the table or adding new columns first."""
        target = self.table(RUNS_TABLE)
        if RUNS_TABLE not in self.relations():
            defs = ", ".join(f"{name} {kind}" for name, kind in RUN_COLUMNS.items())
            self.execute(f"create schema if not exists {self.schema()}")
            self.execute(*self.transpile(f"create table {target} ({defs})"))
        else:
            for name in RUN_COLUMNS.keys() - self.columns(RUNS_TABLE):
                self.execute(
                    *self.transpile(f"alter table {target} add column {name} {RUN_COLUMNS[name]}")
                )
        names = [name for name in RUN_COLUMNS if name in run]
        values = ", ".join(literal(run[name]) for name in names)
        self.execute(
            *self.transpile(f"insert into {target} ({', '.join(names)}) values ({values})")
        )

    def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        if RUNS_TABLE not in self.relations():
            return []
        present = self.columns(RUNS_TABLE)
        wanted = [c for c in STATUS_COLUMNS if c in present]
        columns, rows = self.query(
            f"select {', '.join(wanted)} from {self.table(RUNS_TABLE)} "
            f"order by started_at desc limit {int(limit)}"
        )
        return [dict(zip(columns, row, strict=True)) for row in rows]

    # -- dlt's state, read back ---------------------------------------------------------------

    def pipeline_names(self) -> set[str]:
        if "_dlt_pipeline_state" not in self.relations():
            return set()
        _, rows = self.query(
            f"select distinct pipeline_name from {self.table('_dlt_pipeline_state')}"
        )
        return {str(row[0]) for row in rows}

    def source_state(self) -> dict[str, Any]:
        """The source state of the last committed load (dlt keeps it in `_dlt_pipeline_state`)."""
        if "_dlt_pipeline_state" not in self.relations():
            return {}
        _, rows = self.query(
            f"select state from {self.table('_dlt_pipeline_state')} "
            "order by version desc, created_at desc limit 1"
        )
        if not rows:
            return {}
        state = decompress_state(rows[0][0])
        source_state: dict[str, Any] = state.get("sources", {}).get("neuron", {})
        return source_state


def literal(value: Any) -> str:
    """A SQL literal (standard SQL quoting); the warehouse's own values only, never user SQL."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"timestamp with time zone '{value.isoformat()}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


# -- what the audit reads (runner.stored.WarehouseReader) ---------------------------------------

_DAY = "(c.started_at at time zone 'UTC')::date"


class DatasetReader:
    """The audit's questions to the warehouse, on every destination; one short connection per
    question, so nothing stays open while dlt loads."""

    def __init__(self, open_warehouse: Callable[[], Warehouse]) -> None:
        self._open = open_warehouse

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self._open() as wh:
            if "calls" not in wh.relations():
                return []
            tables = {
                t: wh.table(t)
                for t in ("calls", "transcripts", "transcript_segments", "speaker_sentiment")
            }
            (statement,) = wh.transpile(sql.format(**tables))
            return wh.query(statement)[1]

    def day_counts(self, first: dt.date, last: dt.date) -> dict[tuple[dt.date, str | None], int]:
        rows = self._rows(
            f"select {_DAY} as day, c.disposition, count(*) from {{calls}} as c "
            f"where {_DAY} between {literal(first)} and {literal(last)} "
            f"group by {_DAY}, c.disposition"
        )
        return {(_date(day), disposition): int(n) for day, disposition, n in rows}

    def day_calls(self, days: list[dt.date]) -> dict[dt.date, dict[str, dict[str, Any]]]:
        if not days:
            return {}
        columns = ", ".join(f"c.{name}" for name in LIST_FIELDS)
        rows = self._rows(
            f"select {_DAY} as day, c.id, {columns} from {{calls}} as c "
            f"where {_DAY} in ({', '.join(literal(day) for day in days)})"
        )
        by_day: dict[dt.date, dict[str, dict[str, Any]]] = {}
        for day, call_id, *fields in rows:
            by_day.setdefault(_date(day), {})[call_id] = dict(zip(LIST_FIELDS, fields, strict=True))
        return by_day

    def stored_transcripts(self, first: dt.date, last: dt.date) -> dict[str, StoredTranscript]:
        window = (
            f"join {{calls}} as c on c.id = t.call_id "
            f"where {_DAY} between {literal(first)} and {literal(last)}"
        )
        heads = self._rows(
            f"select t.call_id, {_DAY}, {', '.join('t.' + f for f in TRANSCRIPT_FIELDS)} "
            f"from {{transcripts}} as t {window}"
        )
        out = {
            call_id: StoredTranscript(
                _date(day), dict(zip(TRANSCRIPT_FIELDS, head, strict=True)), [], {}
            )
            for call_id, day, *head in heads
        }
        segments = self._rows(
            f"select t.call_id, {', '.join('t.' + f for f in SEGMENT_FIELDS)} "
            f"from {{transcript_segments}} as t {window} order by t.call_id, t.segment_index"
        )
        for call_id, *segment in segments:
            if call_id in out:
                out[call_id].segments.append(dict(zip(SEGMENT_FIELDS, segment, strict=True)))
        speakers = self._rows(
            f"select t.call_id, t.speaker, t.sentiment from {{speaker_sentiment}} as t {window}"
        )
        for call_id, speaker, sentiment in speakers:
            if call_id in out:
                out[call_id].speakers[speaker] = sentiment
        return out


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
