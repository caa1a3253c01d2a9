"""The SQL views of the dataset: one `.sql` file per view in `pipelines/sql/`.

Each file holds one `create or replace view {schema}.<name> as ...` statement in DuckDB's
dialect; `{schema}` becomes the dataset's qualified schema and `{timezone}` the business time
zone (the TIMEZONE setting) as a quoted literal, so the stored hashes change with it. The views
are applied in the order their references to each other demand (a topological sort, no
hand-kept list), transpiled to the destination's dialect, and re-created only when their SQL
changed (a hash per view in `_neuron_views`), so an analyst's open transaction on a view does
not stall a run.
"""

from __future__ import annotations

import graphlib
import hashlib
import logging
import re
from collections.abc import Iterator
from importlib import resources

from .neuron.dates import business_zone
from .warehouse import Warehouse, literal

log = logging.getLogger(__name__)

VIEWS_TABLE = "_neuron_views"
_REFERENCE = re.compile(r"\{schema\}\.(\w+)")


def references(sql: str) -> set[str]:
    """The tables and views a view's SQL reads (`{schema}.<name>`)."""
    return set(_REFERENCE.findall(sql))


def view_files() -> dict[str, str]:
    """View name -> its SQL (with the `{schema}` placeholder), one per `sql/*.sql` file here."""
    folder = resources.files("pipelines.sql")
    return {
        entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    }


def view_order(files: dict[str, str]) -> list[str]:
    """Every view after the views it selects from (ties by name, so the order is stable)."""
    graph = graphlib.TopologicalSorter(
        {
            name: {ref for ref in references(sql) if ref in files and ref != name}
            for name, sql in files.items()
        }
    )
    graph.prepare()
    order: list[str] = []
    while graph.is_active():
        ready = sorted(graph.get_ready())
        order.extend(ready)
        graph.done(*ready)
    return order


VIEW_NAMES: list[str] = view_order(view_files())
# what analysts query: every view but the staging ones (`stg_*`), which the others read
REPORT_VIEWS: list[str] = [name for name in VIEW_NAMES if not name.startswith("stg_")]


def render(sql: str, schema: str, timezone: str) -> str:
    """A view's (or the report's) SQL for `schema` (already quoted) in the zone `timezone`."""
    return sql.replace("{schema}", schema).replace("{timezone}", literal(timezone))


def view_sql(schema: str = '"neuron"', timezone: str = "UTC") -> list[tuple[str, str]]:
    """The `(view name, create statement)` pairs for `schema` (already quoted), in order."""
    files = view_files()
    return [(name, render(files[name], schema, timezone)) for name in view_order(files)]


def _digest(statements: list[str]) -> str:
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()[:16]


def apply_views(wh: Warehouse, timezone: str | None = None) -> list[str]:
    """Create the views that are missing or whose SQL changed; returns the ones (re)created.
    `timezone`: the business zone (None: the TIMEZONE setting)."""
    wh.execute(f"create schema if not exists {wh.schema()}")
    relations = wh.relations()
    stored = _stored_digests(wh, relations)
    created: list[str] = []
    for name, statements, digest in _wanted(wh, timezone):
        if relations.get(name) == "VIEW" and stored.get(name) == digest:
            continue
        try:
            wh.execute(*statements)
        except Exception:  # noqa: BLE001 - e.g. Postgres cannot change a view's columns in place
            log.debug("replacing view %s failed; dropping and creating it", name, exc_info=True)
            wh.execute(*wh.transpile(f"drop view if exists {wh.table(name)} cascade"))
            wh.execute(*statements)
            relations = wh.relations()  # a cascade may have dropped views that depend on it
        relations[name] = "VIEW"
        _store_digest(wh, name, digest)
        created.append(name)
    if created:
        log.info("views created or replaced: %s", ", ".join(created))
    return created


def outdated_views(wh: Warehouse, timezone: str | None = None) -> list[str]:
    """The views `apply_views` would (re)create: missing, or their SQL changed. Reads only."""
    relations = wh.relations()
    if VIEWS_TABLE not in relations:
        return list(VIEW_NAMES)
    stored = _read_digests(wh)
    return [
        name
        for name, _, digest in _wanted(wh, timezone)
        if relations.get(name) != "VIEW" or stored.get(name) != digest
    ]


def _wanted(wh: Warehouse, timezone: str | None) -> Iterator[tuple[str, list[str], str]]:
    """Each view's name, its statements for this warehouse and zone, and their digest (the
    zone is in the statements: a new zone re-creates the views), in order."""
    zone = business_zone() if timezone is None else timezone
    for name, sql in view_sql(wh.schema(), zone):
        statements = wh.transpile(sql)
        yield name, statements, _digest(statements)


def drop_views(wh: Warehouse) -> None:
    """Drop our views (and forget their hashes), e.g. before a full refresh drops the tables."""
    relations = wh.relations()
    for name in reversed(VIEW_NAMES):
        if relations.get(name) == "VIEW":
            wh.execute(*wh.transpile(f"drop view if exists {wh.table(name)} cascade"))
    if VIEWS_TABLE in relations:
        wh.execute(f"delete from {wh.table(VIEWS_TABLE)}")


def _stored_digests(wh: Warehouse, relations: dict[str, str]) -> dict[str, str]:
    if VIEWS_TABLE not in relations:
        wh.execute(
            *wh.transpile(f"create table {wh.table(VIEWS_TABLE)} (name varchar, sha varchar)")
        )
        return {}
    return _read_digests(wh)


def _read_digests(wh: Warehouse) -> dict[str, str]:
    _, rows = wh.query(f"select name, sha from {wh.table(VIEWS_TABLE)}")
    return {str(name): str(sha) for name, sha in rows}


def _store_digest(wh: Warehouse, name: str, digest: str) -> None:
    table = wh.table(VIEWS_TABLE)
    wh.execute(
        f"delete from {table} where name = {literal(name)}",
        f"insert into {table} (name, sha) values ({literal(name)}, {literal(digest)})",
    )
