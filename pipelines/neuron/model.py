"""The shared types of one run: its plan, its report, the jobs it fetches and what comes back.

`extract` (listing, fan-out, state) and `audit` (comparing days) both work in these terms.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple, Protocol

import pendulum

from . import settings
from .api.client import ClientStats
from .api.errors import APIConnectionError, RateLimitError, ResponseError, ServerError
from .pii import Privacy
from .rows import Row, iso_utc

# An error about one call after every retry: the call is deferred to the next run. Any other
# error (the key refused, a URL that is not the API) stops the run.
CALL_ERRORS = (RateLimitError, ServerError, APIConnectionError, ResponseError)


@dataclass
class SyncPlan:
    """What one run reads: the list window and filters, and what it may change in the state."""

    now: pendulum.DateTime  # the pipeline's clock: pending since, expiry, erasure stamps
    start: pendulum.DateTime | None = None
    end: pendulum.DateTime | None = None
    filters: dict[str, str] = field(default_factory=dict)
    incremental: bool = True  # moves the cursor; a backfill or filtered run does not
    lookback: pendulum.Duration = field(default_factory=lambda: pendulum.duration(minutes=60))
    pending_max_days: float = 7
    max_offset: int = settings.DEFAULT_MAX_OFFSET  # the deepest list offset (progress.Paging)
    lists: bool = True  # False: a repair run, which only audits
    audit_days: int = 0  # the days before and including today an incremental run audits
    audit_from: dt.date | None = None  # the audited UTC days (None: no audit)
    audit_to: dt.date | None = None
    audit_transcripts: bool = False  # also re-check the stored transcripts of those days
    transcripts: bool = True  # ask for transcripts (the `transcripts` resource is selected)
    recordings_only: bool = (
        False  # `neuron-calls recordings`: archive recordings, load nothing else
    )
    privacy: Privacy = field(default_factory=Privacy)  # what rows hold; whose calls never load
    api_now: pendulum.DateTime | None = None  # the API's clock (its `Date`), once it answered

    @property
    def api_clock(self) -> pendulum.DateTime:
        """The API's now (the pipeline's until it answered): the list's end, the audit's today."""
        return self.api_now or self.now

    opened: str | None = None  # the run's tag on the windows it opened (`progress.Walk`)

    def list_params(self) -> dict[str, str]:
        params = dict(self.filters)
        if self.start is not None:
            params["from"] = iso_utc(self.start)
        if self.end is not None:
            params["to"] = iso_utc(self.end)
        return params


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range(max((last - first).days + 1, 0))]


@dataclass(frozen=True)
class AuditWindow:
    """The UTC days an audit compares (first..last inclusive): what its caller reads of the
    warehouse for it (`audit.StoredWindow`), and whether the stored transcripts too."""

    first: dt.date
    last: dt.date
    transcripts: bool = False

    @property
    def days(self) -> list[dt.date]:
        return days_between(self.first, self.last)


@dataclass
class AuditDay:
    """One audited UTC day: the API's and the warehouse's call counts, and what differs."""

    day: dt.date
    api: int
    warehouse: int
    counts_differ: bool = False  # in total or in a documented disposition
    missing: int = 0  # listed by the API, not in the warehouse
    changed: int = 0  # stored with other list-visible fields, or stored under another day
    erased: int = 0  # stored, but the API answers 404
    lagging: int = 0  # stored, not listed, yet `GET /calls/{id}` has it as stored: listing lag
    transcripts_checked: int = 0
    transcripts_changed: int = 0
    compared: bool = False  # compared call by call: the counts alone say nothing more

    @property
    def drift(self) -> bool:
        """Something to repair. Listing lag is none: the API has the call as stored."""
        found = self.missing + self.changed + self.erased + self.transcripts_changed
        return found > 0 or (self.counts_differ and not self.compared)


@dataclass
class AuditReport:
    """What the audit of a run found (per day and in total) and what the run repaired."""

    days: list[AuditDay] = field(default_factory=list)
    repaired: Counter[str] = field(default_factory=Counter)  # "missing", "changed", ...

    @property
    def days_differing(self) -> int:
        return sum(day.drift for day in self.days)

    def found(self, kind: str) -> int:
        return sum(getattr(day, kind) for day in self.days)


@dataclass
class SegmentEnd:
    """The end of one segment: the state that describes every batch handed over before it."""

    state: dict[str, Any]
    more: bool  # work is left for the next segment, or the next run
    last: bool  # the fetching ends here (no work left, or the run is stopping)
    # the next segment is the audit's: it waits for what the warehouse holds of these days,
    # read by the caller once this segment is committed (`SyncRun.stored`)
    audit: AuditWindow | None = None
    at: float = field(default_factory=time.monotonic)  # when its fetching ended
    received: float = 0.0  # when the loader read it: its rows all handed over


@dataclass
class Segments:
    """The bookkeeping of a run's segments (each one dlt load of what was fetched until its
    deadline), shared between threads: the runner's (which loads and commits each segment, and
    asks a run to stop) and the fetching's (`feed.py`: it stops listing at the deadline and says
    whether work is left). It holds counts, flags and the last segment's end; no thread's object.

    The fetching goes on with the next segment while one loads, so a segment lasts the interval
    less the time its predecessor took to commit: a call waits about one interval to be
    committed. On DuckDB each segment works on a fresh copy of the file, a cost that grows with
    the file: the interval stretches so that copying stays under
    `settings.CHECKPOINT_STAGING_SHARE` of the run.
    """

    interval: float | None = None  # SOURCES__NEURON__CHECKPOINT_SECONDS; None: no deadline
    committed: int = 0  # segments loaded (and published) so far in this run
    committed_calls: int = 0  # calls in the warehouse's rows committed by those segments
    fetched: int = 0  # segments whose fetching ended (the loads follow, at most one behind)
    more: bool = False  # the segment being fetched stopped at its deadline with work left
    opened: str | None = None  # the run's first segment's clock: tags the windows it opened
    audits: bool = False  # the run audits (decided by its first segment)
    repolled: bool = False  # the pending set was polled again this run
    # pending calls listed this run (pending then, or left pending by their fetch): not
    # polled again by id, nor fetched again if another window lists them (bounded: the pending
    # set is; the calls listed are remembered per segment only, `extract.CallSync.seen`)
    listed_pending: set[str] = field(default_factory=set)
    cost: float = 0.0  # seconds spent committing segments after their last rows were fetched
    staging: float = 0.0  # seconds the last segment spent copying the file (DuckDB)
    lag: float = 0.0  # seconds from the end of the last committed segment's fetching to its commit
    stopping: bool = False  # asked to stop (SIGTERM): the segment being fetched is the last
    halted: int | None = None  # the signal that stops the run at once (Ctrl-C, a second SIGTERM)
    ended: SegmentEnd | None = None  # the end of the last segment the loader read whole
    over: bool = False  # the runner is done with the run: a fetching still waiting ends

    def seconds(self) -> float | None:
        """The next segment's length: the interval (stretched when staging is slow) less the
        time the last commit took after its fetching ended."""
        if self.interval is None:
            return None
        share = settings.CHECKPOINT_STAGING_SHARE
        return max(max(self.interval, self.staging * (1 - share) / share) - self.lag, 0.0)

    def commit(self, cost: float, lag: float, calls: int, staging: float) -> None:
        """A segment was committed, `cost` seconds after its rows were all handed over and `lag`
        seconds after its fetching ended; `staging` of it went to copying the file."""
        self.committed += 1
        self.committed_calls = calls
        self.cost += cost
        self.lag = lag
        self.staging = staging

    @property
    def continuing(self) -> bool:
        """A segment of this run was fetched before: the run's window is open already."""
        return self.fetched > 0


@dataclass
class SyncReport:
    """Counters of one run, read by the CLI's summary."""

    pages: int = 0
    listed: int = 0
    left: int | None = None  # calls the list still holds beyond those listed (its `total`)
    calls: int = 0  # calls rows loaded this run (new or updated)
    transcripts: int = 0
    pending_transcripts: int = 0
    pending_calls: int = 0
    pending: dict[str, str] = field(default_factory=dict)  # call_id -> why it stays pending
    recordings: int = 0  # downloaded and archived this run
    recordings_kept: int = 0  # found archived already: their rows rebuilt from the files
    pending_recordings: int = 0  # could not be had: their calls stay pending
    deferred: dict[str, str] = field(default_factory=dict)  # call_id -> why it failed this run
    expired: list[str] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)  # calls the API no longer has, removed
    skipped_invalid: int = 0
    stats: ClientStats = field(default_factory=ClientStats)  # requests, retries, 429s
    audit: AuditReport = field(default_factory=AuditReport)
    segments: Segments = field(default_factory=Segments)


class PendingReason(Enum):
    """Why a call stays in the pending set; the state keeps `text()`."""

    CALL_NOT_FINAL = "call"  # with the status: "call in_progress"
    TRANSCRIPT_NOT_READY = "transcript"  # with its status: "transcript processing"
    TRANSCRIPT_NOT_FOUND = "transcript not found"  # 404 although the call has a job
    TRANSCRIPT_FAILED = "transcript failed"
    DETAILS_NOT_FOUND = "details not found"  # listed, yet 404 on details
    DETAILS_FAILED = "details failed"
    DETAILS_MALFORMED = "details malformed"
    RECORDING_FAILED = "recording failed"  # final, but its recording could not be archived

    def text(self, detail: str | None = None) -> str:
        return f"{self.value} {detail}" if detail else self.value


WAITING_FOR_TRANSCRIPT = frozenset(
    {PendingReason.TRANSCRIPT_NOT_READY, PendingReason.TRANSCRIPT_NOT_FOUND}
)


def waits_for_transcript(entry: Mapping[str, str]) -> bool:
    """A pending-set entry of a call that waits only for its transcript (ready, found or
    fetched): a run without transcripts leaves it for the next run that has them."""
    return str(entry.get("reason", "")).startswith(PendingReason.TRANSCRIPT_NOT_READY.value)


class Purpose(Enum):
    """Why a call is fetched."""

    LISTED = "listed"  # the run's list showed it: new, not final, or changed
    PENDING = "pending"  # re-polled by id, not in the run's list
    MISSING = "missing"  # audit: listed by the API, not in the warehouse
    CHANGED = "changed"  # audit: stored with other list-visible fields
    ERASED = "erased"  # audit: stored, but the API answers 404; no request left to make
    TRANSCRIPT = "transcript"  # audit: the stored transcript differs from the API's


class Job(NamedTuple):
    call_id: str
    purpose: Purpose
    listed: Row | None = None  # the list item, when the call was listed
    new: bool = False  # not in the warehouse for sure: if details fail, load the list item


@dataclass
class Fetched:
    job: Job
    call: Row | None = None  # the calls row to load, if any
    seen_as: str | None = None  # fingerprint of the details, as the list would show them
    loaded_as: str | None = None  # fingerprint of the details, as the `calls` row loads them
    transcript: tuple[Row, list[Row], list[Row]] | None = None
    pending: PendingReason | None = None  # why the call stays pending
    pending_detail: str | None = None
    failed: str | None = None  # an error after every retry
    erased: bool = False  # the API no longer has the call
    recording: Row | None = None  # the recordings row, once archived
    recording_downloaded: bool = False  # downloaded this run (not found in storage)
    recording_failed: str | None = None  # why the recording could not be had this run

    @property
    def call_id(self) -> str:
        return self.job.call_id


@dataclass
class Batch:
    """Rows for dlt by table name, from `size` fetched calls."""

    rows: defaultdict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    size: int = 0

    def add(self, table: str, rows: list[Row]) -> None:
        self.rows[table].extend(rows)

    def __len__(self) -> int:
        return self.size


class AuditStep(Protocol):
    """What a sync's segments tell the audit before its own segment (`audit.DayAudit`)."""

    async def look_ahead(self) -> None:
        """The API's side, looked at beside the run's own fetches."""

    def note_loaded(self, loaded: Mapping[str, Row | None]) -> None:
        """The list-visible fields of the calls a segment loaded in the window (None: erased)."""
