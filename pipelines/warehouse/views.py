"""The SQL views of the dataset: one `.sql` file per view in `pipelines/warehouse/sql/`.

Each file holds one `create or replace view {schema}.<name> as ...` statement in DuckDB's
dialect; `{schema}` becomes the dataset's qualified schema and `{timezone}` the business time
zone (the TIMEZONE setting) as a quoted literal, so the stored hashes change with it. The views
are applied in the order their references to each other demand (a topological sort, no
hand-kept list), transpiled to the destination's dialect, and re-created only when their SQL
changed (a hash per view in `_neuron_views`), so an analyst's open transaction on a view does
not stall a run. Nothing is ever dropped with `cascade`: a view Postgres cannot replace in place
is rebuilt together with the views built on it, others' included (docs/warehouses.md).
"""

from __future__ import annotations

import graphlib
import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pipelines.neuron.dates import business_zone
from pipelines.runner.outcomes import EXIT_CONFIG, SyncAborted, first_line

from . import dependants
from .access import Warehouse, literal

log = logging.getLogger(__name__)

VIEWS_TABLE = "_neuron_views"
_REFERENCE = re.compile(r"\{schema\}\.(\w+)")


def references(sql: str) -> set[str]:
    """The tables and views a view's SQL reads (`{schema}.<name>`)."""
    return set(_REFERENCE.findall(sql))


def view_files(folder: Path | None = None) -> dict[str, str]:
    """View name -> its SQL (with the `{schema}` placeholder), one per `*.sql` file of `folder`
    (default: `sql/` here, shipped in the package)."""
    files = folder.iterdir() if folder else resources.files("pipelines.warehouse.sql").iterdir()
    return {
        entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8")
        for entry in files
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


def view_sql(
    schema: str = '"neuron"', timezone: str = "UTC", folder: Path | None = None
) -> list[tuple[str, str]]:
    """The `(view name, create statement)` pairs for `schema` (already quoted), in order."""
    files = view_files(folder)
    return [(name, render(files[name], schema, timezone)) for name in view_order(files)]


def _digest(statements: list[str]) -> str:
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()[:16]


def apply_views(
    wh: Warehouse,
    folder: Path | None = None,
    grants: Sequence[tuple[str, str]] = (),
    *,
    timezone: str | None = None,
) -> list[str]:
    """Create the views that are missing or whose SQL changed; returns the ones (re)created.
    `timezone`: the business zone (None: the TIMEZONE setting).

    All in one transaction (Postgres, DuckDB): readers see the old views or the new ones. A view
    Postgres cannot replace in place (its columns changed) is dropped and created again, and with
    it every view built on it, ours and others' (`dependants`): theirs are built again as they
    were, with their owners and grants, and so are the grants on ours. When theirs cannot be
    built on the new view, nothing changes and the run is refused, naming them. `grants` are
    given again at the end (those of the tables a full refresh re-created).
    """
    with wh.transaction():
        wh.execute(f"create schema if not exists {wh.schema()}")
        relations = wh.relations()
        stored = _stored_digests(wh, relations)
        wanted = list(_wanted(wh, folder, timezone))
        rebuilt = _Rebuilt(wh, [name for name, _, _ in wanted])
        created: list[str] = []
        # a view dropped because it was built on one rebuilt is created again in a next pass
        while todo := [
            (name, statements, digest)
            for name, statements, digest in wanted
            if relations.get(name) != "VIEW" or stored.get(name) != digest
        ]:
            for name, statements, digest in todo:
                if not _replaced(wh, statements):
                    for dropped in rebuilt.drop(name):
                        relations.pop(dropped, None)
                    wh.execute(*statements)
                relations[name], stored[name] = "VIEW", digest
                _store_digest(wh, name, digest)
                created.append(name)
        rebuilt.restore()
        for name, grant in grants:
            if name in relations:
                wh.execute(grant)
    if created:
        log.info("views created or replaced: %s", ", ".join(dict.fromkeys(created)))
    return list(dict.fromkeys(created))


_SAVEPOINT = "neuron_view"


def _replaced(wh: Warehouse, statements: list[str]) -> bool:
    """`create or replace view`; False when Postgres refuses it (e.g. a column inserted, renamed
    or retyped) and nothing changed. Other warehouses replace any view in place."""
    if wh.dialect != "postgres":
        wh.execute(*statements)
        return True
    wh.execute(f"savepoint {_SAVEPOINT}")
    try:
        wh.execute(*statements)
    except Exception:  # noqa: BLE001 - the same statement runs again after the drop: its error
        log.debug("replacing a view in place failed", exc_info=True)
        wh.execute(f"rollback to savepoint {_SAVEPOINT}")
        return False
    wh.execute(f"release savepoint {_SAVEPOINT}")
    return True


class _Rebuilt:
    """The views dropped to rebuild ours (Postgres), and what builds them again."""

    def __init__(self, wh: Warehouse, ours: list[str]) -> None:
        self.wh, self.ours = wh, set(ours)
        self.schema = wh.schema_name()
        self.rebuilt: list[str] = []  # ours, rebuilt
        self.theirs: list[dependants.Relation] = []
        self.grants: list[str] = []  # on ours

    def is_ours(self, relation: dependants.Relation) -> bool:
        return relation.schema == self.schema and relation.name in self.ours

    def drop(self, name: str) -> list[str]:
        """Drop our view `name` and every view built on it (no cascade); the names of ours."""
        tree = dependants.built_on(self.wh, self.schema, [name])
        self.rebuilt.append(name)
        self.theirs += [rel for rel in tree if not self.is_ours(rel)]
        self.grants += [grant for rel in tree if self.is_ours(rel) for grant in rel.grants]
        try:
            for relation in reversed(tree):
                self.wh.execute(relation.drop())
        except Exception as exc:
            raise self._refused(exc) from exc
        return [rel.name for rel in tree if self.is_ours(rel)]

    def restore(self) -> None:
        """Theirs built again as they were, in order, then the grants on ours."""
        done = {rel.oid for rel in self.theirs}
        order = graphlib.TopologicalSorter(
            {rel.oid: rel.reads & done for rel in self.theirs}
        ).static_order()
        by_oid = {rel.oid: rel for rel in self.theirs}
        for oid in order:
            try:
                self.wh.execute(*by_oid[oid].create())
            except Exception as exc:
                raise self._refused(exc, by_oid[oid]) from exc
        self.wh.execute(*self.grants)

    def _refused(self, exc: Exception, failed: dependants.Relation | None = None) -> Exception:
        if not self.theirs:
            return exc
        which = f"{failed.label}: " if failed else ""
        rebuilt = ", ".join(f"{self.schema}.{name}" for name in self.rebuilt)
        return SyncAborted(
            f"views that are not ours cannot be rebuilt on our changed {rebuilt}; nothing was "
            f"changed: drop or change {dependants.names(self.theirs)}, sync again, then create "
            f"them again ({which}{first_line(exc)})",
            EXIT_CONFIG,
        )


def outdated_views(wh: Warehouse, timezone: str | None = None) -> list[str]:
    """The views `apply_views` would (re)create: missing, or their SQL changed. Reads only."""
    relations = wh.relations()
    if VIEWS_TABLE not in relations:
        return list(VIEW_NAMES)
    stored = _read_digests(wh)
    return [
        name
        for name, _, digest in _wanted(wh, timezone=timezone)
        if relations.get(name) != "VIEW" or stored.get(name) != digest
    ]


def _wanted(
    wh: Warehouse, folder: Path | None = None, timezone: str | None = None
) -> Iterator[tuple[str, list[str], str]]:
    """Each view's name, its statements for this warehouse and zone, and their digest (the
    zone is in the statements: a new zone re-creates the views), in order."""
    zone = business_zone() if timezone is None else timezone
    for name, sql in view_sql(wh.schema(), zone, folder):
        statements = wh.transpile(sql)
        yield name, statements, _digest(statements)


def drop_views(wh: Warehouse, folder: Path | None = None) -> list[tuple[str, str]]:
    """Before a full refresh drops our tables: our views dropped (no cascade; their hashes
    forgotten); returns the grants on our tables and views, to give again once they are back.

    Refused (exit 2), before anything is dropped, when views that are not ours are built on our
    tables or views (Postgres keeps track; DuckDB's views read tables by name and survive)."""
    order = view_order(view_files(folder))
    relations = wh.relations()
    saved: list[tuple[str, str]] = []
    if wh.dialect == "postgres":
        schema = wh.schema_name()
        roots = [
            name
            for name, kind in relations.items()
            if (kind == "VIEW" and name in order) or (kind != "VIEW" and not name.startswith("_"))
        ]
        tree = dependants.built_on(wh, schema, roots)
        theirs = [rel for rel in tree if rel.schema != schema or rel.name not in roots]
        if theirs:
            raise SyncAborted(
                f"--full-refresh drops and re-creates the tables and views of {schema}, and views "
                "that are not ours depend on them; nothing was changed: drop "
                f"{dependants.names(theirs)}, run the full refresh, then create them again (or "
                "sync without --full-refresh)",
                EXIT_CONFIG,
            )
        saved = dependants.grants(tree)
    with wh.transaction():
        for name in reversed(order):
            if relations.get(name) == "VIEW":
                wh.execute(*wh.transpile(f"drop view if exists {wh.table(name)}"))
        if VIEWS_TABLE in relations:
            wh.execute(f"delete from {wh.table(VIEWS_TABLE)}")
    return saved


def restore_views(
    warehouse: Callable[[], Warehouse], options: Any, grants: list[tuple[str, str]]
) -> None:
    """After a failed load our views were dropped for: the views (their SQL from
    `options.sql_folder`) and their grants back on the tables as they are, old or re-created
    (best effort: the run's own failure is the one reported)."""
    try:
        with warehouse() as wh:
            apply_views(
                wh, options.sql_folder, grants, timezone=options.source_args.get("timezone")
            )
    except Exception as exc:  # noqa: BLE001
        log.warning("could not create the views again after the failed load: %s", first_line(exc))


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
