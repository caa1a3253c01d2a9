"""The sync's real work, apart from dlt: list, fan out, decide what stays pending.

`extract_calls` lists `GET /calls` page by page in a closed window while a fixed pool of workers
fetches details and transcripts of the calls that need them, so at most `max_concurrency`
requests are in flight and at most a few pages of calls are held in memory. It updates the
sync state (cursor, pending set, recently finalised ids) in place; dlt commits that state with
the load package, so a crashed run leaves the previous state untouched.

State layout (`dlt.current.source_state()`):
    cursor:  ISO timestamp, the newest `started_at` loaded by an incremental run
    pending: {call_id: {"since": ISO (pipeline clock), "reason": str}}
    recent:  {call_id: ISO started_at} of final calls within the lookback, not fetched again
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pendulum

from .client import AuthenticationError, ClientStats, NeuronClient, NeuronError, NotFoundError
from .rows import Row, call_row, is_final, parse_timestamp, transcript_is_ready, transcript_rows

log = logging.getLogger(__name__)

BATCH_ROWS = 500  # calls per batch handed to dlt
BATCH_SECONDS = 1.0  # or fewer, when their results took longer than this to arrive


@dataclass
class SyncPlan:
    """What one run reads: the list window and filters, and what it may change in the state."""

    now: pendulum.DateTime
    start: pendulum.DateTime | None = None
    end: pendulum.DateTime | None = None
    filters: dict[str, str] = field(default_factory=dict)
    incremental: bool = True  # moves the cursor; a backfill or filtered run does not
    lookback: pendulum.Duration = field(default_factory=lambda: pendulum.duration(minutes=60))
    pending_max_days: float = 7

    def list_params(self) -> dict[str, str]:
        params = dict(self.filters)
        if self.start is not None:
            params["from"] = iso(self.start)
        if self.end is not None:
            params["to"] = iso(self.end)
        return params


@dataclass
class SyncReport:
    """Counters of one run, read by the CLI's summary."""

    pages: int = 0
    listed: int = 0
    calls: set[str] = field(default_factory=set)
    transcripts: int = 0
    pending_transcripts: int = 0
    pending_calls: int = 0
    deferred: dict[str, str] = field(default_factory=dict)  # call_id -> why it failed this run
    expired: list[str] = field(default_factory=list)
    skipped_invalid: int = 0
    stats: ClientStats = field(default_factory=ClientStats)  # requests, retries, 429s


@dataclass
class Batch:
    calls: list[Row] = field(default_factory=list)
    transcripts: list[Row] = field(default_factory=list)
    segments: list[Row] = field(default_factory=list)
    speakers: list[Row] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls)


@dataclass
class _Fetched:
    call_id: str
    call: Row | None = None  # the calls row to load, if any
    transcript: tuple[Row, list[Row], list[Row]] | None = None
    pending: str | None = None  # why the call stays pending
    failed: str | None = None  # an error after every retry
    gone: bool = False


def iso(moment: pendulum.DateTime) -> str:
    return moment.in_timezone("UTC").format("YYYY-MM-DDTHH:mm:ss[Z]")


def plan_window(
    state: dict[str, Any], plan: SyncPlan, start_date: pendulum.DateTime | None
) -> None:
    """An incremental run lists from the cursor minus the lookback (or the start date) to now."""
    if not plan.incremental:
        return
    cursor = parse_timestamp(state.get("cursor"))
    plan.start = cursor - plan.lookback if cursor else start_date
    plan.end = plan.now


async def extract_calls(
    client: NeuronClient,
    state: dict[str, Any],
    plan: SyncPlan,
    report: SyncReport,
    concurrency: int,
    on_progress: Callable[[SyncReport], None] | None = None,
) -> AsyncIterator[Batch]:
    pending: dict[str, dict[str, str]] = state.setdefault("pending", {})
    recent: dict[str, str] = state.setdefault("recent", {})
    _expire_pending(pending, recent, plan, report)
    queue: asyncio.Queue[tuple[str, Row | None, bool] | None] = asyncio.Queue(concurrency * 4)
    old_cursor = parse_timestamp(state.get("cursor"))
    results: asyncio.Queue[_Fetched | BaseException | None] = asyncio.Queue(BATCH_ROWS * 2)
    newest: pendulum.DateTime | None = None
    workers = max(1, concurrency)

    async def lister() -> None:
        nonlocal newest
        seen: set[str] = set()
        async for page in client.iter_calls(plan.list_params()):
            report.pages += 1
            for item in page:
                call_id = item.get("id")
                if not isinstance(call_id, str) or not call_id or call_id in seen:
                    report.skipped_invalid += not isinstance(call_id, str) or not call_id
                    continue
                seen.add(call_id)
                report.listed += 1
                started = parse_timestamp(item.get("started_at"))
                if started is not None and (newest is None or started > newest):
                    newest = started
                if plan.incremental and call_id in recent and call_id not in pending:
                    continue  # final and loaded by an earlier run: nothing can have changed
                # new for sure: past the cursor of an incremental run (else it may be loaded)
                new = (
                    plan.incremental
                    and (old_cursor is None or started is None or started > old_cursor)
                    and call_id not in pending
                )
                await queue.put((call_id, item, new))
            if on_progress:
                on_progress(report)
        for call_id in list(pending):
            if call_id not in seen:
                await queue.put((call_id, None, False))

    async def worker() -> None:
        while (job := await queue.get()) is not None:
            await results.put(await _fetch(client, *job))

    async def list_then_stop_workers() -> None:
        await lister()
        for _ in range(workers):
            await queue.put(None)

    async def run() -> None:
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        tasks.append(asyncio.create_task(list_then_stop_workers()))
        try:
            # any task failing (a list page, a refused key in a worker) stops them all
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            await results.put(exc)
            return
        await results.put(None)

    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(run())
    try:
        done = False
        while not done:
            batch = Batch()
            item = await results.get()
            flush_at = loop.time() + BATCH_SECONDS
            while True:
                if item is None:
                    done = True
                    break
                if isinstance(item, BaseException):
                    raise item
                _apply(item, batch, state, plan, report)
                if len(batch) >= BATCH_ROWS:
                    break
                if results.empty():
                    # dlt's cost is per item, not per row: wait a little for a fuller batch
                    try:
                        item = await asyncio.wait_for(results.get(), flush_at - loop.time())
                    except TimeoutError:
                        break
                else:
                    item = results.get_nowait()
            if batch.calls or batch.transcripts:
                yield batch
                if on_progress:
                    on_progress(report)
    finally:
        if not runner.done():
            runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    _advance_cursor(state, plan, newest)


async def _fetch(client: NeuronClient, call_id: str, listed: Row | None, new: bool) -> _Fetched:
    """Details, then the transcript of a final call that has a transcript job.

    When the details cannot be had, a call `new` to the warehouse is loaded from its list item
    meanwhile; a call that may be loaded already keeps its row (no downgrade to a list item).
    """
    try:
        detail = await client.get_call(call_id)
    except NotFoundError:
        if listed is None:
            return _Fetched(call_id, gone=True)
        row = call_row(listed, detailed=False) if new else None
        return _Fetched(call_id, call=row, pending="details not found")
    except AuthenticationError:
        raise
    except NeuronError as exc:
        row = call_row(listed, detailed=False) if new and listed is not None else None
        return _Fetched(call_id, call=row, pending="details failed", failed=str(exc))
    if detail.get("id") != call_id:
        return _Fetched(call_id, pending="details malformed", failed="detail has another id")
    fetched = _Fetched(call_id, call=call_row(detail))
    if not is_final(detail):
        fetched.pending = f"call {detail.get('status')}"
        return fetched
    if not detail.get("transcript_job_id"):
        return fetched
    try:
        transcript = await client.get_transcript(call_id)
    except AuthenticationError:
        raise
    except NeuronError as exc:
        fetched.pending, fetched.failed = "transcript failed", str(exc)
        return fetched
    if transcript is None:  # 404 although the call has a transcript job: ask again later
        fetched.pending = "transcript not found"
    elif transcript_is_ready(transcript):
        fetched.transcript = transcript_rows(call_id, transcript)
    else:
        fetched.pending = f"transcript {transcript.get('status') or 'not ready'}"
    return fetched


def _apply(
    fetched: _Fetched, batch: Batch, state: dict[str, Any], plan: SyncPlan, report: SyncReport
) -> None:
    """Put one call's rows in the batch and settle its place in the pending set."""
    pending, recent = state["pending"], state["recent"]
    call_id = fetched.call_id
    if fetched.call is not None:
        batch.calls.append(fetched.call)
        report.calls.add(call_id)
    if fetched.transcript is not None:
        head, segments, speakers = fetched.transcript
        batch.transcripts.append(head)
        batch.segments.extend(segments)
        batch.speakers.extend(speakers)
        report.transcripts += 1
    if fetched.failed:
        report.deferred[call_id] = fetched.failed
    if fetched.gone:
        log.warning("call %s is no longer in the API; it leaves the pending set", call_id)
        pending.pop(call_id, None)
    elif fetched.pending:
        pending.setdefault(call_id, {"since": iso(plan.now)})["reason"] = fetched.pending
        if fetched.failed:
            pass  # counted in `deferred`
        elif fetched.pending.startswith("transcript"):
            report.pending_transcripts += 1
        elif fetched.pending.startswith("call "):
            report.pending_calls += 1
    else:
        pending.pop(call_id, None)
        started = fetched.call.get("started_at") if fetched.call else None
        if plan.incremental and started is not None:
            recent[call_id] = iso(started)


def _expire_pending(
    pending: dict[str, dict[str, str]], recent: dict[str, str], plan: SyncPlan, report: SyncReport
) -> None:
    """Drop calls pending too long; kept in `recent`, so the lookback does not re-add them."""
    limit = plan.now - pendulum.duration(days=plan.pending_max_days)
    for call_id, entry in list(pending.items()):
        since = parse_timestamp(entry.get("since")) or plan.now
        if since < limit:
            log.warning(
                "call %s still not final after %s days (%s): no longer re-polled",
                call_id,
                plan.pending_max_days,
                entry.get("reason"),
            )
            del pending[call_id]
            recent[call_id] = iso(plan.now)
            report.expired.append(call_id)


def _advance_cursor(
    state: dict[str, Any], plan: SyncPlan, newest: pendulum.DateTime | None
) -> None:
    """Move the cursor to the newest call listed, and forget final ids out of the lookback."""
    if not plan.incremental:
        return
    cursor = parse_timestamp(state.get("cursor"))
    if newest is not None and (cursor is None or newest > cursor):
        cursor = newest
        state["cursor"] = iso(newest)
    if cursor is not None:
        horizon = iso(cursor - plan.lookback)
        state["recent"] = {k: v for k, v in state["recent"].items() if v >= horizon}
