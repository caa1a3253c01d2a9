"""The audit: per UTC day, what the API lists against what the warehouse holds.

Each day's window is `from=<day>T00:00:00Z`, `to=<day>T23:59:59Z` (or the run's now). Its first
list page (`limit=100`) gives the day's `total`:
- a day that fits in that page is compared call by call right away: 1 request a day;
- a bigger day is compared by counts: the same window with `limit=1` per documented
  disposition, 6 more requests (7 a day); only when the total or a disposition count differs
  is the day listed in full and compared call by call.
Call by call: *missing* (listed, not stored), *changed* (stored with other list-visible
fields), and stored but not listed: `GET /calls/{id}`, 404 means *erased*, anything else
changed (e.g. its `started_at` moved to another day). No detail or transcript request while
nothing differs.

Undocumented dispositions (e.g. `voicemail`) and calls in progress (no disposition) count in
the total only. On a day bigger than a page, a relabel that keeps every count (the status
alone, the duration alone, or two calls swapping dispositions) is not seen; inside the lookback
the list fingerprints of `extract` catch it, and a backfill of the day always does.

The audit never reads the warehouse. What it compares with (`StoredWindow`: the stored calls
of its days, by day, and their stored transcripts) is read by the caller, on the caller's
thread, and handed in as plain data: the `audit` command reads it before it starts; a sync
reads it between two loads, once the loads it audits are committed (`AuditWindow` says which
days).

Two entry points, one set of checks:
- `audit_window`: read-only, for the `audit` command (plus transcript re-checks).
- `DayAudit`: the checks as fetch jobs, for a sync's built-in audit and for a repair run: a
  segment of its own after the run's loads, whose fetched rows and erasures are loaded through
  dlt like any others. In a sync it looks at every day first (`look_ahead`, the API's side
  only), beside the run's own fetches; once the stored window is handed in, a day whose look
  agrees with it is done, any other is inspected again from the start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pendulum

from . import settings
from .api.client import NeuronClient
from .api.errors import NotFoundError
from .model import CALL_ERRORS, AuditDay, AuditReport, AuditWindow, Job, Purpose, days_between
from .pii import KEPT, Privacy
from .progress import Paging, Walk
from .rows import (
    SEGMENT_FIELDS,
    TRANSCRIPT_FIELDS,
    Row,
    call_row,
    list_view,
    transcript_is_ready,
    transcript_rows,
)

__all__ = [
    "AuditDay",
    "AuditResult",
    "AuditWindow",
    "DayAudit",
    "StoredTranscript",
    "StoredWindow",
    "audit_window",
]

TOTAL = "total"
Counts = dict[str, int]  # TOTAL and each documented disposition -> calls


class StoredTranscript(NamedTuple):
    """A stored transcript, as the audit compares it."""

    day: dt.date  # the UTC day of the call's started_at
    head: Row  # the `transcripts` row
    segments: list[Row]  # its `transcript_segments` rows, by segment_index
    speakers: dict[str, Any]  # speaker -> sentiment, from `speaker_sentiment`


@dataclass
class StoredWindow:
    """What the warehouse holds of an audit's window, read by the caller and handed in as data.

    `counts`: calls in `calls` per (UTC day of started_at, disposition); `calls`: the stored
    list-visible fields (`rows.LIST_FIELDS`) of every call of the window, by day, then id;
    `transcripts`: the stored transcripts of the window's calls by call id (None: not read)."""

    counts: dict[tuple[dt.date, str | None], int] = field(default_factory=dict)
    calls: dict[dt.date, dict[str, Row]] = field(default_factory=dict)
    transcripts: dict[str, StoredTranscript] | None = None

    def day_counts(self, first: dt.date, last: dt.date) -> dict[dt.date, Counts]:
        """TOTAL and each documented disposition, per day first..last."""
        by_day: dict[dt.date, Counter[str | None]] = {
            day: Counter() for day in days_between(first, last)
        }
        for (day, disposition), calls in self.counts.items():
            if day in by_day:
                by_day[day][disposition] += calls
        return {day: _counts(found) for day, found in by_day.items()}

    def views(self, day: dt.date) -> dict[str, Row]:
        """The day's stored calls as the list would show them, by id."""
        return {key: list_view(row) for key, row in self.calls.get(day, {}).items()}


@dataclass
class AuditResult:
    days: list[AuditDay] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return any(day.drift for day in self.days)


def day_window(day: dt.date, until: pendulum.DateTime) -> dict[str, str]:
    """The list parameters of one UTC day (both ends inclusive), never past `until`."""
    end = min(pendulum.datetime(day.year, day.month, day.day, 23, 59, 59), until)
    return {"from": f"{day.isoformat()}T00:00:00Z", "to": end.format("YYYY-MM-DDTHH:mm:ss[Z]")}


async def disposition_counts(
    client: NeuronClient, day: dt.date, until: pendulum.DateTime
) -> Counts:
    """The day's calls per documented disposition: one `limit=1` list request each."""
    params: dict[str, Any] = {**day_window(day, until), "limit": 1}
    pages = await asyncio.gather(
        *(
            client.list_calls({**params, "disposition": name})
            for name in settings.DOCUMENTED_DISPOSITIONS
        )
    )
    # no `total` in an answer: unknown, so the day counts as differing
    return {
        name: page.get("total", -1)
        for name, page in zip(settings.DOCUMENTED_DISPOSITIONS, pages, strict=True)
    }


def tally(views: Iterable[Row]) -> Counts:
    return _counts(Counter(view.get("disposition") for view in views))


def _counts(found: Counter[str | None]) -> Counts:
    counts = {TOTAL: sum(found.values())}
    counts.update({name: found[name] for name in settings.DOCUMENTED_DISPOSITIONS})
    return counts


async def list_day(
    client: NeuronClient, day: dt.date, until: pendulum.DateTime, privacy: Privacy = KEPT
) -> dict[str, Row]:
    """Every call of the day, newest first by offset; split in time where offsets stop (a day
    deeper than the API's offset cap: `progress.Paging`)."""
    window = day_window(day, until)
    walk = Walk("audit", window["from"], window["to"], window["to"], opened="")
    paging, items = Paging(walk, settings.DEFAULT_MAX_OFFSET), {}
    while True:
        page = await paging.next_page(client)
        if page is None:
            continue  # split: the rest of the day, from offset 0
        items.update(_by_id([item for item in page["data"] if walk.take(item)], privacy))
        if paging.last(page):
            return items


async def _exists(client: NeuronClient, call_id: str) -> bool:
    """False only on a 404; a call whose details fail is kept (and refetched)."""
    return await _details(client, call_id) is not None


async def _details(client: NeuronClient, call_id: str) -> Row | None:
    """The call's details; None only on a 404; {} when they fail (the call is kept)."""
    try:
        return await client.get_call(call_id)
    except NotFoundError:
        return None
    except CALL_ERRORS:
        return {}


def _lagging(detail: Row, stored: Row | None) -> bool:
    """The API has the call, on its day, as stored: only its list does not show it yet."""
    try:
        view = list_view(call_row(detail, detailed=False))
    except (KeyError, TypeError, ValueError):
        return False
    return bool(detail) and view == stored


@dataclass
class DayDrift:
    row: AuditDay
    missing: list[Row] = field(default_factory=list)  # list items
    changed: list[Row] = field(default_factory=list)  # list items
    moved: list[str] = field(default_factory=list)  # stored, not listed that day, not 404
    erased: list[str] = field(default_factory=list)  # stored, 404
    lagging: list[str] = field(default_factory=list)  # stored, not listed, the API has it as is

    def jobs(self) -> list[Job]:
        return [
            *(Job(item["id"], Purpose.MISSING, item, new=True) for item in self.missing),
            *(Job(item["id"], Purpose.CHANGED, item) for item in self.changed),
            *(Job(call_id, Purpose.CHANGED) for call_id in self.moved),
            *(Job(call_id, Purpose.ERASED) for call_id in self.erased),
        ]


@dataclass
class DayLook:
    """The API's side of one day: its counts (TOTAL and per documented disposition) and, when
    one list page holds the day, its calls by id, as listed and as list-visible fields."""

    counts: Counts
    listed: dict[str, Row] | None = None
    views: dict[str, Row] | None = None

    def agrees(self, warehouse: Counts, stored: StoredWindow, day: dt.date) -> bool:
        """Nothing differs from the warehouse as this look shows the day: no request needed."""
        if self.counts != warehouse:
            return False
        # a day bigger than a page compares by counts; a smaller one call by call
        return self.views is None or stored.views(day) == self.views


async def look_at_day(
    client: NeuronClient, day: dt.date, until: pendulum.DateTime, privacy: Privacy = KEPT
) -> DayLook:
    """The day's first list page; for a day bigger than a page, its disposition counts too.
    With erased contacts, a bigger day is listed whole: the API's counts include their calls,
    which the warehouse never holds, so only the calls themselves can be compared."""
    page = await client.list_calls({**day_window(day, until), "limit": settings.PAGE_SIZE})
    total = page.get("total")
    listed = None
    if total is not None and total <= len(page["data"]):  # the whole day in one page
        listed = _by_id(page["data"], privacy)
    elif privacy.erased:
        listed = await list_day(client, day, until, privacy)
    if listed is not None:
        views = {key: api_view(item, privacy) for key, item in listed.items()}
        return DayLook(tally(views.values()), listed, views)
    counts = {TOTAL: -1 if total is None else total}
    counts.update(await disposition_counts(client, day, until))
    return DayLook(counts)


async def inspect_day(
    client: NeuronClient,
    day: dt.date,
    until: pendulum.DateTime,
    warehouse: Counts,
    stored: StoredWindow,
    keep: Iterable[str] = (),
    privacy: Privacy = KEPT,
) -> DayDrift:
    """Compare one day (see the module's docstring for what it costs). Ids in `keep` are
    never taken for erased (calls this run has just loaded)."""
    look = await look_at_day(client, day, until, privacy)
    drift = DayDrift(
        AuditDay(day, look.counts[TOTAL], warehouse[TOTAL], counts_differ=look.counts != warehouse)
    )
    listed = look.listed
    if listed is None and drift.row.counts_differ:
        listed = await list_day(client, day, until)
    if listed is not None:
        await _compare_calls(client, drift, listed, stored.views(day), keep, privacy)
        drift.row.compared = True
    return drift


def _by_id(items: list[Row], privacy: Privacy = KEPT) -> dict[str, Row]:
    """List items by id, but an erased contact's (never loaded, so never missing)."""
    return {
        item["id"]: item
        for item in items
        if isinstance(item.get("id"), str) and item["id"] and not privacy.suppressed(item)
    }


def api_view(item: Row, privacy: Privacy = KEPT) -> Row:
    """A list item's list-visible fields as the warehouse holds them under the policy."""
    return list_view(privacy.call(call_row(item, detailed=False)))


async def _compare_calls(
    client: NeuronClient,
    drift: DayDrift,
    listed: dict[str, Row],
    calls: dict[str, Row],
    keep: Iterable[str],
    privacy: Privacy = KEPT,
) -> None:
    for call_id, item in listed.items():
        have = calls.get(call_id)
        if have is None:
            drift.missing.append(item)
        elif api_view(item, privacy) != have:
            drift.changed.append(item)
    unlisted = [call_id for call_id in calls if call_id not in listed and call_id not in keep]
    found = await asyncio.gather(*(_details(client, call_id) for call_id in unlisted))
    for call_id, detail in zip(unlisted, found, strict=True):
        if detail is None:
            drift.erased.append(call_id)
        elif _lagging(detail, calls[call_id]):
            drift.lagging.append(call_id)
        else:  # stored otherwise, under another day, or its details failed: refetched
            drift.moved.append(call_id)
    drift.row.missing = len(drift.missing)
    drift.row.changed = len(drift.changed) + len(drift.moved)
    drift.row.erased = len(drift.erased)
    drift.row.lagging = len(drift.lagging)


def same_transcript(
    call_id: str,
    api: Row | None,
    stored: StoredTranscript,
    privacy: Privacy = KEPT,
    call: Row | None = None,
) -> bool:
    """The API's transcript, as the policy loads it for `call` (its calls row in clear), is
    the stored one."""
    if api is None or not transcript_is_ready(api):
        return False
    head, segments, speakers = privacy.transcript(call, transcript_rows(call_id, api))
    return (
        _pick(head, TRANSCRIPT_FIELDS) == _pick(stored.head, TRANSCRIPT_FIELDS)
        and [_pick(s, SEGMENT_FIELDS) for s in segments]
        == [_pick(s, SEGMENT_FIELDS) for s in stored.segments]
        and {s["speaker"]: s.get("sentiment") for s in speakers} == stored.speakers
    )


def _pick(row: Row, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row.get(name) for name in names)


async def changed_transcripts(
    client: NeuronClient,
    stored: Mapping[str, StoredTranscript],
    days: list[AuditDay],
    privacy: Privacy = KEPT,
) -> list[str]:
    """One `GET /calls/{id}/transcript` per stored transcript of the days: the ids whose
    transcript the API now has otherwise. Counted in each day's row."""
    if not days:
        return []
    rows = {row.day: row for row in days}
    gate = asyncio.Semaphore(settings.DEFAULT_MAX_CONCURRENCY)

    async def check(call_id: str, transcript: StoredTranscript) -> bool:
        async with gate:
            try:
                api = await client.get_transcript(call_id)
                if api is None and not await _exists(client, call_id):
                    return True  # the call itself is gone: its erasure removes the transcript
                # redacted text is compared redacted, against the contact's own name and number
                call = call_row(await client.get_call(call_id)) if privacy.pseudonymize else None
            except CALL_ERRORS:
                return True  # unknown: refetched (a repair defers it if it fails again)
        return same_transcript(call_id, api, transcript, privacy, call)

    same = await asyncio.gather(*(check(key, value) for key, value in stored.items()))
    changed = []
    for (call_id, transcript), equal in zip(stored.items(), same, strict=True):
        row = rows.get(transcript.day)
        if row is not None:
            row.transcripts_checked += 1
            row.transcripts_changed += not equal
        if not equal:
            changed.append(call_id)
    return changed


async def inspect_days(
    client: NeuronClient,
    stored: StoredWindow,
    first: dt.date,
    last: dt.date,
    until: pendulum.DateTime,
    keep: Iterable[str] = (),
    looks: Mapping[dt.date, DayLook] = {},
    privacy: Privacy = KEPT,
) -> list[DayDrift]:
    """Every day compared; a day whose look taken earlier in the run (`looks`) agrees with the
    warehouse is done without a request, any other is inspected now."""
    warehouse = stored.day_counts(first, last)

    async def inspect(day: dt.date) -> DayDrift:
        look = looks.get(day)
        if look is not None and look.agrees(warehouse[day], stored, day):
            return DayDrift(AuditDay(day, look.counts[TOTAL], warehouse[day][TOTAL]))
        return await inspect_day(client, day, until, warehouse[day], stored, keep, privacy)

    return list(await asyncio.gather(*(inspect(day) for day in days_between(first, last))))


async def audit_window(
    client: NeuronClient,
    stored: StoredWindow,
    first: dt.date,
    last: dt.date,
    *,
    transcripts: bool = False,
    until: pendulum.DateTime | None = None,
    privacy: Privacy = KEPT,
) -> AuditResult:
    """What differs between the API and the warehouse (`stored`: what it holds of the window,
    read by the caller), per UTC day first..last (not past `until`, default now); changes
    nothing. `transcripts`: one transcript request per stored transcript of the window,
    compared with the stored rows (`stored.transcripts`)."""
    until = until or pendulum.now("UTC")
    last = min(last, until.date())
    result = AuditResult()
    if first > last:
        return result
    drifts = await inspect_days(client, stored, first, last, until, privacy=privacy)
    result.days.extend(drift.row for drift in drifts)
    if transcripts:
        await changed_transcripts(client, stored.transcripts or {}, result.days, privacy)
    return result


class DayAudit:
    """The audit as fetch jobs: missing and changed calls refetched, erased ones removed.

    A sync's audit segment: `look_ahead` beside the run's own fetches (the API's side only),
    `note_loaded` with the calls each of the run's segments loaded, then `jobs` once the caller
    has read the `window` of the warehouse, every load of the run committed."""

    def __init__(
        self,
        client: NeuronClient,
        first: dt.date,
        last: dt.date,
        until: pendulum.DateTime,
        report: AuditReport,
        *,
        transcripts: bool = False,
        privacy: Privacy = KEPT,
    ) -> None:
        self.client, self.until, self.report = client, until, report
        self.privacy = privacy
        self.first, self.last = first, min(last, until.date())
        self.transcripts = transcripts
        self.looks: dict[dt.date, DayLook] | None = None  # once looked at
        self.loaded: set[str] = set()  # calls this run loaded: never taken for erased

    @property
    def window(self) -> AuditWindow:
        """What the caller reads of the warehouse for `jobs`."""
        return AuditWindow(self.first, self.last, self.transcripts)

    def note_loaded(self, loaded: Mapping[str, Row | None]) -> None:
        """The calls a segment of the run loaded in the window (None: erased)."""
        self.loaded.update(call_id for call_id, view in loaded.items() if view is not None)
        self.loaded.difference_update(call_id for call_id, view in loaded.items() if view is None)

    async def look_ahead(self) -> None:
        """The API's side of the window as it is when the run starts, while it fetches its new
        calls. A day that still agrees with the warehouse once those are loaded costs nothing
        more (an unchanged run waits on no audit request); a look that fails only means the day
        is inspected afterwards."""
        self.looks = {}
        if self.first > self.last:
            return
        days = days_between(self.first, self.last)
        looks = await asyncio.gather(
            *(look_at_day(self.client, day, self.until, self.privacy) for day in days),
            return_exceptions=True,
        )
        self.looks = {
            day: look for day, look in zip(days, looks, strict=True) if isinstance(look, DayLook)
        }

    async def jobs(self, stored: StoredWindow) -> AsyncIterator[Job]:
        """The repairs, given what the warehouse holds of the window after the run's loads."""
        if self.looks is None:  # a repair run: no fetches of its own to look beside
            await self.look_ahead()
        if self.first > self.last:
            return
        queued: set[str] = set()
        drifts = await inspect_days(
            self.client,
            stored,
            self.first,
            self.last,
            self.until,
            self.loaded,
            self.looks or {},
            self.privacy,
        )
        for drift in drifts:
            self.report.days.append(drift.row)
            for job in drift.jobs():
                queued.add(job.call_id)
                yield job
        if self.transcripts:
            days = [drift.row for drift in drifts]
            changed = await changed_transcripts(
                self.client, stored.transcripts or {}, days, self.privacy
            )
            for call_id in changed:
                if call_id not in queued:
                    yield Job(call_id, Purpose.TRANSCRIPT)
