"""Dagster definitions: one asset per table, the SQL views downstream, a schedule, and the audit
as an asset check on `calls` (the `[dagster]` extra).

    dagster dev -m pipelines.dagster_defs
    dagster asset materialize --select '*' -m pipelines.dagster_defs

The assets run what `neuron-calls sync` runs (`runner.run_sync`): the locks, the private copy of
the DuckDB file published whole, the views, the run log. So a second run is refused while one
goes, and analysts reading the file see whole runs, under Dagster as under cron. For that reason
the assets are a `multi_asset` of our own rather than dagster-dlt's `@dlt_assets`, whose
`DagsterDltResource.run` is a bare `pipeline.run`, and which makes one asset per dlt resource
(`calls` loads two tables, `transcripts` three): here each table is an asset, named after it,
with dlt's resource that loads it in its metadata.

Where it loads comes from dlt's config as for the CLI: a DuckDB file, `neuron_calls.duckdb` in
the current folder unless `DESTINATION__DUCKDB__CREDENTIALS` names one, or a dlt destination set
on the `warehouse` resource (credentials the dlt way, e.g. DESTINATION__POSTGRES__CREDENTIALS).
The source's settings are the CLI's: SOURCES__NEURON__*.
"""

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import dlt

from . import runner
from .neuron import RESOURCE_TABLES, neuron_settings
from .neuron.tables import TABLES
from .targets import DuckDBTarget
from .views import VIEW_NAMES, apply_views, view_files
from .warehouse import DATASET_NAME, DEFAULT_DUCKDB_PATH, Warehouse

GROUP = "neuron"
SCHEDULE = "*/15 * * * *"  # every 15 minutes, UTC
RESOURCE_OF = {table: name for name, tables in RESOURCE_TABLES.items() for table in tables}
TABLE_KEYS = {table: dg.AssetKey([DATASET_NAME, table]) for table in TABLES}
VIEW_KEYS = {view: dg.AssetKey([DATASET_NAME, view]) for view in VIEW_NAMES}
_REFERENCE = re.compile(r"\{schema\}\.(\w+)")


class NeuronWarehouse(dg.ConfigurableResource):
    """Where the assets load, and the days the audit check compares."""

    destination: str | None = None  # a dlt destination (postgres, ...); None: the DuckDB file
    duckdb_path: str | None = None  # None: DESTINATION__DUCKDB__CREDENTIALS, else the default
    pipelines_dir: str | None = None  # dlt's working folder (None: under ~/.dlt)
    audit_days: int | None = None  # days the check audits (None: SOURCES__NEURON__AUDIT_DAYS)
    audit_until: str | None = None  # the last UTC day the check audits (None: today)

    def options(self, resources: tuple[str, ...] | None = None) -> runner.SyncOptions:
        path = self.duckdb_path or dlt.config.get("destination.duckdb.credentials", str)
        return runner.SyncOptions(
            duckdb_path=Path(path or DEFAULT_DUCKDB_PATH),
            destination=self.destination,
            pipelines_dir=self.pipelines_dir,
            resources=resources,
        )

    def audit_window(self) -> tuple[dt.date, dt.date]:
        days = self.audit_days if self.audit_days is not None else neuron_settings().audit_days
        last = dt.date.fromisoformat(self.audit_until) if self.audit_until else _today()
        return last - dt.timedelta(days=max(days, 1) - 1), last


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _table_spec(name: str) -> dg.AssetSpec:
    resource = RESOURCE_OF[name]
    columns = [
        dg.TableColumn(column, str(hints.get("data_type")))
        for column, hints in TABLES[name].columns.items()
        if not column.startswith("_")
    ]
    return dg.AssetSpec(
        TABLE_KEYS[name],
        group_name=GROUP,
        kinds={"dlt", "duckdb"},
        description=f"`{DATASET_NAME}.{name}`, loaded by the dlt resource `{resource}`",
        metadata={
            "dlt_resource": resource,
            "dagster/table_name": f"{DATASET_NAME}.{name}",
            "dagster/column_schema": dg.TableSchema(columns=columns),
        },
    )


def _view_spec(name: str, sql: str) -> dg.AssetSpec:
    refs = sorted(set(_REFERENCE.findall(sql)) - {name})
    return dg.AssetSpec(
        VIEW_KEYS[name],
        group_name=GROUP,
        kinds={"sql", "duckdb"},
        description=f"the view `{DATASET_NAME}.{name}` (sql/{name}.sql)",
        deps=[TABLE_KEYS.get(ref) or VIEW_KEYS[ref] for ref in refs],
        metadata={"dagster/table_name": f"{DATASET_NAME}.{name}"},
    )


SPECS = [_table_spec(name) for name in TABLES] + [
    _view_spec(name, sql) for name, sql in sorted(view_files().items())
]


def resources_for(tables: set[str]) -> tuple[str, ...] | None:
    """The source's resources that load `tables` (transcripts and recordings come with their
    calls: the list's cursor and the pending set are shared); None: all of them."""
    wanted = {"calls"} | {RESOURCE_OF[table] for table in tables}
    return None if wanted == set(RESOURCE_TABLES) else tuple(sorted(wanted))


@dg.multi_asset(specs=SPECS, can_subset=True, name="neuron_calls", pool="neuron_calls")
def neuron_calls(
    context: dg.AssetExecutionContext, warehouse: NeuronWarehouse
) -> Iterator[dg.MaterializeResult]:
    """One sync (the tables selected, and the views), or the views alone."""
    selected = context.selected_asset_keys
    tables = {name for name, key in TABLE_KEYS.items() if key in selected}
    options = warehouse.options(resources_for(tables))
    metadata: dict[str, Any] = {}
    if tables:
        result = runner.run_sync(options)
        if not result.loaded:
            raise dg.Failure(description=result.error, metadata={"exit_code": result.exit_code})
        if result.exit_code == runner.EXIT_PARTIAL:
            context.log.warning("%d calls deferred to the next run", len(result.report.deferred))
        metadata = _run_metadata(result)
    else:
        _views_only(options)
    counts = _row_counts(options, [name for name in TABLES if name in tables])
    for name in sorted(tables):
        table: dict[str, Any] = {
            "dagster/row_count": counts[name],
            "dlt_resource": RESOURCE_OF[name],
        }
        yield dg.MaterializeResult(asset_key=TABLE_KEYS[name], metadata=table | metadata)
    for key in VIEW_KEYS.values():
        if key in selected:
            yield dg.MaterializeResult(asset_key=key)


def _run_metadata(result: runner.SyncResult) -> dict[str, Any]:
    report, stats = result.report, result.report.stats
    return {
        "calls_listed": report.listed,
        "calls_inserted": result.inserted,
        "calls_updated": result.updated,
        "transcripts_loaded": report.transcripts,
        "pending": result.pending,
        "deferred": len(report.deferred),
        "http_requests": stats.requests,
        "seconds": round(result.seconds, 2),
    }


def _views_only(options: runner.SyncOptions) -> None:
    """The views (re)created through the same lock, private copy and publish as a sync."""
    target = runner.target_of(options)
    with runner.locked(options, target, loads=False) as pipeline, target.stage():
        with Warehouse.of(pipeline) as wh:
            apply_views(wh)
        target.publish()


def _row_counts(options: runner.SyncOptions, tables: list[str]) -> dict[str, int]:
    if not tables:
        return {}
    target = runner.target_of(options)
    if isinstance(target, DuckDBTarget):  # the published file, read-only
        with Warehouse.duckdb_file(target.path) as wh:
            return {name: wh.count(name) for name in tables}
    with runner.locked(options, target, loads=False) as pipeline, Warehouse.of(pipeline) as wh:
        return {name: wh.count(name) for name in tables}


@dg.asset_check(
    asset=TABLE_KEYS["calls"],
    name="audit",
    description="the API and the warehouse agree, per UTC day, on the last audit_days days "
    "(neuron-calls audit): calls missing, changed or erased upstream fail it",
)
def calls_audit(warehouse: NeuronWarehouse) -> dg.AssetCheckResult:
    first, last = warehouse.audit_window()
    result = runner.run_audit(warehouse.options(), first, last, transcripts=False)
    if result.exit_code not in (runner.EXIT_OK, runner.EXIT_DRIFT):
        raise dg.Failure(description=result.error, metadata={"exit_code": result.exit_code})
    audit = result.report.audit
    return dg.AssetCheckResult(
        passed=result.exit_code == runner.EXIT_OK,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "days": f"{first} .. {last}",
            "days_differing": audit.days_differing,
            "missing": audit.found("missing"),
            "changed": audit.found("changed"),
            "erased": audit.found("erased"),
        },
    )


neuron_job = dg.define_asset_job("neuron_sync", selection=dg.AssetSelection.groups(GROUP))
neuron_schedule = dg.ScheduleDefinition(
    name="neuron_sync_every_15_minutes",
    job=neuron_job,
    cron_schedule=SCHEDULE,
    execution_timezone="UTC",
)

defs = dg.Definitions(
    assets=[neuron_calls],
    asset_checks=[calls_audit],
    jobs=[neuron_job],
    schedules=[neuron_schedule],
    resources={"warehouse": NeuronWarehouse()},
)
