"""The tables of the `neuron` dataset and their dlt hints: one `Table` per table.

Every table is merged (`delete-insert`) by its merge key, so a call synced twice is one row.
The tables that hold a call's data carry a hard-delete column: a *tombstone* row (the call's
key, `_deleted` true) makes the merge delete that call's rows and insert nothing, so

- a reloaded transcript with zero segments or no speakers still replaces the old rows (the
  merge only deletes a call's rows when the load has a row of that call), and
- a call erased upstream leaves every table (`erased_rows`).

dlt drops the flagged rows before the insert: a tombstone never stays as a row.

The rows of calls and transcripts that fit the declared columns go to dlt as one arrow table a
batch: dlt writes it to parquet whole instead of normalizing row by row (which would be most
of what a run adds after its last request). A row with a
field the API added goes as a dict, so dlt adds the column (or child table) as always; a batch
with a value of another type goes as dicts whole, so dlt makes its variant column. dlt gives an
arrow table none of its own two columns (`_dlt_load_id`, `_dlt_id`, NOT NULL in our tables,
which dict rows have) unless the pipeline's settings ask: the arrow tables carry them already,
so a pipeline of any settings loads them (`with_dlt_columns`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import dlt
import pendulum
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema.typing import C_DLT_ID, C_DLT_LOAD_ID, TColumnSchema
from dlt.common.schema.utils import dlt_id_column, dlt_load_id_column
from dlt.extract.items import DataItemWithMeta

from .rows import Row

HARD_DELETE = "_deleted"  # true on a tombstone row; always NULL on the rows that stay
_HARD_DELETE_COLUMN: TColumnSchema = {"data_type": "bool", "hard_delete": True}
# key values of a tombstone's other key columns: never those of a real row (indexes count
# from 0, and a speaker has a name)
_FILLER = {"bigint": -1, "text": ""}
# dlt's own columns as dlt defines them (the row id is the key of dlt's child tables), also for
# the arrow tables that carry them (`with_dlt_columns`)
_DLT_COLUMNS = {C_DLT_LOAD_ID: dlt_load_id_column(), C_DLT_ID: dlt_id_column()}


class Table(NamedTuple):
    name: str
    primary_key: tuple[str, ...]
    merge_key: str  # the call's id: the merge replaces every row of a call it loads
    columns: dict[str, TColumnSchema]
    arrow: bool = False  # rows that fit `columns` go as one arrow table (see the docstring)

    @property
    def erasable(self) -> bool:
        return HARD_DELETE in self.columns

    def hints(self) -> Any:
        return dlt.mark.make_hints(
            table_name=self.name,
            primary_key=list(self.primary_key),
            merge_key=self.merge_key,
            write_disposition={"disposition": "merge", "strategy": "delete-insert"},
            columns={**self.columns, **_DLT_COLUMNS},
        )

    def rows(
        self, rows: list[Row], hinted: bool = False, load_id: str | None = None
    ) -> list[DataItemWithMeta]:
        """`rows` routed to this table with its own hints (a routed table would otherwise
        inherit the resource's): one arrow table of the rows that fit the declared columns
        (see the module's docstring), with dlt's columns of the load `load_id` when given, and
        a list of the others. `hinted`: dlt has had the hints this run, so the rows go by table
        name only (new hints on an item make dlt recompute and validate the table's schema for
        every item)."""
        items: list[Any] = []
        if self.arrow:
            plain: list[Row] = []
            others: list[Row] = []
            for row in rows:
                (plain if row.keys() <= self.columns.keys() else others).append(row)
            table = self.as_arrow(plain) if plain else None
            if table is not None:
                items.append(table if load_id is None else with_dlt_columns(table, load_id))
                rows = others
        if rows:
            items.append(rows)
        return [self._routed(item, hinted) for item in items]

    def _routed(self, item: Any, hinted: bool = False) -> DataItemWithMeta:
        if hinted:
            return dlt.mark.with_table_name(item, self.name)
        return dlt.mark.with_hints(item, self.hints(), create_table_variant=True)

    def as_arrow(self, rows: list[Row]) -> Any:
        """The rows as one arrow table of the declared columns, or None when a value is not of
        its column's Python type: pyarrow would cut 12.7 to 12 in a bigint column or make True
        1.0 in a double one, where dlt keeps the value in a variant column."""
        import pyarrow as pa

        accepts = {name: _PY_TYPES[str(c["data_type"])] for name, c in self.columns.items()}
        for row in rows:
            for name, value in row.items():
                if value is not None and type(value) not in accepts[name]:
                    return None
        schema = pa.schema(
            [
                pa.field(name, _arrow_type(str(c["data_type"])), nullable=c.get("nullable", True))
                for name, c in self.columns.items()
            ]
        )
        try:
            return pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            return None

    def materialize(self) -> DataItemWithMeta:
        """An empty item that makes dlt create the table, rows or not."""
        return self._routed(dlt.mark.materialize_table_schema())

    def tombstone(self, call_id: str) -> Row:
        """A row that deletes every row of `call_id` in this table and is not kept itself."""
        row: Row = {key: _FILLER[str(self.columns[key]["data_type"])] for key in self.primary_key}
        row[self.merge_key] = call_id
        row[HARD_DELETE] = True
        return row


def with_dlt_columns(table: Any, load_id: str) -> Any:
    """The arrow table with dlt's own columns, as dlt fills them for dict rows: the load's id,
    and a random row id from dlt's own generator (unless the pipeline's settings have dlt add
    one: `dlt_adds_row_ids`)."""
    import pyarrow as pa

    rows = table.num_rows
    table = table.append_column(
        pa.field(C_DLT_LOAD_ID, pa.string(), nullable=False),
        pa.array([load_id] * rows, pa.string()),
    )
    if dlt_adds_row_ids():
        return table
    return table.append_column(
        pa.field(C_DLT_ID, pa.string(), nullable=False),
        pa.array(generate_dlt_ids(rows), pa.string()),
    )


def dlt_adds_row_ids() -> bool:
    """The user's dlt settings ask dlt to add `_dlt_id` to arrow tables (it would add a second
    one beside ours)."""
    return bool(dlt.config.get("normalize.parquet_normalizer.add_dlt_id", bool))


def import_pyarrow() -> None:
    """pyarrow imported in the thread that builds the source: imported first by the extract's
    own thread while dlt imports it in another, it was seen half-initialized ("module 'pyarrow'
    has no attribute 'Schema'")."""
    import pyarrow  # noqa: F401


# the Python types a column of each dlt data type takes as is in an arrow table (exact types:
# a bool is no bigint or double here)
_PY_TYPES: dict[str, frozenset[type]] = {
    "text": frozenset({str}),
    "bigint": frozenset({int}),
    "double": frozenset({int, float}),
    "bool": frozenset({bool}),
    "timestamp": frozenset({dt.datetime, pendulum.DateTime}),
}


def _arrow_type(data_type: str) -> Any:
    """pyarrow's type for a dlt data type of the arrow tables (imported when a run needs it)."""
    import pyarrow as pa

    if data_type == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return getattr(
        pa, {"text": "string", "bigint": "int64", "double": "float64", "bool": "bool_"}[data_type]
    )()


def _key(data_type: str) -> TColumnSchema:
    return {"data_type": data_type, "nullable": False}  # type: ignore[typeddict-item]


CALLS = Table(
    "calls",
    ("id",),
    "id",
    {
        "id": _key("text"),
        "campaign_id": {"data_type": "text"},
        "contact_phone": {"data_type": "text"},
        "contact_name": {"data_type": "text"},
        "status": {"data_type": "text"},
        "disposition": {"data_type": "text"},
        "duration_seconds": {"data_type": "bigint"},
        "language": {"data_type": "text"},
        "started_at": {"data_type": "timestamp", "timezone": True},
        "ended_at": {"data_type": "timestamp", "timezone": True},
        "transcript_job_id": {"data_type": "text"},
        "has_recording": {"data_type": "bool"},
        HARD_DELETE: _HARD_DELETE_COLUMN,
    },
    arrow=True,
)
TRANSCRIPTS = Table(
    "transcripts",
    ("call_id",),
    "call_id",
    {
        "call_id": _key("text"),
        "job_id": {"data_type": "text"},
        "language": {"data_type": "text"},
        "duration_seconds": {"data_type": "bigint"},
        "summary": {"data_type": "text"},
        "sentiment_overall": {"data_type": "double"},
        HARD_DELETE: _HARD_DELETE_COLUMN,
    },
    arrow=True,
)
TRANSCRIPT_SEGMENTS = Table(
    "transcript_segments",
    ("call_id", "segment_index"),
    "call_id",
    {
        "call_id": _key("text"),
        "segment_index": _key("bigint"),
        "speaker": {"data_type": "text"},
        "text": {"data_type": "text"},
        "start_time": {"data_type": "double"},
        "end_time": {"data_type": "double"},
        "confidence": {"data_type": "double"},
        HARD_DELETE: _HARD_DELETE_COLUMN,
    },
    arrow=True,
)
SPEAKER_SENTIMENT = Table(
    "speaker_sentiment",
    ("call_id", "speaker"),
    "call_id",
    {
        "call_id": _key("text"),
        "speaker": _key("text"),
        "sentiment": {"data_type": "double"},
        HARD_DELETE: _HARD_DELETE_COLUMN,
    },
    arrow=True,
)
# calls the API no longer has; no personal data, only the id and when it was found gone
DELETED_CALLS = Table(
    "deleted_calls",
    ("call_id",),
    "call_id",
    {
        "call_id": _key("text"),
        "detected_at": {"data_type": "timestamp", "timezone": True},
    },
)
# archived recordings (the `recordings` command); defined here so the table always exists
RECORDINGS = Table(
    "recordings",
    ("call_id",),
    "call_id",
    {
        "call_id": _key("text"),
        "uri": {"data_type": "text"},
        "bytes": {"data_type": "bigint"},
        "sha256": {"data_type": "text"},
        "content_type": {"data_type": "text"},
        "downloaded_at": {"data_type": "timestamp", "timezone": True},
        HARD_DELETE: _HARD_DELETE_COLUMN,  # a file gone and not to be had again: no row
    },
)

TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        CALLS,
        TRANSCRIPTS,
        TRANSCRIPT_SEGMENTS,
        SPEAKER_SENTIMENT,
        DELETED_CALLS,
        RECORDINGS,
    )
}


def erased_rows(call_id: str, detected_at: Any) -> dict[str, list[Row]]:
    """The rows that remove an erased call from every table and record it in `deleted_calls`."""
    rows = {table.name: [table.tombstone(call_id)] for table in TABLES.values() if table.erasable}
    rows[DELETED_CALLS.name] = [{"call_id": call_id, "detected_at": detected_at}]
    return rows
