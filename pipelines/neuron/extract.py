"""The sync's real work, apart from dlt: list, fan out, decide what stays pending, erase.

`extract_calls` reads top to bottom:
  1. `CallSync.listed_jobs` lists `GET /calls` page by page in the run's window and turns each
     call that needs a fetch into a `Job` (new, not final yet, or listed with other fields than
     the ones loaded), then re-polls the pending calls the list did not show;
  2. a `FanOut` runs `fetch_call` (details, then the transcript) on a fixed pool of workers, so
     at most `max_concurrency` requests are in flight, and hands the results over in batches;
  3. `CallSync.apply` turns each result into rows and settles the call's place in the state;
  4. the audit (`audit.DayAudit`) looks at the API's side of its days beside the run's own
     fetches; once the run's loads are committed and its caller has read what the warehouse
     holds of those days, `extract_repairs` is a segment of its own: the audit's jobs, for what
     differs between the API and the warehouse, go through steps 2 and 3 the same way.

The state is updated in place; dlt commits it with the load package, so a crashed run leaves
the previous state untouched. Layout (`dlt.current.source_state()`):
    cursor:  ISO timestamp, the newest `started_at` loaded by an incremental run
    pending: {call_id: {"since": ISO (pipeline clock), "reason": text of a PendingReason}}
    recent:  {call_id: [ISO started_at, fingerprint]} of final calls within the lookback; listed
             again with the same fingerprint (`rows.fingerprint` of the call as loaded), a call
             is not fetched again. `null` instead of a fingerprint: never fetched again by the
             lookback (a call that expired from the pending set).
    walks:   the windows listed newest first, and how far down (`progress.Walk`)
    state_version: the shape's version; an older release's state is migrated (`versions.py`)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pendulum

from . import settings
from .api.client import NeuronClient
from .api.errors import NotFoundError
from .model import (
    CALL_ERRORS,
    WAITING_FOR_TRANSCRIPT,
    AuditStep,
    Batch,
    Fetched,
    Job,
    PendingReason,
    Purpose,
    SyncPlan,
    SyncReport,
    waits_for_transcript,
)
from .progress import Paging, Walk, plan_window, save_walks, walks_of
from .recordings import Archiver, RecordingFailed
from .rows import (
    Row,
    call_row,
    fingerprint,
    is_final,
    iso_utc,
    list_view,
    parse_timestamp,
    transcript_is_ready,
    transcript_rows,
)
from .tables import (
    CALLS,
    RECORDINGS,
    SPEAKER_SENTIMENT,
    TRANSCRIPT_SEGMENTS,
    TRANSCRIPTS,
    erased_rows,
)

log = logging.getLogger(__name__)

BATCH_ROWS = 500  # calls per batch handed to dlt
BATCH_SECONDS = 1.0  # or fewer, when their results took longer than this to arrive


def iso(moment: pendulum.DateTime) -> str:
    return iso_utc(moment)


async def extract_calls(
    client: NeuronClient,
    state: dict[str, Any],
    plan: SyncPlan,
    report: SyncReport,
    concurrency: int,
    on_progress: Callable[[SyncReport], None] | None = None,
    audit: AuditStep | None = None,
    archiver: Archiver | None = None,
) -> AsyncIterator[Batch]:
    """One segment: the open walks until they are done or the segment's deadline passes (then
    the calls listed so far are fetched, and the walks keep their place for the next segment),
    then the pending set. A segment that finished every walk ends with the audit's look at the
    API (taken beside its fetches when it can) and tells the audit what it loaded; the audit's
    own jobs come after the loads (`extract_repairs`)."""
    if plan.opened is None:  # a plan made without `plan_window`: its window as it stands
        plan_window(state, plan, plan.start, report.segments)
    sync = CallSync(state, plan, report, on_progress)
    fan_out = FanOut(lambda job: fetch_call(client, job, archiver, plan), concurrency)
    ahead = None
    first = not report.segments.continuing
    if audit is not None and plan.lists and len(sync.walks) <= 1 and first:
        # beside the run's own window only: a segment going on with history may end before it
        ahead = asyncio.create_task(_look_ahead(audit, sync.answered))
    try:
        if plan.lists:
            sync.expire_pending()
            async for batch in fan_out.batches(sync.listed_jobs(client), sync.apply):
                yield batch
                sync.progress()
        if audit is not None and not (report.segments.more or report.segments.stopping):
            await (ahead if ahead is not None else audit.look_ahead())
            audit.note_loaded(sync.loaded)
    finally:
        if ahead is not None and not ahead.done():
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)
    sync.advance_cursor()
    report.segments.fetched += 1


async def extract_repairs(
    client: NeuronClient,
    state: dict[str, Any],
    plan: SyncPlan,
    report: SyncReport,
    concurrency: int,
    jobs: AsyncIterator[Job],
    on_progress: Callable[[SyncReport], None] | None = None,
    archiver: Archiver | None = None,
) -> AsyncIterator[Batch]:
    """The audit's segment, after the run's loads: its `jobs` (`audit.DayAudit.jobs`) fetched
    and settled like the list's (missing and changed calls refetched, erased ones removed);
    nothing is listed and the cursor stays where it is."""
    sync = CallSync(state, plan, report, on_progress)
    fan_out = FanOut(lambda job: fetch_call(client, job, archiver, plan), concurrency)
    async for batch in fan_out.batches(jobs, sync.apply):
        yield batch
        sync.progress()
    report.segments.fetched += 1


async def _look_ahead(audit: AuditStep, answered: asyncio.Event) -> None:
    """The audit looks ahead once the API has answered a list page: not while it refuses."""
    await answered.wait()
    await audit.look_ahead()


# -- fetching one call ---------------------------------------------------------------------------


async def fetch_call(
    client: NeuronClient, job: Job, archiver: Archiver | None = None, plan: SyncPlan | None = None
) -> Fetched:
    """Details, then the transcript of a final call that has a transcript job, then its
    recording (right after the details, while the signed URL is fresh) when archiving is on.

    When the details cannot be had, a call `new` to the warehouse is loaded from its list item
    meanwhile; a call that may be loaded already keeps its row (no downgrade to a list item).
    A 404 for a call the list did not show means the API no longer has it: erased.
    """
    if job.purpose is Purpose.ERASED:
        return Fetched(job, erased=True)
    try:
        detail = await client.get_call(job.call_id)
    except NotFoundError:
        if job.listed is None:
            return Fetched(job, erased=True)
        return _from_list_item(job, PendingReason.DETAILS_NOT_FOUND)
    except CALL_ERRORS as exc:
        return _from_list_item(job, PendingReason.DETAILS_FAILED, failed=str(exc))
    if detail.get("id") != job.call_id:
        return Fetched(job, pending=PendingReason.DETAILS_MALFORMED, failed="detail has another id")
    fetched = Fetched(
        job,
        call=call_row(detail),
        seen_as=fingerprint(detail),
        loaded_as=fingerprint(detail, detailed=True),
    )
    if plan is not None and plan.privacy.suppressed(fetched.call):
        return fetched  # an erased contact's call: dropped by `CallSync.apply`, nothing archived
    if not is_final(detail):
        fetched.pending = PendingReason.CALL_NOT_FINAL
        fetched.pending_detail = str(detail.get("status"))
        return fetched
    if archiver is not None and detail.get("recording_url"):
        await _archive(client, archiver, detail, fetched)
    wanted = plan is None or (plan.transcripts and not plan.recordings_only)
    if detail.get("transcript_job_id") and wanted:
        await _fetch_transcript(client, fetched)
    return fetched


async def _archive(client: NeuronClient, archiver: Archiver, detail: Row, fetched: Fetched) -> None:
    try:
        fetched.recording, fetched.recording_downloaded = await archiver.archive(client, detail)
    except RecordingFailed as exc:
        log.warning("call %s: %s; it stays pending for its recording", fetched.call_id, exc)
        fetched.recording_failed = str(exc)
        fetched.pending = PendingReason.RECORDING_FAILED


def _from_list_item(job: Job, reason: PendingReason, failed: str | None = None) -> Fetched:
    row = call_row(job.listed, detailed=False) if job.new and job.listed is not None else None
    return Fetched(job, call=row, pending=reason, failed=failed)


async def _fetch_transcript(client: NeuronClient, fetched: Fetched) -> None:
    try:
        transcript = await client.get_transcript(fetched.call_id)
    except CALL_ERRORS as exc:
        fetched.pending, fetched.failed = PendingReason.TRANSCRIPT_FAILED, str(exc)
        return
    if transcript is None:  # 404 although the call has a transcript job: ask again later
        fetched.pending = PendingReason.TRANSCRIPT_NOT_FOUND
    elif transcript_is_ready(transcript):
        fetched.transcript = transcript_rows(fetched.call_id, transcript)
    else:
        fetched.pending = PendingReason.TRANSCRIPT_NOT_READY
        fetched.pending_detail = str(transcript.get("status") or "not ready")


# -- the fan-out ---------------------------------------------------------------------------------

_FINISHED = object()  # put on the results queue once every job is fetched


class FanOut:
    """Jobs in, results out in batches: `workers` fetches at once, a few jobs queued per worker.

    A lister that produces jobs faster than they are fetched waits on the full job queue, so at
    most a few pages of calls are held in memory. The first exception, in the lister or in a
    worker (a list page that failed, a refused key), stops every task and reaches the consumer.
    """

    def __init__(self, fetch: Callable[[Job], Awaitable[Fetched]], workers: int) -> None:
        self.fetch = fetch
        self.workers = max(1, workers)

    async def batches(
        self, jobs: AsyncIterator[Job], apply: Callable[[Fetched, Batch], None]
    ) -> AsyncIterator[Batch]:
        # two jobs a worker: enough to keep them fed across a list page, and little to finish
        # when a checkpoint's deadline stops the lister
        queue: asyncio.Queue[Job | None] = asyncio.Queue(self.workers * 2)
        results: asyncio.Queue[Any] = asyncio.Queue(BATCH_ROWS * 2)
        runner = asyncio.create_task(self._run(jobs, queue, results))
        try:
            finished = False
            while not finished:
                batch, finished = await self._collect(results, apply)
                if batch.rows:
                    yield batch
        finally:
            if not runner.done():
                runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def _run(
        self,
        jobs: AsyncIterator[Job],
        queue: asyncio.Queue[Job | None],
        results: asyncio.Queue[Any],
    ) -> None:
        tasks = [asyncio.create_task(self._work(queue, results)) for _ in range(self.workers)]
        tasks.append(asyncio.create_task(self._feed(jobs, queue)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            await results.put(exc)
            return
        await results.put(_FINISHED)

    async def _feed(self, jobs: AsyncIterator[Job], queue: asyncio.Queue[Job | None]) -> None:
        async for job in jobs:
            await queue.put(job)
        for _ in range(self.workers):
            await queue.put(None)  # one stop sign per worker

    async def _work(self, queue: asyncio.Queue[Job | None], results: asyncio.Queue[Any]) -> None:
        while (job := await queue.get()) is not None:
            await results.put(await self.fetch(job))

    async def _collect(
        self, results: asyncio.Queue[Any], apply: Callable[[Fetched, Batch], None]
    ) -> tuple[Batch, bool]:
        """One batch: results until BATCH_ROWS calls, or until BATCH_SECONDS after the first
        arrived (dlt's cost is per item, not per row, so it waits a little for a fuller one).
        The flag is True once every result is in."""
        loop = asyncio.get_running_loop()
        batch = Batch()
        item = await results.get()
        flush_at = loop.time() + BATCH_SECONDS
        while item is not _FINISHED:
            if isinstance(item, BaseException):
                raise item
            apply(item, batch)
            batch.size += 1
            if len(batch) >= BATCH_ROWS:
                return batch, False
            if not results.empty():  # no timer for a result that is already there
                item = results.get_nowait()
                continue
            try:
                item = await asyncio.wait_for(results.get(), max(flush_at - loop.time(), 0))
            except TimeoutError:
                return batch, False
        return batch, True


# -- the state of one run ------------------------------------------------------------------------


class CallSync:
    """One run's view of the sync state: which listed calls to fetch, what each result changes."""

    def __init__(
        self,
        state: dict[str, Any],
        plan: SyncPlan,
        report: SyncReport,
        on_progress: Callable[[SyncReport], None] | None = None,
    ) -> None:
        self.state, self.plan, self.report, self.on_progress = state, plan, report, on_progress
        self.pending: dict[str, dict[str, str]] = state.setdefault("pending", {})
        self.recent: dict[str, Any] = state.setdefault("recent", {})
        self.old_cursor = parse_timestamp(state.get("cursor"))
        self.newest: pendulum.DateTime | None = None
        # list-visible fields of the calls loaded this segment in the audit window; None: erased
        self.loaded: dict[str, Row | None] = {}
        self.answered = asyncio.Event()  # set once the list has answered
        segments = report.segments
        self.open_walks = walks_of(state)
        # a sync goes on with every open walk, a backfill with the one it opened
        self.walks = [w for w in self.open_walks if plan.incremental or w.opened == plan.opened]
        seconds = segments.seconds()
        self.deadline = time.monotonic() + seconds if seconds is not None else None
        self.taken = 0  # calls listed this segment
        self.seen: set[str] = set()  # their ids: a page that shifted lists no call twice

    def progress(self) -> None:
        if self.on_progress:
            self.on_progress(self.report)

    async def listed_jobs(self, client: NeuronClient) -> AsyncIterator[Job]:
        """The jobs of every walk this segment may go on with, newest calls first; the pending
        calls the run has not listed once a walk is done (once per run)."""
        segments = self.report.segments
        segments.more = False
        for walk in list(self.walks):
            async for job in self._walk_jobs(client, walk):
                yield job
            if segments.more:
                return
            self.open_walks.remove(walk)
            save_walks(self.state, self.open_walks)
            async for job in self._repoll():
                yield job
        self.answered.set()
        async for job in self._repoll():
            yield job

    async def _repoll(self) -> AsyncIterator[Job]:
        """The pending calls not listed this run, once per run."""
        segments = self.report.segments
        if segments.repolled:
            return
        segments.repolled = True
        if self.plan.recordings_only:
            return  # the window is the window: a pending call it did not list waits for a sync
        for call_id in list(self.pending):
            if call_id in segments.listed_pending:
                continue
            if self._waits_for_transcripts(call_id):
                self._leave_for_transcripts(call_id)
            else:
                yield Job(call_id, Purpose.PENDING)

    async def _walk_jobs(self, client: NeuronClient, walk: Walk) -> AsyncIterator[Job]:
        """One walk's window, page by page with its `to` fixed; stops at the deadline between
        two calls, the walk then ends at the last call listed (`report.segments.more`).
        Past the offsets the API reaches, what is left is listed afresh below the boundary
        (`progress.Paging`)."""
        clock, paging = time.monotonic(), Paging(walk, self.plan.max_offset)
        try:
            while not self._past_deadline():
                page = await paging.next_page(client)
                if page is None:
                    continue  # split: the rest of the window, from offset 0
                self.answered.set()
                self.report.pages += 1
                if page.get("total") is not None:  # the progress line's done/total
                    self.report.left = walk.left
                for item in page["data"]:
                    if self._past_deadline():
                        self.report.segments.more = True  # the rest is the next segment's
                        return
                    if walk.take(item) and (job := self._listed(item, walk)) is not None:
                        yield job
                save_walks(self.state, self.open_walks)
                self.progress()
                if paging.last(page):
                    return
            self.report.segments.more = True  # past the deadline between two pages
        finally:
            walk.seconds += time.monotonic() - clock
            save_walks(self.state, self.open_walks)

    def _past_deadline(self) -> bool:
        """The segment's deadline passed, or it listed SEGMENT_MAX_CALLS: no new call is listed
        (the work is left for later). A segment lists a page's worth at least, so that a slow
        API still gets through; a run asked to stop lists nothing more."""
        if self.report.segments.stopping:
            return True
        if self.deadline is None or self.taken < settings.PAGE_SIZE:
            return False
        return time.monotonic() >= self.deadline or self.taken >= settings.SEGMENT_MAX_CALLS

    def _listed(self, item: Row, walk: Walk) -> Job | None:
        call_id = item.get("id")
        if not isinstance(call_id, str) or not call_id:
            self.report.skipped_invalid += 1
            return None
        listed_pending = self.report.segments.listed_pending
        if call_id in self.seen or call_id in listed_pending:
            return None
        self.seen.add(call_id)
        if call_id in self.pending:
            listed_pending.add(call_id)
        self.taken += 1
        if self.plan.privacy.suppressed(item):
            return None  # an erased contact's call: never fetched, never loaded
        self.report.listed += 1
        started = parse_timestamp(item.get("started_at"))
        moves_cursor = self.plan.incremental and walk.moves_cursor
        if moves_cursor and started is not None and (self.newest is None or started > self.newest):
            self.newest = started
        pending = call_id in self.pending
        if self._waits_for_transcripts(call_id):
            self._leave_for_transcripts(call_id)
            return None
        if moves_cursor and not pending and self._unchanged(call_id, item):
            return None  # final, and listed as it was loaded: nothing to fetch
        # new for sure: past the cursor of an incremental run (else it may be loaded)
        past_cursor = self.old_cursor is None or started is None or started > self.old_cursor
        new = moves_cursor and past_cursor and not pending
        return Job(call_id, Purpose.LISTED, item, new)

    def _waits_for_transcripts(self, call_id: str) -> bool:
        """A call pending only for its transcript, in a run without transcripts: not fetched,
        kept pending for the next run with them (`_leave_for_transcripts`)."""
        entry = self.pending.get(call_id)
        if self.plan.transcripts or self.plan.recordings_only or entry is None:
            return False
        return waits_for_transcript(entry)

    def _leave_for_transcripts(self, call_id: str) -> None:
        """Count a call left pending for its transcript (in the summary too)."""
        self.report.pending_transcripts += 1
        self.report.pending[call_id] = self.pending[call_id].get("reason", "transcript")

    def _unchanged(self, call_id: str, item: Row) -> bool:
        entry = self.recent.get(call_id)
        return entry is not None and entry[1] in (None, fingerprint(item))

    def apply(self, fetched: Fetched, batch: Batch) -> None:
        """Put one call's rows in the batch and settle its place in the state."""
        if not self.plan.privacy.screen(fetched):  # rows rewritten under the PII policy
            self.pending.pop(fetched.call_id, None)  # an erased contact's call: not loaded
            return
        self._count_repair(fetched)
        if fetched.erased:
            self._erase(fetched.call_id, batch)
            return
        self._add_recording(fetched, batch)
        if self.plan.recordings_only:  # only the recordings; the calls stay as loaded
            if fetched.recording_failed:
                self._keep_pending(fetched)
            return
        if fetched.call is not None and not self._loaded_already(fetched):
            batch.add(CALLS.name, [fetched.call])
            self.report.calls += 1
            self._remember(fetched.call_id, fetched.call)
        if fetched.transcript is not None:
            self._add_transcript(fetched.call_id, fetched.transcript, batch)
        if fetched.failed:
            self.report.deferred[fetched.call_id] = fetched.failed
        if fetched.pending is not None:
            self._keep_pending(fetched)
        else:
            self._settle(fetched)

    def _add_recording(self, fetched: Fetched, batch: Batch) -> None:
        """The call's recordings row; when its file is not in storage and could not be had,
        no row (a tombstone), so none points at a file that is gone."""
        if fetched.recording is not None:
            batch.add(RECORDINGS.name, [fetched.recording])
            if fetched.recording_downloaded:
                self.report.recordings += 1
            else:
                self.report.recordings_kept += 1
        if fetched.recording_failed:
            batch.add(RECORDINGS.name, [RECORDINGS.tombstone(fetched.call_id)])
            self.report.pending_recordings += 1

    def _add_transcript(
        self, call_id: str, rows: tuple[Row, list[Row], list[Row]], batch: Batch
    ) -> None:
        """A transcript replaces every row of its call: a table the new one has no rows for
        gets a tombstone, so the merge still deletes the old ones."""
        head, segments, speakers = rows
        batch.add(TRANSCRIPTS.name, [head])
        batch.add(TRANSCRIPT_SEGMENTS.name, segments or [TRANSCRIPT_SEGMENTS.tombstone(call_id)])
        batch.add(SPEAKER_SENTIMENT.name, speakers or [SPEAKER_SENTIMENT.tombstone(call_id)])
        self.report.transcripts += 1

    def _erase(self, call_id: str, batch: Batch) -> None:
        log.warning("call %s is no longer in the API: removed from every table", call_id)
        for table, rows in erased_rows(call_id, self.plan.now).items():
            batch.add(table, rows)
        self.pending.pop(call_id, None)
        self.report.pending.pop(call_id, None)
        self.recent.pop(call_id, None)
        self.loaded[call_id] = None
        self.report.erased.append(call_id)

    def _loaded_already(self, fetched: Fetched) -> bool:
        """A pending call polled again and found as its row was last loaded: not loaded again
        (a call waiting for its transcript is polled at every run), nor overlaid for the audit,
        which then checks that the warehouse holds it. An audit's refetch always loads."""
        entry = self.pending.get(fetched.call_id)
        return (
            fetched.job.purpose in (Purpose.LISTED, Purpose.PENDING)
            and entry is not None
            and fetched.loaded_as is not None
            and entry.get("loaded") == fetched.loaded_as
        )

    def _remember(self, call_id: str, row: Row) -> None:
        """Keep what was loaded of calls in the audit window: the audit compares the API with
        the warehouse as it will be after this run."""
        started = row.get("started_at")
        first = self.plan.audit_from
        if first is not None and started is not None and started.date() >= first:
            self.loaded[call_id] = list_view(row)
        else:
            self.loaded.pop(call_id, None)

    def _keep_pending(self, fetched: Fetched) -> None:
        assert fetched.pending is not None
        entry = self.pending.setdefault(fetched.call_id, {"since": iso(self.plan.now)})
        entry["reason"] = fetched.pending.text(fetched.pending_detail)
        self.report.pending[fetched.call_id] = entry["reason"]
        if fetched.job.purpose is Purpose.LISTED:
            self.report.segments.listed_pending.add(fetched.call_id)
        if fetched.call is not None and not self.plan.recordings_only:  # its row, as loaded
            if fetched.loaded_as is None:
                entry.pop("loaded", None)
            else:
                entry["loaded"] = fetched.loaded_as
        if fetched.failed:
            return  # counted in `deferred`
        if fetched.pending is PendingReason.CALL_NOT_FINAL:
            self.report.pending_calls += 1
        elif fetched.pending in WAITING_FOR_TRANSCRIPT:
            self.report.pending_transcripts += 1

    def _settle(self, fetched: Fetched) -> None:
        self.pending.pop(fetched.call_id, None)
        self.report.pending.pop(fetched.call_id, None)
        started = fetched.call.get("started_at") if fetched.call else None
        if self.plan.incremental and started is not None and fetched.seen_as is not None:
            self.recent[fetched.call_id] = [iso(started), fetched.seen_as]

    def _count_repair(self, fetched: Fetched) -> None:
        purpose = fetched.job.purpose
        if purpose is Purpose.TRANSCRIPT:
            repaired = fetched.transcript is not None
        elif purpose in (Purpose.MISSING, Purpose.CHANGED):
            repaired = fetched.call is not None and not fetched.failed
        else:
            repaired = purpose is Purpose.ERASED
        if repaired:
            self.report.audit.repaired[purpose.value] += 1

    def expire_pending(self) -> None:
        """Drop calls pending too long; kept in `recent`, so the lookback does not re-add them."""
        limit = self.plan.now - pendulum.duration(days=self.plan.pending_max_days)
        for call_id, entry in list(self.pending.items()):
            since = parse_timestamp(entry.get("since")) or self.plan.now
            if since < limit:
                log.warning(
                    "call %s still not final after %s days (%s): no longer re-polled",
                    call_id,
                    self.plan.pending_max_days,
                    entry.get("reason"),
                )
                del self.pending[call_id]
                self.recent[call_id] = [iso(self.plan.api_clock), None]
                self.report.expired.append(call_id)

    def advance_cursor(self) -> None:
        """Move the cursor to the newest call listed (its segment commits every call above the
        walks left open), and forget final ids out of the lookback."""
        if not self.plan.incremental:
            return
        cursor = self.old_cursor
        if self.newest is not None and (cursor is None or self.newest > cursor):
            cursor = self.newest
            self.state["cursor"] = iso(self.newest)
        if cursor is not None:
            horizon = iso(cursor - self.plan.lookback)
            self.state["recent"] = {k: v for k, v in self.recent.items() if v[0] >= horizon}
