"""Dagster definitions over the runner: table assets, view assets, a schedule, the audit check.

The source's tables are dagster-dlt assets, one per dlt resource, with the SQL views downstream,
a schedule, and the audit as an asset check on `calls` (the `[dagster]` extra).

    dagster dev -m pipelines.dagster_defs
    dagster asset materialize --select '*' -m pipelines.dagster_defs

The table assets are dagster-dlt's `@dlt_assets` over the source's resources (`calls`,
`transcripts`, `recordings`, each named after its first table, with the tables it loads in its
metadata). Their body does not call dagster-dlt's `DagsterDltResource.run`, a bare
`pipeline.run(source)`: it runs what `neuron-calls sync` runs (`runner.run_sync`), with the
resources selected. So the locks hold (a second run is refused while one goes), runs load in
checkpoints, and analysts reading the DuckDB file see whole checkpoints, under Dagster as under
cron; the views and the run log come with every run.

Where it loads comes from dlt's config as for the CLI: a DuckDB file, `neuron_calls.duckdb` in
the current folder unless `DESTINATION__DUCKDB__CREDENTIALS` names one, or a dlt destination set
on the `warehouse` resource (credentials the dlt way, e.g. DESTINATION__POSTGRES__CREDENTIALS).
The source's settings are the CLI's: SOURCES__NEURON__*.
"""

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from pipelines.neuron import RESOURCE_TABLES, neuron_settings, source_shape
from pipelines.neuron.resources import RESOURCE_OF
from pipelines.neuron.tables import TABLES
from pipelines.runner import sync as runner
from pipelines.runner.staged import staged_write
from pipelines.warehouse.access import DATASET_NAME, DEFAULT_DUCKDB_PATH, PIPELINE_NAME
from pipelines.warehouse.reading import reading
from pipelines.warehouse.targets import DuckDBTarget
from pipelines.warehouse.views import (
    VIEW_NAMES,
    apply_views,
    outdated_views,
    references,
    view_files,
)

GROUP = "neuron"
SCHEDULE = "*/15 * * * *"  # every 15 minutes, UTC
RESOURCE_KEYS = {name: dg.AssetKey([DATASET_NAME, name]) for name in RESOURCE_TABLES}
VIEW_KEYS = {view: dg.AssetKey([DATASET_NAME, view]) for view in VIEW_NAMES}


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


class NeuronTranslator(DagsterDltTranslator):
    """dagster-dlt's spec of a resource, keyed `neuron/<resource>` (its first table) in the
    `neuron` group, with the tables it loads and the first one's columns. `transcripts` and
    `recordings` are downstream of `calls`: transcripts load with their calls, recordings are
    those of calls loaded."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        name = data.resource.name
        tables = RESOURCE_TABLES[name]
        columns = [
            dg.TableColumn(column, str(hints.get("data_type")))
            for column, hints in TABLES[tables[0]].columns.items()
            if not column.startswith("_")
        ]
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(
                key=RESOURCE_KEYS[name],
                group_name=GROUP,
                deps=[] if name == "calls" else [RESOURCE_KEYS["calls"]],
                description=f"the dlt resource `{name}`: the tables "
                + ", ".join(f"`{DATASET_NAME}.{table}`" for table in tables),
            )
            .merge_attributes(
                metadata={
                    "dlt_tables": ", ".join(tables),
                    "dagster/table_name": f"{DATASET_NAME}.{tables[0]}",
                    "dagster/column_schema": dg.TableSchema(columns=columns),
                }
            )
        )


def _specs_pipeline() -> Any:
    """The pipeline dagster-dlt reads the specs' names from; never run (the runs are the
    runner's). dlt makes a working folder for it: a throwaway one, removed at once, so the
    runner's folder is never touched outside its lock."""
    with tempfile.TemporaryDirectory(prefix="neuron_calls_specs_") as folder:
        return dlt.pipeline(
            pipeline_name=PIPELINE_NAME, pipelines_dir=folder, dataset_name=DATASET_NAME
        )


def resources_for(selected: set[str]) -> tuple[str, ...] | None:
    """The source's resources a selection runs (transcripts and recordings come with their
    calls: the list's cursor and the pending set are shared); None: all of them."""
    wanted = {"calls"} | selected
    return None if wanted == set(RESOURCE_TABLES) else tuple(sorted(wanted))


@dlt_assets(
    dlt_source=source_shape(),
    dlt_pipeline=_specs_pipeline(),
    name="neuron_calls",
    dagster_dlt_translator=NeuronTranslator(),
    pool="neuron_calls",
)
def neuron_calls(
    context: dg.AssetExecutionContext, warehouse: NeuronWarehouse
) -> Iterator[dg.MaterializeResult]:
    """One sync of the resources selected (and the calls they come with)."""
    selected = {name for name, key in RESOURCE_KEYS.items() if key in context.selected_asset_keys}
    options = warehouse.options(resources_for(selected))
    result = runner.run_sync(options)
    if not result.loaded:
        raise dg.Failure(description=result.error, metadata={"exit_code": result.exit_code})
    if result.exit_code == runner.EXIT_PARTIAL:
        context.log.warning("%d calls deferred to the next run", len(result.report.deferred))
    tables = [table for name in sorted(selected) for table in RESOURCE_TABLES[name]]
    with reading(runner.target_of(options)) as wh:
        counts = {table: wh.count(table) for table in tables}
    run = _run_metadata(result)
    for name in sorted(selected):
        rows = {f"rows_{table}": counts[table] for table in RESOURCE_TABLES[name]}
        metadata = {"dagster/row_count": counts[RESOURCE_TABLES[name][0]], **rows}
        yield dg.MaterializeResult(asset_key=RESOURCE_KEYS[name], metadata=metadata | run)


def _run_metadata(result: runner.SyncResult) -> dict[str, Any]:
    report, stats = result.report, result.report.stats
    return {
        "calls_listed": report.listed,
        "calls_inserted": result.inserted,
        "calls_updated": result.updated,
        "transcripts_loaded": report.transcripts,
        "pending": result.pending,
        "deferred": len(report.deferred),
        "checkpoints": result.checkpoints,
        "http_requests": stats.requests,
        "seconds": round(result.seconds, 2),
    }


def _view_spec(name: str, sql: str) -> dg.AssetSpec:
    refs = sorted(references(sql) - {name})
    deps = {RESOURCE_KEYS[RESOURCE_OF[ref]] if ref in TABLES else VIEW_KEYS[ref] for ref in refs}
    return dg.AssetSpec(
        VIEW_KEYS[name],
        group_name=GROUP,
        kinds={"sql"},
        description=f"the view `{DATASET_NAME}.{name}` (sql/{name}.sql)",
        deps=sorted(deps, key=str),
        metadata={"dagster/table_name": f"{DATASET_NAME}.{name}", "reads": ", ".join(refs)},
    )


@dg.multi_asset(
    specs=[_view_spec(name, sql) for name, sql in sorted(view_files().items())],
    can_subset=True,
    name="neuron_views",
    pool="neuron_calls",
)
def neuron_views(
    context: dg.AssetExecutionContext, warehouse: NeuronWarehouse
) -> Iterator[dg.MaterializeResult]:
    """The views: every sync creates or refreshes them; this (re)creates them only when one is
    missing or its SQL changed, through the same lock, private copy and publish as a sync."""
    options = warehouse.options()
    outdated = _outdated(options)
    if outdated:
        context.log.info("views to (re)create: %s", ", ".join(outdated))
        _views_only(options)
    for name, key in VIEW_KEYS.items():
        if key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key, metadata={"recreated": name in outdated})


def _views_only(options: runner.SyncOptions) -> None:
    target = runner.target_of(options)
    with (
        runner.locked(options, target, loads=False) as pipeline,
        staged_write(target, pipeline) as write,
        write.warehouse() as wh,
    ):
        apply_views(wh)


def _outdated(options: runner.SyncOptions) -> list[str]:
    target = runner.target_of(options)
    if isinstance(target, DuckDBTarget) and not target.path.exists():
        return list(VIEW_NAMES)
    with reading(target) as wh:
        return outdated_views(wh)


@dg.asset_check(
    asset=RESOURCE_KEYS["calls"],
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
    assets=[neuron_calls, neuron_views],
    asset_checks=[calls_audit],
    jobs=[neuron_job],
    schedules=[neuron_schedule],
    resources={"warehouse": NeuronWarehouse()},
)
