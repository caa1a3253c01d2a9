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

The engine's fetching runs on a thread of its own (`feed.Feed`), started by a run's first
segment and going on across its segments: each dlt load of the one source reads one segment
from it, and commits the copy of the state that came with that segment's end. A plain
`pipeline.run(neuron_source())` is one segment. The fetching never reads the warehouse: an
audit's segment waits for its caller to hand in what the warehouse holds (`SyncRun.stored`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import dlt
from dlt.extract import DltResource

from . import tables
from .api.errors import ConfigError
from .audit import DayAudit
from .config import NeuronSettings, SyncRun
from .extract import extract_calls, extract_repairs
from .feed import Feed, SegmentEnd
from .model import SyncPlan
from .progress import plan_window
from .recordings import Archiver, RecordingStore
from .versions import migrate

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
    config: NeuronSettings,
    run: SyncRun,
    store: RecordingStore | None = None,
    transport: Any = None,
) -> list[DltResource]:
    """The engine and the three resources it feeds; nothing runs before extraction. One source
    made of them serves a whole run: each dlt load of it extracts the run's next segment.
    `transport`: an httpx transport for the client (tests)."""
    engine = dlt.resource(_engine(config, run, store, transport), name=ENGINE, selected=False)
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


def _engine(
    config: NeuronSettings, run: SyncRun, store: RecordingStore | None, transport: Any
) -> Any:
    feeds: list[Feed] = []  # the run's fetching, started by its first segment's extraction
    segments = run.report.segments

    def fetched_calls() -> Iterator[Routed]:
        selected = set(dlt.current.source().selected_resources)
        recordings_only = check_selection(selected, store)
        hinted: set[str] = set()  # tables dlt has had the hints of, this segment
        yield _materialized(selected, hinted)
        state = dlt.current.source_state()
        if not feeds or feeds[-1].done:  # the run's first segment: the fetching starts
            begun = migrate(copy.deepcopy(dict(state)))  # an older release's: brought up
            fetching = partial(
                _fetching, config, run, store, transport, selected, recordings_only, begun
            )
            feeds[:] = [Feed(fetching, abandoned=lambda: segments.over)]
        feed, read = feeds[-1], False
        load_id = dlt.current.load_package_state()["load_id"]  # a column of the arrow tables
        try:
            for batch in feed.segment():
                yield route(batch.rows, selected, hinted, load_id)
            read = True
        finally:
            if not read:  # dlt stopped reading: so does the fetching
                feed.close()
        assert feed.ended is not None
        segments.ended = feed.ended  # for the runner: its timing, what is left, what it asks
        state.clear()  # the state that describes exactly the rows of this segment
        state.update(feed.ended.state)

    return fetched_calls


async def _fetching(
    config: NeuronSettings,
    run: SyncRun,
    store: RecordingStore | None,
    transport: Any,
    selected: set[str],
    recordings_only: bool,
    state: dict[str, Any],
    feed: Feed,
) -> None:
    """The run's fetching, segment after segment, on the feed's thread: each segment's batches,
    then its end with a copy of the state that describes them. It starts a segment only once
    the one before the last is committed. An audit is a segment of its own after the others:
    it starts once its caller has handed in what the warehouse holds (`SyncRun.stored`)."""
    report, segments = run.report, run.report.segments
    archiver = Archiver(store) if store is not None and "recordings" in selected else None
    if run.on_progress is not None:  # a retry note redraws the progress line at once
        on_progress = run.on_progress
        report.stats.on_waiting = lambda: on_progress(report)
    async with config.client(transport, report.stats) as client:
        client.limiter.recall(state.get("rate_limit"))
        while True:
            plan = run.plan(config, recordings_only=recordings_only)
            plan.transcripts = plan.transcripts and "transcripts" in selected
            plan.api_now = await client.clock()  # its today ends the window and the audit
            plan_window(state, plan, config.start, segments)
            audit = _audit(client, run, plan)  # its window is this segment's plan's
            if plan.lists:  # a repair run lists nothing: its only segment is the audit's
                async for batch in extract_calls(
                    client,
                    state,
                    plan,
                    report,
                    config.max_concurrency,
                    run.on_progress,
                    audit,
                    archiver,
                ):
                    await feed.put(batch)
                _remember_rate(client, state)
                stopped, more = segments.stopping, segments.more
                done = not more or stopped  # the run's last list segment
                ask = audit.window if audit is not None and done and not stopped else None
                end = SegmentEnd(copy.deepcopy(state), more, done and ask is None, ask)
                await feed.put(end)
                if end.last:
                    return
                if ask is None:  # one segment ahead of the loads at most
                    await feed.until(_committed(segments, segments.fetched - 1), "a commit")
                    continue
            assert audit is not None
            await feed.until(lambda: run.stored is not None or segments.stopping, "the warehouse")
            if run.stored is not None and not segments.stopping:
                repairs = extract_repairs(
                    client,
                    state,
                    plan,
                    report,
                    config.max_concurrency,
                    audit.jobs(run.stored),
                    run.on_progress,
                    archiver,
                )
                async for batch in repairs:
                    await feed.put(batch)
                _remember_rate(client, state)
            await feed.put(SegmentEnd(copy.deepcopy(state), False, True))
            return


def _committed(segments: Any, count: int) -> Callable[[], bool]:
    return lambda: segments.committed >= count


def _remember_rate(client: Any, state: dict[str, Any]) -> None:
    learned = client.limiter.memory(state.get("rate_limit"))
    if learned is not None:
        state["rate_limit"] = learned  # for the next run: ramp up or not


def _audit(client: Any, run: SyncRun, plan: SyncPlan) -> DayAudit | None:
    """The run's audit, once its plan has days to audit (a repair's, or a sync's last days)."""
    if not run.audits or not plan.audit_from or not plan.audit_to:
        return None
    return DayAudit(
        client,
        plan.audit_from,
        plan.audit_to,
        plan.api_clock,
        run.report.audit,
        transcripts=plan.audit_transcripts,
        privacy=plan.privacy,
    )


def route(
    rows: dict[str, list[Any]], selected: set[str], hinted: set[str], load_id: str | None = None
) -> Routed:
    """A batch's rows by table -> dlt items by resource; the first rows of a table in a run
    carry its hints (`tables.Table.rows`). A table whose resource is not selected gets rows
    only when a call was erased upstream (tombstones: a call the API no longer has leaves every
    table, whatever the selection); they go through the first selected resource."""
    routed: Routed = {}
    for name, table_rows in rows.items():
        routed.setdefault(_carrier(name, selected), []).extend(
            tables.TABLES[name].rows(table_rows, hinted=name in hinted, load_id=load_id)
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
