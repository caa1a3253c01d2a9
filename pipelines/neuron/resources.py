"""The source's resources: one per entity of the API, named after its first table, fed by one
engine that does the work once whatever is selected.

    fetched_calls  the engine, not a table (never selected itself): lists the calls from the
                   cursor, fans out to their details and transcripts on a bounded pool of
                   workers, settles the pending set and the fingerprints, audits
    calls          the list and the details -> calls, deleted_calls
    transcripts    a final call's transcript -> transcripts, transcript_segments, speaker_sentiment
    recordings     a call's recording, archived under RECORDINGS_URL -> recordings

The three tables' resources are dlt transformers of the engine: each batch the engine yields
holds the rows of every selected resource, routed to their tables with their merge hints, and
each transformer passes on its own. The engine reads dlt's selection when extraction starts
(`dlt.current.source().selected_resources`): it asks for transcripts only when `transcripts` is
selected, and archives recordings only when `recordings` is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import dlt
from dlt.extract import DltResource

from . import tables
from .audit import DayAudit
from .client import ConfigError
from .config import NeuronSettings, SyncRun
from .extract import extract_calls
from .model import SyncPlan
from .progress import plan_window
from .recordings import Archiver, RecordingStore

ENGINE = "fetched_calls"
# each resource and the tables it loads (the first one gives it its name)
RESOURCE_TABLES: dict[str, tuple[str, ...]] = {
    "calls": (tables.CALLS.name, tables.DELETED_CALLS.name),
    "transcripts": (
        tables.TRANSCRIPTS.name,
        tables.TRANSCRIPT_SEGMENTS.name,
        tables.SPEAKER_SENTIMENT.name,
    ),
    "recordings": (tables.RECORDINGS.name,),
}
RESOURCE_OF = {table: resource for resource, names in RESOURCE_TABLES.items() for table in names}

Routed = dict[str, list[Any]]  # resource name -> the items it passes on to dlt


def neuron_resources(
    config: NeuronSettings, run: SyncRun, store: RecordingStore | None = None
) -> list[DltResource]:
    """The engine and the three resources it feeds; nothing runs before extraction."""
    engine = dlt.resource(_engine(config, run, store), name=ENGINE, selected=False)
    return [engine, *(_passing_on(name, engine) for name in RESOURCE_TABLES)]


def _passing_on(name: str, engine: DltResource) -> DltResource:
    def rows(routed: Routed) -> Iterator[Any]:
        yield from routed.get(name, ())

    rows.__doc__ = f"The rows of {', '.join(RESOURCE_TABLES[name])}."
    return dlt.transformer(rows, data_from=engine, name=name)


def check_selection(selected: set[str], store: RecordingStore | None) -> bool:
    """ConfigError for a selection that cannot be loaded alone; True for the recordings run
    (`recordings` alone: the recordings of calls already loaded, nothing else)."""
    if ENGINE in selected:
        raise ConfigError(
            f"{ENGINE} is no table: select calls, transcripts or recordings "
            "(e.g. neuron_source().with_resources('calls'))"
        )
    if "transcripts" in selected and "calls" not in selected:
        raise ConfigError(
            "transcripts load with their calls (the list's cursor and the pending set are "
            "shared): select calls too, e.g. with_resources('calls', 'transcripts')"
        )
    recordings_only = selected == {"recordings"}
    if recordings_only and store is None:
        raise ConfigError(
            "no recordings storage: set SOURCES__NEURON__RECORDINGS_URL to a folder or an "
            "fsspec URL (s3://bucket/prefix)"
        )
    return recordings_only


def _engine(config: NeuronSettings, run: SyncRun, store: RecordingStore | None) -> Any:
    async def fetched_calls() -> AsyncIterator[Routed]:
        selected = set(dlt.current.source().selected_resources)
        plan = run.plan(config, recordings_only=check_selection(selected, store))
        plan.transcripts = plan.transcripts and "transcripts" in selected
        archiver = Archiver(store) if store is not None and "recordings" in selected else None
        hinted: set[str] = set()  # tables dlt has had the hints of, this run
        yield _materialized(selected, hinted)
        state = dlt.current.source_state()
        if run.on_progress is not None:  # a retry note redraws the progress line at once
            on_progress = run.on_progress
            run.report.stats.on_waiting = lambda: on_progress(run.report)
        async with config.client(run.transport, run.report.stats) as client:
            client.limiter.recall(state.get("rate_limit"))
            plan.api_now = await client.clock()  # its today ends the window and the audit
            plan_window(state, plan, config.start, run.report.checkpoints)
            audit = _audit(client, run, plan)
            batches = extract_calls(
                client,
                state,
                plan,
                run.report,
                config.max_concurrency,
                run.on_progress,
                audit,
                archiver,
            )
            async for batch in batches:
                yield route(batch.rows, selected, hinted)
            learned = client.limiter.memory(state.get("rate_limit"))
            if learned is not None:
                state["rate_limit"] = learned  # for the next run: ramp up or not

    return fetched_calls


def _audit(client: Any, run: SyncRun, plan: SyncPlan) -> DayAudit | None:
    if run.warehouse is None or not plan.audit_from or not plan.audit_to:
        return None
    return DayAudit(
        client,
        run.warehouse,
        plan.audit_from,
        plan.audit_to,
        plan.api_clock,
        run.report.audit,
        transcripts=plan.audit_transcripts,
        privacy=plan.privacy,
    )


def route(rows: dict[str, list[Any]], selected: set[str], hinted: set[str]) -> Routed:
    """A batch's rows by table -> dlt items by resource; the first rows of a table in a run
    carry its hints (`tables.Table.rows`). A table whose resource is not selected gets rows
    only when a call was erased upstream (tombstones: a call the API no longer has leaves every
    table, whatever the selection); they go through the first selected resource."""
    routed: Routed = {}
    for name, table_rows in rows.items():
        routed.setdefault(_carrier(name, selected), []).extend(
            tables.TABLES[name].rows(table_rows, hinted=name in hinted)
        )
        hinted.add(name)
    return routed


def _carrier(table: str, selected: set[str]) -> str:
    """The resource that passes `table`'s items on: its own, or the first one selected."""
    resource = RESOURCE_OF[table]
    return resource if resource in selected else next(n for n in RESOURCE_TABLES if n in selected)


def _materialized(selected: set[str], hinted: set[str]) -> Routed:
    """Every table the schema does not have yet (a first run, a full refresh, a table new in
    this version) made to exist, rows or not: the views read them all. A table of a resource
    not selected this run comes through the first selected one, and goes back under its own
    resource (dlt's `resource` of the table) the next time that one is selected."""
    schema = dlt.current.source_schema()
    routed: Routed = {}
    for table in tables.TABLES.values():
        resource = RESOURCE_OF[table.name]
        known = table.name in schema.tables and schema.get_table_columns(table.name)
        if known and (
            resource not in selected or schema.tables[table.name].get("resource") == resource
        ):
            continue
        routed.setdefault(_carrier(table.name, selected), []).append(table.materialize())
        hinted.add(table.name)
    return routed
