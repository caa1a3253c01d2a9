"""The SQL views of the `neuron` dataset: one `.sql` file per view in `pipelines/sql`.

Each file holds one `create or replace view {schema}.<name> as ...` statement; the
`{schema}` placeholder is replaced by the dataset schema when the views are applied.
"""

from __future__ import annotations

import re
from importlib import resources

import duckdb

from .neuron import TABLES

# The order the views are applied in: staging first, then the reports built on it.
VIEW_NAMES: list[str] = [
    "stg_calls",
    "disposition_daily",
    "campaign_funnel",
    "sentiment_by_disposition",
    "talk_time",
    "callback_queue",
    "dnd_contacts",
]

# The contract's tables and column types, from the source's own table hints. dlt creates the
# real tables, but only once a row arrives; the views need them all.
_DUCKDB_TYPES = {
    "text": "varchar",
    "bigint": "bigint",
    "double": "double",
    "bool": "boolean",
    "timestamp": "timestamptz",
}
CONTRACT_TABLES: dict[str, dict[str, str]] = {
    table: {name: _DUCKDB_TYPES[str(column["data_type"])] for name, column in columns.items()}
    for table, (_key, _merge_key, columns) in TABLES.items()
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quoted(schema: str) -> str:
    if not _IDENTIFIER.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use letters, digits and '_'")
    return f'"{schema}"'


def view_sql(schema: str = "neuron") -> list[tuple[str, str]]:
    """The `(view name, create statement)` pairs for `schema`, in `VIEW_NAMES` order."""
    folder = resources.files("pipelines.sql")
    target = _quoted(schema)
    return [
        (name, (folder / f"{name}.sql").read_text(encoding="utf-8").replace("{schema}", target))
        for name in VIEW_NAMES
    ]


def ensure_contract_tables(conn: duckdb.DuckDBPyConnection, schema: str = "neuron") -> None:
    """Create the schema, any missing contract table and any missing contract column.

    Existing tables and columns are left as they are (dlt's extra columns included).
    """
    target = _quoted(schema)
    conn.execute(f"create schema if not exists {target}")
    for table, columns in CONTRACT_TABLES.items():
        column_defs = ", ".join(f'"{name}" {type_}' for name, type_ in columns.items())
        conn.execute(f'create table if not exists {target}."{table}" ({column_defs})')
        for name, type_ in columns.items():
            conn.execute(
                f'alter table {target}."{table}" add column if not exists "{name}" {type_}'
            )


def apply_views(conn: duckdb.DuckDBPyConnection, schema: str = "neuron") -> None:
    """Create or replace every view of `schema`, after `ensure_contract_tables` (idempotent)."""
    ensure_contract_tables(conn, schema)
    for _name, sql in view_sql(schema):
        conn.execute(sql)
