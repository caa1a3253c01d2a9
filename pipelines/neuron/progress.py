"""How far a listing has come: windows walked newest first, committed in checkpoints.

`GET /calls` lists newest first by offset. A window (`from`..`to`, both inclusive) is walked with
its `to` fixed, so calls dialled meanwhile (above `to`) shift no offset. The window is
`lower`..`upper` (fixed). As items go by, the walk keeps its boundary: `reached`, the
`started_at` of the last call listed (it moves down from `upper` towards `lower`), and `done`,
the ids listed at that very second. Every call above `reached`, and those ids at it, are listed;
the rest of the window is `lower`..`reached` without `done`. dlt commits the walk with the rows
of the calls it describes (the source state), so after a stop the next segment, or the next
run, lists exactly what is left: nothing twice, nothing skipped, also when many calls share the
boundary second.

State layout (`walks` in the source state), oldest opened first:
    {"kind": "history" | "backfill", "lower": ISO | None, "upper": ISO (the window's `to` when
     opened), "reached": ISO, "done": [ids], "filters": {...}, "opened": ISO (the run),
     "listed": calls listed so far, "left": calls left at the last page (the list's `total`
     minus what was listed of it), "seconds": time spent listing}
`plan_window` opens the run's own window as a walk. `history` walks belong to the sync (the
first sync, a full refresh, an incremental window cut by a checkpoint); `backfill` walks to a
window a user asked for, which any later sync finishes.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pendulum

from . import settings
from .api.client import NeuronClient
from .api.errors import NeuronError, UnexpectedStatusError
from .model import Segments, SyncPlan
from .rows import Row, iso_utc, parse_timestamp
from .versions import current

log = logging.getLogger(__name__)

WALKS = "walks"  # the key of the walks in the source state
HISTORY, BACKFILL = "history", "backfill"


@dataclass
class Walk:
    """One window, listed newest first, and how far down it is listed."""

    kind: str
    lower: str | None  # the window's lower bound (the list's `from`; None: the first call)
    upper: str  # its upper bound (the list's `to` when it was opened)
    reached: str  # how far down it is listed: the started_at of the last call listed
    opened: str
    filters: dict[str, str] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    listed: int = 0
    left: int | None = None
    seconds: float = 0.0

    @classmethod
    def open(
        cls,
        kind: str,
        start: pendulum.DateTime | None,
        end: pendulum.DateTime,
        opened: pendulum.DateTime,
        filters: dict[str, str] | None = None,
    ) -> Walk:
        upper, lower = iso_utc(end), iso_utc(start) if start else None
        return cls(kind, lower, upper, upper, iso_utc(opened), filters or {})

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Walk:
        """A walk from the state (`versions.migrate` gave it this shape): field by field, so
        a renamed field fails here, by name, not somewhere in a run."""
        return cls(
            kind=entry["kind"],
            lower=entry["lower"],
            upper=entry["upper"],
            reached=entry["reached"],
            opened=entry["opened"],
            filters=dict(entry.get("filters") or {}),
            done=list(entry.get("done") or []),
            listed=int(entry.get("listed", 0)),
            left=entry.get("left"),
            seconds=float(entry.get("seconds", 0.0)),
        )

    def params(self) -> dict[str, str]:
        """The list's parameters for what is left: `to` is the boundary second, inclusive."""
        params = dict(self.filters)
        if self.lower is not None:
            params["from"] = self.lower
        params["to"] = self.reached
        return params

    def take(self, item: Row) -> bool:
        """Move the boundary past one listed item; False when it was listed before (an id done
        at the boundary second) or lies above the window. An item above the boundary but in the
        window (a list not quite newest first) is listed; the boundary only moves down."""
        started = parse_timestamp(item.get("started_at"))
        call_id = item.get("id")
        if started is None or not isinstance(call_id, str):
            return True  # cannot be placed: listed, the boundary stays
        reached = _moment(self.reached)
        if started > _moment(self.upper) or (started == reached and call_id in self.done):
            return False
        if started < reached:
            self.reached, self.done = iso_utc(started), []
        if started == _moment(self.reached):
            self.done.append(call_id)
        self.listed += 1
        if self.left is not None:
            self.left = max(self.left - 1, 0)
        return True

    @property
    def moves_cursor(self) -> bool:
        return self.kind == HISTORY


class WindowTooDeep(NeuronError):
    """More calls share one second than the list's offsets reach: no split can list them."""


class Paging:
    """A walk's list pages, by offset under a `to` fixed for the part being paged.

    Many APIs refuse offsets past a cap (a 400). When the next offset would pass `max_offset`,
    or the API refuses one, the window is split in time at the walk's boundary: every call
    above it is listed, so the part below (`start` .. the boundary second) is listed afresh,
    newest first from offset 0; `Walk.take` skips the ids done at that second. The walk's state
    is the same as without a split, so checkpoints and the cursor keep their guarantees. A
    split that finds the boundary where the last one left it (more calls at one second than
    the offsets reach) cannot go on: `WindowTooDeep`.
    """

    def __init__(self, walk: Walk, max_offset: int) -> None:
        self.walk, self.max_offset = walk, max_offset
        self.offset, self.params, self.anchor = 0, walk.params(), self._boundary()

    def _boundary(self) -> tuple[str, int]:
        return self.walk.reached, len(self.walk.done)

    async def next_page(self, client: NeuronClient) -> dict[str, Any] | None:
        """The next page of the part; None when the window was split instead (ask again)."""
        if self.offset > self.max_offset:
            self._split(f"offset {self.offset} is past {settings.env_var('max_offset')}")
            return None
        params = {**self.params, "limit": settings.PAGE_SIZE, "offset": self.offset}
        try:
            page = await client.list_calls(params)
        except UnexpectedStatusError as exc:
            if exc.status_code != 400 or self.offset == 0:
                raise  # not the offset: the same list answered at offset 0
            self._split(f"the API refused offset {self.offset} ({exc})")
            return None
        data, total = page["data"], page.get("total")
        self.offset += len(data)
        if total is not None:
            self.walk.left = max(total - self.offset, 0)
        return page

    def last(self, page: dict[str, Any]) -> bool:
        """The part's last page; `total` is trusted when given (a server may cap its pages)."""
        data, total = page["data"], page.get("total")
        if total is not None:
            return not data or self.offset >= total
        return not data or len(data) < settings.PAGE_SIZE

    def _split(self, why: str) -> None:
        if self._boundary() == self.anchor:
            raise WindowTooDeep(
                f"{len(self.walk.done)} calls listed at {self.walk.reached} and more at that "
                f"second than the list's offsets reach ({why}): the window cannot be split "
                f"further in time; if the API allows deeper offsets, raise "
                f"{settings.env_var('max_offset')} (now {self.max_offset})"
            )
        log.debug("window split at %s: %s; listing the rest from offset 0", self.walk.reached, why)
        self.offset, self.params, self.anchor = 0, self.walk.params(), self._boundary()


def plan_window(
    state: dict[str, Any],
    plan: SyncPlan,
    start_date: pendulum.DateTime | None,
    segments: Segments | None = None,
) -> None:
    """The run's own window, opened as a walk in the state by its first segment: an incremental
    run lists from the cursor minus the lookback (or the start date) to now and audits the last
    `audit_days` UTC days (the first run loads everything, so no audit); a backfill its window.
    Later segments of the run open nothing: they go on with the walks left in the state."""
    segments = segments if segments is not None else Segments()
    if not segments.continuing:
        segments.opened = iso_utc(plan.now)
    plan.opened = segments.opened
    if segments.continuing:
        plan.start = plan.end = None
        if segments.audits:
            _plan_audit(plan, start_date)
        return
    if plan.incremental:
        cursor = parse_timestamp(state.get("cursor"))
        plan.start = cursor - plan.lookback if cursor else start_date
        plan.end = plan.api_clock
        segments.audits = cursor is not None and plan.audit_days > 0
        if segments.audits:
            _plan_audit(plan, start_date)
    if plan.lists:
        kind = HISTORY if plan.incremental else BACKFILL
        end = min(plan.end or plan.api_clock, plan.api_clock)
        if plan.start is None or plan.start <= end:
            opened = Walk.open(kind, plan.start, end, plan.now, plan.filters)
            save_walks(state, [opened, *walks_of(state)])


def _plan_audit(plan: SyncPlan, start_date: pendulum.DateTime | None) -> None:
    today = plan.api_clock.date()  # the API's today
    first = today - dt.timedelta(days=plan.audit_days - 1)
    if start_date is not None:  # only whole days after the start date: none was loaded before
        midnight = start_date.time() == dt.time(0)
        first = max(first, start_date.date() + dt.timedelta(days=0 if midnight else 1))
    if first <= today:
        plan.audit_from, plan.audit_to = first, today


def _moment(value: str) -> pendulum.DateTime:
    moment = parse_timestamp(value)
    assert moment is not None, value
    return moment


def walks_of(state: dict[str, Any]) -> list[Walk]:
    """The open walks of a state, also of one an older release wrote (read in this shape)."""
    return [Walk.of(entry) for entry in current(state).get(WALKS, [])]


def save_walks(state: dict[str, Any], walks: list[Walk]) -> None:
    """The walks still open, in the state (none: the key is dropped)."""
    if walks:
        state[WALKS] = [asdict(walk) for walk in walks]
    else:
        state.pop(WALKS, None)


def describe(walk: Walk) -> str:
    """One line of `status` about an open walk: how far back, how many so far, what is left."""
    window = f"{_day(walk.lower) if walk.lower else 'the first call'} .. {_day(walk.upper)}"
    what = "history" if walk.kind == HISTORY else "backfill"
    line = (
        f"{what} {window}: loaded newest first back to {walk.reached}, {walk.listed:,} calls so far"
    )
    if walk.left is not None:
        line += f"; about {walk.left:,} calls left"
        if walk.listed > 0 and walk.seconds > 0:
            line += f", ~{duration(walk.left * walk.seconds / walk.listed)} at the pace seen"
    return line


def _day(value: str) -> str:
    return value[:10]


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
