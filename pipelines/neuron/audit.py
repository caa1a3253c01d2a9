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

Two entry points, one set of checks:
- `audit_window`: read-only, for the `audit` command (plus transcript re-checks).
- `DayAudit`: the checks as fetch jobs (`extract.AuditStep`), for a sync's built-in audit and
  for a repair run; the fetched rows and erasures are loaded through dlt like any others. In a
  sync it looks at every day first (`look_ahead`), beside the run's own fetches; once those are
  done, a day whose look agrees with the warehouse as the run leaves it is done, any other is
  inspected again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import pendulum

from . import settings
from .api.client import NeuronClient
from .api.errors import NotFoundError
from .model import CALL_ERRORS, AuditDay, AuditReport, Job, Purpose
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
    "DayAudit",
    "StoredTranscript",
    "WarehouseReader",
    "audit_window",
]

TOTAL = "total"
Counts = dict[str, int]  # TOTAL and each documented disposition -> calls

# the compared columns of a stored transcript (its key and the tombstone flag aside)


class StoredTranscript(NamedTuple):
    day: dt.date  # the UTC day of the call's started_at
    head: Row  # the `transcripts` row
    segments: list[Row]  # its `transcript_segments` rows, by segment_index
    speakers: dict[str, Any]  # speaker -> sentiment, from `speaker_sentiment`


class WarehouseReader(Protocol):
    def day_counts(self, first: dt.date, last: dt.date) -> dict[tuple[dt.date, str | None], int]:
        """Calls in `calls` per UTC day of started_at (first..last inclusive) x disposition."""
        ...

    def day_calls(self, days: list[dt.date]) -> dict[dt.date, dict[str, dict[str, Any]]]:
        """The stored list-visible fields of every call started on those UTC days, by day, then
        id (`rows.LIST_FIELDS`: campaign_id, contact_phone, contact_name, status, disposition,
        duration_seconds, language, started_at, ended_at); one question for all the days."""
        ...

    def stored_transcripts(self, first: dt.date, last: dt.date) -> dict[str, StoredTranscript]:
        """The stored transcripts of the calls started first..last (UTC days), by call id."""
        ...


@dataclass
class AuditResult:
    days: list[AuditDay] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return any(day.drift for day in self.days)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


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


def _day_of(view: Row) -> dt.date | None:
    started = view.get("started_at")
    return dt.date.fromisoformat(started[:10]) if isinstance(started, str) else None


class StoredCalls:
    """The warehouse's calls as they will be after this run: as read (`read`, before this run
    loads anything), overlaid with the list-visible fields of the calls this run loads
    (`loaded`, final once the run's new calls are fetched; None for an erased call)."""

    def __init__(self, reader: WarehouseReader, loaded: Mapping[str, Row | None] = {}) -> None:
        self.reader = reader
        self.loaded = loaded
        self._counts: dict[tuple[dt.date, str | None], int] | None = None
        self._stored: dict[dt.date, dict[str, Row]] = {}  # as read
        self._days: dict[dt.date, dict[str, Row]] = {}  # overlaid

    def read(self, first: dt.date, last: dt.date) -> None:
        """The window's calls per day and disposition, then the calls of every day that fits a
        list page (the audit compares those call by call): one question each, once."""
        if self._counts is not None:
            return
        self._counts = self.reader.day_counts(first, last)
        per_day: Counter[dt.date] = Counter()
        for (day, _), calls in self._counts.items():
            per_day[day] += calls
        small = [day for day in days_between(first, last) if per_day[day] <= settings.PAGE_SIZE]
        stored = self.reader.day_calls(small) if small else {}
        for day in small:
            self._stored[day] = stored.get(day, {})

    def counts(self, first: dt.date, last: dt.date) -> dict[dt.date, Counts]:
        self.read(first, last)
        assert self._counts is not None
        by_day: dict[dt.date, Counter[str | None]] = {
            day: Counter() for day in days_between(first, last)
        }
        for (day, disposition), calls in self._counts.items():
            if day in by_day:
                by_day[day][disposition] += calls
        counts = {day: _counts(found) for day, found in by_day.items()}
        touched = {_day_of(view) for view in self.loaded.values() if view is not None}
        for day in counts:
            if day in touched:  # counted again from the calls, with this run's overlaid
                counts[day] = tally(self.calls(day).values())
        return counts

    def calls(self, day: dt.date) -> dict[str, Row]:
        if day not in self._days:
            if day not in self._stored:  # a day bigger than a page
                self._stored[day] = self.reader.day_calls([day]).get(day, {})
            self._days[day] = self._overlaid(day, self._stored[day])
        return self._days[day]

    def _overlaid(self, day: dt.date, stored: dict[str, Row]) -> dict[str, Row]:
        calls = {key: list_view(row) for key, row in stored.items()}
        for call_id, view in self.loaded.items():
            if view is not None and _day_of(view) == day:
                calls[call_id] = view
            else:
                calls.pop(call_id, None)  # erased, or loaded under another day
        return calls


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

    def agrees(self, warehouse: Counts, stored: StoredCalls, day: dt.date) -> bool:
        """Nothing differs from the warehouse as this look shows the day: no request needed."""
        if self.counts != warehouse:
            return False
        # a day bigger than a page compares by counts; a smaller one call by call
        return self.views is None or stored.calls(day) == self.views


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
    stored: StoredCalls,
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
        await _compare_calls(client, drift, listed, stored.calls(day), keep, privacy)
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
    client: NeuronClient, reader: WarehouseReader, days: list[AuditDay], privacy: Privacy = KEPT
) -> list[str]:
    """One `GET /calls/{id}/transcript` per stored transcript of the days: the ids whose
    transcript the API now has otherwise. Counted in each day's row."""
    if not days:
        return []
    rows = {row.day: row for row in days}
    stored = reader.stored_transcripts(days[0].day, days[-1].day)
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
    stored: StoredCalls,
    first: dt.date,
    last: dt.date,
    until: pendulum.DateTime,
    keep: Iterable[str] = (),
    looks: Mapping[dt.date, DayLook] = {},
    privacy: Privacy = KEPT,
) -> list[DayDrift]:
    """Every day compared; a day whose look taken earlier in the run (`looks`) agrees with the
    warehouse is done without a request, any other is inspected now."""
    warehouse = stored.counts(first, last)

    async def inspect(day: dt.date) -> DayDrift:
        look = looks.get(day)
        if look is not None and look.agrees(warehouse[day], stored, day):
            return DayDrift(AuditDay(day, look.counts[TOTAL], warehouse[day][TOTAL]))
        return await inspect_day(client, day, until, warehouse[day], stored, keep, privacy)

    return list(await asyncio.gather(*(inspect(day) for day in days_between(first, last))))


async def audit_window(
    client: NeuronClient,
    reader: WarehouseReader,
    first: dt.date,
    last: dt.date,
    *,
    transcripts: bool = False,
    until: pendulum.DateTime | None = None,
    privacy: Privacy = KEPT,
) -> AuditResult:
    """What differs between the API and the warehouse, per UTC day first..last (not past
    `until`, default now); changes nothing. `transcripts`: one transcript request per stored
    transcript of the window, compared with the stored rows."""
    until = until or pendulum.now("UTC")
    last = min(last, until.date())
    result = AuditResult()
    if first > last:
        return result
    drifts = await inspect_days(client, StoredCalls(reader), first, last, until, privacy=privacy)
    result.days.extend(drift.row for drift in drifts)
    if transcripts:
        await changed_transcripts(client, reader, result.days, privacy)
    return result


class DayAudit:
    """The audit as fetch jobs: missing and changed calls refetched, erased ones removed."""

    def __init__(
        self,
        client: NeuronClient,
        reader: WarehouseReader,
        first: dt.date,
        last: dt.date,
        until: pendulum.DateTime,
        report: AuditReport,
        *,
        transcripts: bool = False,
        privacy: Privacy = KEPT,
    ) -> None:
        self.client, self.reader, self.until, self.report = client, reader, until, report
        self.privacy = privacy
        self.first, self.last = first, min(last, until.date())
        self.transcripts = transcripts
        self.stored = StoredCalls(reader)
        self.looks: dict[dt.date, DayLook] = {}

    async def look_ahead(self) -> None:
        """Both sides of the window as they are when the run starts, while it fetches its new
        calls: the API's days, then the warehouse's calls. A day that still agrees once those
        calls are fetched costs nothing more (an unchanged run waits on no audit request); a
        look that fails only means the day is inspected afterwards."""
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
        with contextlib.suppress(Exception):  # read again by `jobs`, which reports a failure
            self.stored.read(self.first, self.last)

    async def jobs(self, loaded: Mapping[str, Row | None]) -> AsyncIterator[Job]:
        if self.first > self.last:
            return
        stored, self.stored.loaded = self.stored, loaded
        keep = {call_id for call_id, view in loaded.items() if view is not None}
        queued: set[str] = set()
        drifts = await inspect_days(
            self.client, stored, self.first, self.last, self.until, keep, self.looks, self.privacy
        )
        for drift in drifts:
            self.report.days.append(drift.row)
            for job in drift.jobs():
                queued.add(job.call_id)
                yield job
        if self.transcripts:
            days = [drift.row for drift in drifts]
            for call_id in await changed_transcripts(self.client, self.reader, days, self.privacy):
                if call_id not in queued:
                    yield Job(call_id, Purpose.TRANSCRIPT)
