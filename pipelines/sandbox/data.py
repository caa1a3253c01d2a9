"""Seeded, deterministic call data for the sandbox, and the clock-dependent views of it.

`generate()` builds a `Dataset` from (calls, seed, now, days), and the `Dataset` methods render
what the API would answer at a given clock time (unix seconds). Transcripts are not stored:
they are rebuilt on demand from (seed, call position). The only state that changes after
generation is drift (`relabel`, `erase`, `delay_listing`, `retranscribe`): what happens to
records at the vendor after they were first served.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import accumulate
from typing import Any

from .transcripts import make_transcript, plant_pii, planted_pii, remake_transcript

DISPOSITIONS = ("interested", "not_interested", "callback", "not_reachable", "dnd", "escalated")
#: Values the vendor added without documenting them (the sandbox emits them rarely).
UNDOCUMENTED_DISPOSITIONS = ("voicemail",)
FINAL_STATUSES = ("completed", "failed")
LANGUAGES = ("hi-IN", "en-IN", "ta-IN", "te-IN", "mr-IN", "bn-IN", "kn-IN")
LANGUAGE_WEIGHTS = (40, 20, 15, 8, 7, 5, 5)
CAMPAIGN_COUNT = 6
DIRECT_SHARE = 0.10
FAILED_SHARE = 0.04
#: (disposition, weight, min duration, max duration) for calls that were not `failed`.
OUTCOMES = (
    ("not_reachable", 25.0, 0, 0),
    ("not_interested", 22.0, 15, 120),
    ("interested", 16.0, 60, 420),
    ("callback", 17.0, 20, 150),
    ("dnd", 5.0, 8, 45),
    ("escalated", 8.0, 45, 360),
    ("voicemail", 0.5, 8, 30),
)
MAX_CALL_SECONDS = 45 + 420  # longest ring + longest talk: older calls are surely final
# Connect rates vary with the hour: the weight of `not_reachable` above is scaled by this factor
# for the hour (IST, UTC+05:30) the call starts in: few answer at night, at lunch or late in the
# evening, most in the late afternoon.
UNREACHABLE_BY_IST_HOUR = (
    (3.0,) * 8  # 00-07
    + (2.2, 1.6, 1.1, 0.8, 1.0, 2.2, 1.5, 0.9, 0.6, 0.45, 0.4, 0.7, 1.8)  # 08-20
    + (2.5,) * 3  # 21-23
)
IST_OFFSET_SECONDS = 19_800
# A campaign dials again the contacts it did not reach (not_reachable, failed), up to
# MAX_ATTEMPTS times; later attempts connect less often: each earlier attempt adds this share
# of its weight to not_reachable's.
REDIAL_SHARE = 0.35  # the share of calls that are such redials, while any are due
MAX_ATTEMPTS = 5
REDIAL_UNREACHABLE = 0.7
# One callback in this many is left waiting (no follow-up call), as in a real campaign; decided by
# the call's start second, so the random stream, and so every other call, stays the same.
CALLBACK_LEFT_EVERY = 4
# One call in this many shows no phone, and one in this many of those without a transcript no
# name (the vendor's contact record lacks it; a transcript would still say the name, which a
# redaction could then not know): a call without a phone is a contact of its own. Decided by the
# start second too.
NO_PHONE_EVERY = 50
NO_NAME_EVERY = 40
TAIL_SECONDS = 900  # a burst of calls just before `now`, so some are in flight
EXTRA_SHARE = 0.01  # records carrying fields the docs do not list
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def iso(ts: float) -> str:
    """Unix seconds -> '2024-02-01T09:14:03Z'."""
    return _iso(int(ts))


@lru_cache(maxsize=1 << 18)
def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(slots=True, frozen=True)
class Call:
    """One call as scheduled; what the API shows of it depends on the clock."""

    id: str
    campaign_id: str | None
    phone: str
    name: str
    language: str
    started: int
    ring: int
    duration: int
    status: str  # final status: completed | failed
    disposition: str
    job_id: str | None
    recording: bool
    transcript_delay: int
    extra: dict[str, Any] | None = None
    # what the API's `contact` lacks; the transcript still knows the person
    no_phone: bool = False
    no_name: bool = False

    @property
    def ended(self) -> int:
        return self.started + self.ring + self.duration


class DriftConflict(ValueError):
    """The drift asked for does not fit the call (not final yet, or no transcript job)."""


@dataclass(frozen=True)
class Revision:
    """A re-generated transcript: its number, its segment count, and the call it was made from."""

    number: int
    segments: int
    call: Call


@dataclass
class Dataset:
    seed: int
    calls: list[Call]  # ascending by (started, id); the API lists them in reverse
    starts: list[int] = field(default_factory=list)
    campaigns: list[str] = field(default_factory=list)
    by_campaign: dict[str, list[int]] = field(default_factory=dict)
    by_language: dict[str, list[int]] = field(default_factory=dict)
    by_disposition: dict[str, list[int]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    # drift, by call position
    erased: set[int] = field(default_factory=set)
    listed_from: dict[int, int] = field(default_factory=dict)  # unix time it enters the list
    revisions: dict[int, Revision] = field(default_factory=dict)
    generated: dict[int, Call] = field(default_factory=dict)  # relabelled calls as generated
    plant_pii: bool = False  # transcripts carry the contact's identifiers (`planted_pii`)

    def __post_init__(self) -> None:
        self.starts = [c.started for c in self.calls]
        for pos, c in enumerate(self.calls):
            self.positions[c.id] = pos
            if c.campaign_id is not None:
                self.by_campaign.setdefault(c.campaign_id, []).append(pos)
            self.by_language.setdefault(c.language, []).append(pos)
            self.by_disposition.setdefault(c.disposition, []).append(pos)
        self._transcript = lru_cache(maxsize=4096)(self._build_transcript)

    # -- lookups ---------------------------------------------------------------------------
    def visible(self, now: float) -> int:
        """Number of calls dialled at `now` (they are the first ones in storage order)."""
        return bisect_right(self.starts, now)

    def get(self, call_id: str, now: float) -> Call | None:
        """The call as GET /calls/{id} knows it: dialled by `now` and not erased."""
        pos = self.positions.get(call_id)
        if pos is None or pos in self.erased or self.calls[pos].started > now:
            return None
        return self.calls[pos]

    def existing(self, now: float) -> list[Call]:
        """Every call GET /calls/{id} answers at `now`, newest first (listed yet or not)."""
        calls = self.calls
        return [calls[p] for p in range(self.visible(now) - 1, -1, -1) if p not in self.erased]

    def select(
        self,
        now: float,
        *,
        campaign_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        disposition: str | None = None,
        language: str | None = None,
    ) -> Sequence[int]:
        """Positions of the listed calls matching the filters, in ascending storage order."""
        lo = 0 if start is None else bisect_left(self.starts, start)
        hi = self.visible(now if end is None else min(now, end))
        if hi <= lo:
            return []
        filters = {"campaign_id": campaign_id, "language": language, "disposition": disposition}
        active = {attr: value for attr, value in filters.items() if value is not None}
        rows = self._filtered(lo, hi, active) if active else range(lo, hi)
        if disposition is not None:
            rows = self._final_only(rows, now)
        return self._listed_only(rows, now)

    def _filtered(self, lo: int, hi: int, active: dict[str, str]) -> list[int]:
        """Positions in [lo, hi) matching every filter: the shortest index slice, then checks."""
        indexes = {
            "campaign_id": self.by_campaign,
            "language": self.by_language,
            "disposition": self.by_disposition,
        }
        slices = []
        for attr, value in active.items():
            index = indexes[attr].get(value, [])
            slices.append((index[bisect_left(index, lo) : bisect_left(index, hi)], attr, value))
        slices.sort(key=lambda s: len(s[0]))
        base = slices[0][0]
        calls = self.calls
        for _, attr, value in slices[1:]:
            base = [p for p in base if getattr(calls[p], attr) == value]
        return base

    def _final_only(self, rows: Sequence[int], now: float) -> list[int]:
        """A call in flight has no disposition yet; only recent calls can be in flight."""
        safe = bisect_left(rows, self.visible(now - MAX_CALL_SECONDS))
        calls = self.calls
        return [*rows[:safe], *(p for p in rows[safe:] if calls[p].ended <= now)]

    def _listed_only(self, rows: Sequence[int], now: float) -> Sequence[int]:
        """Drop erased calls and calls whose listing is delayed past `now`."""
        gone = self.erased | {p for p, t in self.listed_from.items() if now < t}
        if not gone or not any(p in rows for p in gone):
            return rows
        return [p for p in rows if p not in gone]

    # -- views -----------------------------------------------------------------------------
    def call_json(
        self, c: Call, now: float, *, detail: bool, sign_url: Callable[[str], str] | None = None
    ) -> dict[str, Any]:
        final = c.ended <= now
        out: dict[str, Any] = {
            "id": c.id,
            "campaign_id": c.campaign_id,
            "contact": {
                "phone": None if c.no_phone else c.phone,
                "name": None if c.no_name else c.name,
            },
            "status": c.status if final else "in_progress",
            "disposition": c.disposition if final else None,
            "duration_seconds": c.duration if final else None,
            "language": c.language,
            "started_at": iso(c.started),
            "ended_at": iso(c.ended) if final else None,
        }
        if detail:
            out["transcript_job_id"] = c.job_id if final else None
            out["recording_url"] = (
                sign_url(c.id) if final and c.recording and sign_url is not None else None
            )
        if c.extra:
            out.update(c.extra)
        return out

    def transcript_json(self, c: Call, now: float) -> dict[str, Any] | None:
        """None when the call has no transcript job (yet); else processing or completed."""
        if c.job_id is None or c.ended > now:
            return None
        if now < c.ended + c.transcript_delay:
            return {"status": "processing"}
        pos = self.positions[c.id]
        revision = self.revisions.get(pos)
        if revision is not None:
            return remake_transcript(
                self.seed, pos, revision.call, revision.number, revision.segments
            )
        return self._transcript(pos)

    def transcript_ready(self, c: Call, now: float) -> bool:
        return c.job_id is not None and now >= c.ended + c.transcript_delay

    def _build_transcript(self, pos: int) -> dict[str, Any]:
        call = self.generated.get(pos, self.calls[pos])
        transcript = make_transcript(self.seed, pos, call)
        if self.plant_pii:
            transcript = plant_pii(transcript, planted_pii(self.seed, pos, call))
        return transcript

    # -- drift: what a vendor does to records after serving them -----------------------------
    def find(self, call_id: str) -> int | None:
        """The position of a call the sandbox generated, dialled yet or not; None once erased."""
        pos = self.positions.get(call_id)
        return None if pos is None or pos in self.erased else pos

    def relabel(
        self,
        pos: int,
        now: float,
        *,
        status: str | None = None,
        disposition: str | None = None,
        duration: int | None = None,
    ) -> Call:
        """Change a final call's status, disposition or duration. Its `ended_at` stays (the
        call ended when it ended; a person corrects the labels), and so does its transcript."""
        old = self.calls[pos]
        if old.ended > now:
            raise DriftConflict(f"call {old.id!r} is not final yet; only final calls relabel")
        new = replace(
            old,
            status=old.status if status is None else status,
            disposition=old.disposition if disposition is None else disposition,
            duration=old.duration if duration is None else duration,
            ring=old.ring + old.duration - (old.duration if duration is None else duration),
        )
        self.generated.setdefault(pos, old)
        if new.disposition != old.disposition:
            index = self.by_disposition[old.disposition]
            del index[bisect_left(index, pos)]
            insort(self.by_disposition.setdefault(new.disposition, []), pos)
        self.calls[pos] = new
        return new

    def erase(self, pos: int) -> None:
        """The call is gone: no list entry, no details, transcript or recording."""
        self.erased.add(pos)

    def delay_listing(self, pos: int, seconds: int) -> int:
        """The list shows the call only from `started_at + seconds` (0 lifts the delay); its
        details answer as usual. Returns the unix time it enters the list."""
        listed_from = self.calls[pos].started + seconds
        if seconds:
            self.listed_from[pos] = listed_from
        else:
            self.listed_from.pop(pos, None)
        return listed_from

    def retranscribe(self, pos: int, segments: int) -> dict[str, Any]:
        """Re-generate the call's transcript with `segments` segments, same `job_id`, from the
        call as it is now. Returns the completed transcript the API serves once it is ready."""
        call = self.calls[pos]
        if call.job_id is None:
            raise DriftConflict(f"call {call.id!r} has no transcript job")
        previous = self.revisions.get(pos)
        number = 1 if previous is None else previous.number + 1
        self.revisions[pos] = Revision(number, segments, call)
        return remake_transcript(self.seed, pos, call, number, segments)


# -- generation ------------------------------------------------------------------------------
FIRST = [
    "Priya",
    "Rahul",
    "Anita",
    "Suresh",
    "Lakshmi",
    "Arjun",
    "Kavya",
    "Vikram",
    "Meena",
    "Imran",
    "Fatima",
    "Ravi",
    "Deepa",
    "Karthik",
    "Sneha",
    "Aditya",
    "Pooja",
    "Manoj",
]
LAST = [
    "Sharma",
    "Iyer",
    "Patel",
    "Reddy",
    "Nair",
    "Khan",
    "Gupta",
    "Menon",
    "Kulkarni",
    "Das",
    "Rao",
    "Singh",
    "Joshi",
    "Pillai",
    "Banerjee",
    "Shetty",
]
NATIVE_NAMES = [
    "प्रिया शर्मा",
    "राहुल वर्मा",
    "सुनीता देवी",
    "முருகன் சுப்பிரமணியம்",
    "லட்சுமி ராஜன்",
    "వెంకట రమణ",
    "অমিত বসু",
    "José D'Souza",
    "Zoë Fernandes",
    "ಅನಿಲ್ ಕುಮಾರ್",
]


def _ident(rng: random.Random, prefix: str, used: set[str]) -> str:
    while True:
        n, chars = rng.getrandbits(53), []
        for _ in range(9):
            n, r = divmod(n, 62)
            chars.append(ALPHABET[r])
        ident = prefix + "".join(chars)
        if ident not in used:
            used.add(ident)
            return ident


def _business_time(rng: random.Random, lo: int, hi: int) -> int:
    """A uniform time in [lo, hi], thinned outside 09:00-20:00 IST (03:30-14:30 UTC)."""
    while True:
        t = rng.randint(lo, hi)
        minute_of_day = (t // 60) % 1440
        if 210 <= minute_of_day < 870 or rng.random() < 0.1:
            return t


LANGUAGE_CUM = list(accumulate(LANGUAGE_WEIGHTS))
OUTCOME_NAMES = [o[0] for o in OUTCOMES]
OUTCOME_BOUNDS = {o[0]: (o[2], o[3]) for o in OUTCOMES}


@dataclass
class World:
    """Who is called, and by which campaign in which language."""

    campaigns: list[str]
    campaign_cum: list[float]  # cumulative campaign weights
    campaign_lang: dict[str, str]  # each campaign's usual language
    contacts: list[tuple[str, str]]  # (phone, name)
    # contacts to call again (callback, dnd); ~index: a callback left waiting
    followups: list[int] = field(default_factory=list)
    # (campaign, contact) the campaign did not reach and dials again, and the attempts so far
    redials: list[tuple[str, int]] = field(default_factory=list)
    attempts: dict[tuple[str | None, int], int] = field(default_factory=dict)


def generate(calls: int, seed: int, now: int, days: int = 30, future_days: int = 1) -> Dataset:
    """`calls` calls dialled in the `days` before `now`, plus `future_days` of later calls
    at the same rate (advancing the clock reveals them)."""
    if calls < 0 or days < 1 or future_days < 1:
        raise ValueError("--calls must be >= 0, --days >= 1")
    rng = random.Random(seed)
    used: set[str] = set()  # every id handed out, so none repeats
    world = _world(rng, used, calls)
    times, forced = _past_times(rng, calls, now, days)
    times += _future_times(seed, calls, now, days, future_days)
    out = [_dial(rng, used, world, t, forced.get(i)) for i, t in enumerate(times)]
    out.sort(key=lambda c: (c.started, c.id))
    return Dataset(seed=seed, calls=out, campaigns=world.campaigns)


def _world(rng: random.Random, used: set[str], calls: int) -> World:
    campaigns = [_ident(rng, "cmp_", used) for _ in range(CAMPAIGN_COUNT)]
    campaign_cum = list(accumulate(rng.uniform(1, 5) for _ in campaigns))
    campaign_lang = {
        c: rng.choices(LANGUAGES[:5], weights=LANGUAGE_WEIGHTS[:5])[0] for c in campaigns
    }
    contacts = []
    for _ in range(max(5, int(calls * 0.55))):
        phone = f"+91{rng.randint(6_000_000_000, 9_999_999_999)}"
        name = (
            rng.choice(NATIVE_NAMES)
            if rng.random() < 0.12
            else f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        )
        contacts.append((phone, name))
    return World(campaigns, campaign_cum, campaign_lang, contacts)


def _past_times(
    rng: random.Random, calls: int, now: int, days: int
) -> tuple[list[int], dict[int, str]]:
    """Start times of the calls before `now`, ascending, and the forced state of the last few.

    A bulk over the span, then a burst just before `now` in which a few calls are still in
    flight and a few transcripts still processing."""
    tail = min(calls, max(8, min(30, calls // 100)))
    in_flight, processing = min(tail, 3), min(max(0, tail - 3), 2)
    start = now - days * 86_400
    times = [_business_time(rng, start, now - TAIL_SECONDS) for _ in range(calls - tail)]
    times += [
        rng.randint(now - TAIL_SECONDS, now - 60) for _ in range(tail - in_flight - processing)
    ]
    times.sort()
    forced = {len(times) + k: "processing" for k in range(processing)}
    times += sorted(rng.randint(now - 400, now - 240) for _ in range(processing))
    forced.update({len(times) + k: "in_flight" for k in range(in_flight)})
    times += sorted(rng.randint(now - 59, now) for _ in range(in_flight))
    return times, forced


def _future_times(seed: int, calls: int, now: int, days: int, future_days: int) -> list[int]:
    """Calls after `now`, from their own stream, so `future_days` leaves the past unchanged."""
    later = random.Random(f"{seed}:future")
    horizon = now + future_days * 86_400
    return sorted(
        [later.randint(now + 1, now + 600) for _ in range(5)]
        + [
            _business_time(later, now + 601, horizon)
            for _ in range(max(10, calls * future_days // days))
        ]
    )


def _dial(rng: random.Random, used: set[str], world: World, t: int, kind: str | None) -> Call:
    """One call at `t`; `kind` forces it `in_flight` or `processing` at the clock's start."""
    campaign: str | None
    if world.redials and rng.random() < REDIAL_SHARE:  # a contact the campaign did not reach
        campaign, contact = world.redials.pop(rng.randrange(len(world.redials)))
    else:
        campaign = (
            None
            if rng.random() < DIRECT_SHARE
            else rng.choices(world.campaigns, cum_weights=world.campaign_cum)[0]
        )
        contact = _contact(rng, world, t)
    if campaign is not None and rng.random() < 0.7:
        language = world.campaign_lang[campaign]
    else:
        language = rng.choices(LANGUAGES, cum_weights=LANGUAGE_CUM)[0]
    attempt = world.attempts[campaign, contact] = world.attempts.get((campaign, contact), 0) + 1
    status, disposition, ring, duration = _outcome(rng, kind, t, attempt)
    if campaign is not None and duration <= 0 and attempt < MAX_ATTEMPTS:
        world.redials.append((campaign, contact))
    job_id, recording, delay = _artefacts(rng, used, kind, disposition, duration)
    if disposition in ("callback", "dnd"):
        left = disposition == "callback" and t % CALLBACK_LEFT_EVERY == 0
        world.followups.append(~contact if left else contact)
    extra = {"agent_version": "v3.2"} if rng.random() < EXTRA_SHARE else None
    phone, name = world.contacts[contact]
    return Call(
        _ident(rng, "cal_", used),
        campaign,
        phone,
        name,
        language,
        t,
        ring,
        duration,
        status,
        disposition,
        job_id,
        recording,
        delay,
        extra,
        no_phone=t % NO_PHONE_EVERY == 3,
        no_name=t % NO_NAME_EVERY == 7 and job_id is None,
    )


def _contact(rng: random.Random, world: World, t: int) -> int:
    """Someone to call back (callback, dnd) now and then, else anyone."""
    if world.followups and rng.random() < 0.3:
        contact = world.followups.pop(rng.randrange(len(world.followups)))
        if contact < 0:  # a callback left waiting: this call goes to someone else
            contact = (~contact * 7919 + t) % len(world.contacts)
        return contact
    return rng.randrange(len(world.contacts))


def _outcome(
    rng: random.Random, kind: str | None, t: int, attempt: int
) -> tuple[str, str, int, int]:
    """(final status, disposition, ring seconds, talk seconds) of the `attempt`-th call of its
    campaign to its contact, started at `t`."""
    if kind == "in_flight":
        disposition = rng.choice(["interested", "callback", "escalated", "not_interested"])
        return "completed", disposition, rng.randint(3, 20), rng.randint(120, 300)
    if kind == "processing":
        disposition = rng.choice(["interested", "callback", "escalated", "not_interested"])
        return "completed", disposition, rng.randint(5, 15), rng.randint(30, 120)
    if rng.random() < FAILED_SHARE:
        return "failed", "not_reachable", rng.randint(1, 15), 0
    hour = (t + IST_OFFSET_SECONDS) // 3600 % 24
    unreachable = UNREACHABLE_BY_IST_HOUR[hour] * (1 + REDIAL_UNREACHABLE * (attempt - 1))
    weights = [w * unreachable if name == "not_reachable" else w for name, w, _, _ in OUTCOMES]
    disposition = rng.choices(OUTCOME_NAMES, weights=weights)[0]
    lo, hi = OUTCOME_BOUNDS[disposition]
    return "completed", disposition, rng.randint(3, 45), rng.randint(lo, hi)


def _artefacts(
    rng: random.Random, used: set[str], kind: str | None, disposition: str, duration: int
) -> tuple[str | None, bool, int]:
    """(transcript job id, has a recording, seconds from the end until the transcript is ready)
    of a call that lasted `duration` seconds; unconnected calls have neither."""
    if duration <= 0:
        return None, False, 0
    recording = rng.random() < 0.97
    if kind != "processing" and (disposition == "voicemail" or rng.random() >= 0.85):
        return None, recording, 0
    job_id = _ident(rng, "job_", used)
    delay = rng.randint(3600, 3 * 86_400) if rng.random() < 0.02 else rng.randint(30, 600)
    if kind == "processing":  # ends 105..395 s before `now`: not ready at `now`
        delay = rng.randint(400, 600)
    return job_id, recording, delay
