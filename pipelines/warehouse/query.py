"""`sql`'s query made ready for a warehouse: DuckDB's dialect in, one read-only statement out.

The query is parsed by DuckDB's own parser first (so a syntax error reads as DuckDB words it,
one line), checked to be one statement that reads, then transpiled with sqlglot to the
destination's dialect, as the views are. What sqlglot leaves to the destination is done here:
`group by all` becomes the query's own grouping columns, and `describe <table>` and
`show tables` become questions to `information_schema`. `--raw` sends the destination's own
SQL untranslated (its database then enforces read-only: a DuckDB file opened read-only, a
Postgres session in read-only transactions).
"""

from __future__ import annotations

import duckdb
import sqlglot
from sqlglot import exp

from .access import literal

READ_ONLY_HINT = (
    "`sql` only reads (select, with, describe, show); the warehouse is written by `sync`"
)
CATALOG_WORDS = ("describe", "desc", "show", "summarize")
# dialects whose sessions `sql` opens read-only, so an unparsed --raw query cannot write
ENFORCED_READ_ONLY = ("duckdb", "postgres")


class QueryRefused(ValueError):
    """A query `sql` will not send; the message is the one line the user reads."""


def prepare(query: str, dialect: str, dataset: str, *, raw: bool = False) -> str:
    """The statement to send to a `dialect` warehouse whose dataset (schema) is `dataset`."""
    query = query.strip().rstrip(";").strip()
    if not query:
        raise QueryRefused('no query given: e.g. "select * from neuron.campaign_funnel"')
    if raw:
        return _raw(query, dialect)
    _check_duckdb_syntax(query)
    if dialect == "duckdb":
        return query
    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except sqlglot.errors.SqlglotError:
        raise QueryRefused(_untranslatable(dialect)) from None
    if isinstance(tree, exp.Describe | exp.Show) or _keyword(query) in CATALOG_WORDS:
        return _catalog_question(tree, dialect, dataset)
    if not isinstance(tree, exp.Query):
        raise QueryRefused(f"`{_keyword(query)}` is not offered on {dialect}: {READ_ONLY_HINT}")
    try:
        return _expand_group_by_all(tree).sql(dialect=dialect, unsupported_level="raise")
    except sqlglot.errors.SqlglotError:
        raise QueryRefused(_untranslatable(dialect)) from None


def _check_duckdb_syntax(query: str) -> None:
    """One statement that reads, as DuckDB's parser sees it; its own message on a syntax error."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryRefused(one_line(exc)) from None
    if len(statements) != 1:
        raise QueryRefused("give exactly one statement")
    kind = statements[0].type
    if kind not in (
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
    ):
        raise QueryRefused(READ_ONLY_HINT)


def _raw(query: str, dialect: str) -> str:
    """The destination's own SQL, as given: refused only when it is sure to write, or when
    neither sqlglot can read it nor the database enforces read-only."""
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError:
        if dialect in ENFORCED_READ_ONLY:
            return query  # the database parses it, and refuses any write
        raise QueryRefused(
            f"cannot check that this {dialect} query only reads; write it in DuckDB's SQL "
            "(without --raw)"
        ) from None
    if len(statements) != 1:
        raise QueryRefused("give exactly one statement")
    if not isinstance(
        statements[0], exp.Query | exp.Describe | exp.Show | exp.Pragma | exp.Command
    ):
        raise QueryRefused(READ_ONLY_HINT)
    return query


def _untranslatable(dialect: str) -> str:
    return (
        f"this query cannot be translated to {dialect}'s SQL; write it in {dialect}'s own SQL "
        "and add --raw"
    )


def _keyword(query: str) -> str:
    return query.split(None, 1)[0].lower()


def _expand_group_by_all(tree: exp.Expression) -> exp.Expression:
    """DuckDB's `group by all` as the select list's columns without an aggregate (elsewhere
    `group by all` means the default set quantifier, not that)."""
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None or not group.args.get("all"):
            continue
        keys = [
            (e.this if isinstance(e, exp.Alias) else e).copy()
            for e in select.expressions
            if not e.find(exp.AggFunc) and not e.find(exp.Window) and not isinstance(e, exp.Star)
        ]
        select.set("group", exp.Group(expressions=keys) if keys else None)
    return tree


def _catalog_question(tree: exp.Expression, dialect: str, dataset: str) -> str:
    """`describe [schema.]table` and `show [all] tables` as information_schema queries."""
    if isinstance(tree, exp.Describe) and isinstance(tree.this, exp.Table):
        table = tree.this
        schema = table.db or dataset
        sql = (
            "select column_name, data_type, is_nullable from information_schema.columns "
            f"where table_schema = {literal(schema)} and table_name = {literal(table.name)} "
            "order by ordinal_position"
        )
        return sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
    if isinstance(tree, exp.Show) and str(tree.this).upper() in ("TABLES", "ALL TABLES"):
        sql = (
            "select table_schema as schema, table_name as name, table_type as type "
            "from information_schema.tables "
            f"where table_schema = {literal(dataset)} order by table_name"
        )
        return sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
    raise QueryRefused(
        f"on {dialect}, `sql` offers `describe <table>` and `show tables`; for anything else "
        "query information_schema, or send the destination's own SQL with --raw"
    )


def one_line(exc: BaseException) -> str:
    """A database's error as one line: `Parser Error: syntax error at or near "frm"`."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
