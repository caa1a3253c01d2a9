"""Seeded, deterministic call data for the sandbox, and the clock-dependent views of it.

Everything here is pure: `generate()` builds a `Dataset` from (calls, seed, now, days), and
the `Dataset` methods render what the API would answer at a given clock time (unix seconds).
Transcripts are not stored: they are rebuilt on demand from (seed, call position).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from typing import Any

DISPOSITIONS = ("interested", "not_interested", "callback", "not_reachable", "dnd", "escalated")
#: Values the vendor added without documenting them (the sandbox emits them rarely).
UNDOCUMENTED_DISPOSITIONS = ("voicemail",)
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
TAIL_SECONDS = 900  # a burst of calls just before `now`, so some are in flight
EXTRA_SHARE = 0.01  # records carrying fields the docs do not list
RECORDING_TTL = 3600
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def iso(ts: float) -> str:
    """Unix seconds -> '2024-02-01T09:14:03Z'."""
    return _iso(int(ts))


@lru_cache(maxsize=1 << 18)
def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def sign(secret: bytes, call_id: str, expires: int) -> str:
    return hmac.new(secret, f"{call_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def verify(secret: bytes, call_id: str, expires: int, token: str) -> bool:
    return hmac.compare_digest(sign(secret, call_id, expires), token)


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

    @property
    def ended(self) -> int:
        return self.started + self.ring + self.duration


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
        pos = self.positions.get(call_id)
        if pos is None or self.calls[pos].started > now:
            return None
        return self.calls[pos]

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
        """Positions of the visible calls matching the filters, in ascending storage order."""
        lo = 0 if start is None else bisect_left(self.starts, start)
        hi = self.visible(now if end is None else min(now, end))
        if hi <= lo:
            return []
        active = [
            (index.get(value, []), attr, value)
            for index, attr, value in (
                (self.by_campaign, "campaign_id", campaign_id),
                (self.by_language, "language", language),
                (self.by_disposition, "disposition", disposition),
            )
            if value is not None
        ]
        if not active:
            return range(lo, hi)
        # Start from the shortest index slice, then check the other filters on each call.
        slices = sorted(
            (
                (li[bisect_left(li, lo) : bisect_left(li, hi)], attr, value)
                for li, attr, value in active
            ),
            key=lambda s: len(s[0]),
        )
        base = slices[0][0]
        calls = self.calls
        for _, attr, value in slices[1:]:
            base = [p for p in base if getattr(calls[p], attr) == value]
        if disposition is not None:
            # A call in flight has no disposition yet; only recent calls can be in flight.
            safe = bisect_left(base, self.visible(now - MAX_CALL_SECONDS))
            base = base[:safe] + [p for p in base[safe:] if calls[p].ended <= now]
        return base

    # -- views -----------------------------------------------------------------------------
    def call_json(
        self, c: Call, now: float, *, detail: bool, sign_url: Callable[[str], str] | None = None
    ) -> dict[str, Any]:
        final = c.ended <= now
        out: dict[str, Any] = {
            "id": c.id,
            "campaign_id": c.campaign_id,
            "contact": {"phone": c.phone, "name": c.name},
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
        return self._transcript(self.positions[c.id])

    def transcript_ready(self, c: Call, now: float) -> bool:
        return c.job_id is not None and now >= c.ended + c.transcript_delay

    def _build_transcript(self, pos: int) -> dict[str, Any]:
        return make_transcript(self.seed, pos, self.calls[pos])


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


def generate(calls: int, seed: int, now: int, days: int = 30, future_days: int = 1) -> Dataset:
    """`calls` calls dialled in the `days` before `now`, plus `future_days` of later calls
    at the same rate (advancing the clock reveals them)."""
    if calls < 0 or days < 1 or future_days < 1:
        raise ValueError("--calls must be >= 0, --days >= 1")
    rng = random.Random(seed)
    used: set[str] = set()
    campaigns = [_ident(rng, "cmp_", used) for _ in range(CAMPAIGN_COUNT)]
    campaign_cum = list(accumulate(rng.uniform(1, 5) for _ in campaigns))
    language_cum = list(accumulate(LANGUAGE_WEIGHTS))
    campaign_lang = {
        c: rng.choices(LANGUAGES[:5], weights=LANGUAGE_WEIGHTS[:5])[0] for c in campaigns
    }
    pool = max(5, int(calls * 0.55))
    contacts = []
    for _ in range(pool):
        phone = f"+91{rng.randint(6_000_000_000, 9_999_999_999)}"
        name = (
            rng.choice(NATIVE_NAMES)
            if rng.random() < 0.12
            else f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        )
        contacts.append((phone, name))

    # Times: a bulk over the span, a burst just before `now` in which a few calls are still in
    # flight and a few transcripts still processing, then one more day of future calls.
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
    # Future calls come from their own stream, so `future_days` leaves the past unchanged.
    later = random.Random(f"{seed}:future")
    horizon = now + future_days * 86_400
    times += sorted(
        [later.randint(now + 1, now + 600) for _ in range(5)]
        + [
            _business_time(later, now + 601, horizon)
            for _ in range(max(10, calls * future_days // days))
        ]
    )

    names = [o[0] for o in OUTCOMES]
    outcome_cum = list(accumulate(o[1] for o in OUTCOMES))
    bounds = {o[0]: (o[2], o[3]) for o in OUTCOMES}
    followups: list[int] = []  # contact indexes of callbacks / dnd, called again later
    out: list[Call] = []
    for i, t in enumerate(times):
        campaign = (
            None
            if rng.random() < DIRECT_SHARE
            else rng.choices(campaigns, cum_weights=campaign_cum)[0]
        )
        if campaign is not None and rng.random() < 0.7:
            language = campaign_lang[campaign]
        else:
            language = rng.choices(LANGUAGES, cum_weights=language_cum)[0]
        if followups and rng.random() < 0.3:
            contact = followups.pop(rng.randrange(len(followups)))
        else:
            contact = rng.randrange(pool)
        status, job_id, recording, delay = "completed", None, False, 0
        kind = forced.get(i)
        if kind == "in_flight":
            disposition = rng.choice(["interested", "callback", "escalated", "not_interested"])
            ring, duration = rng.randint(3, 20), rng.randint(120, 300)
        elif kind == "processing":
            disposition = rng.choice(["interested", "callback", "escalated", "not_interested"])
            ring, duration = rng.randint(5, 15), rng.randint(30, 120)
        elif rng.random() < FAILED_SHARE:
            status, disposition = "failed", "not_reachable"
            ring, duration = rng.randint(1, 15), 0
        else:
            disposition = rng.choices(names, cum_weights=outcome_cum)[0]
            lo, hi = bounds[disposition]
            ring, duration = rng.randint(3, 45), rng.randint(lo, hi)
        if duration > 0:
            recording = rng.random() < 0.97
            if kind == "processing" or (disposition != "voicemail" and rng.random() < 0.85):
                job_id = _ident(rng, "job_", used)
                delay = (
                    rng.randint(3600, 3 * 86_400) if rng.random() < 0.02 else rng.randint(30, 600)
                )
                if kind == "processing":  # ends 105..395 s before `now`: not ready at `now`
                    delay = rng.randint(400, 600)
        if disposition in ("callback", "dnd"):
            followups.append(contact)
        extra = {"agent_version": "v3.2"} if rng.random() < EXTRA_SHARE else None
        phone, name = contacts[contact]
        out.append(
            Call(
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
            )
        )
    out.sort(key=lambda c: (c.started, c.id))
    return Dataset(seed=seed, calls=out, campaigns=campaigns)


# -- transcripts -----------------------------------------------------------------------------
PHRASES: dict[str, dict[str, list[str]]] = {
    "hi": {
        "agent": [
            "नमस्ते {name} जी, मैं VInfer की तरफ़ से बात कर रहा हूँ।",
            "आपके लोन रिन्यूअल का समय आ गया है।",
            "क्या आप अभी दो मिनट बात कर सकते हैं?",
            "हमारे पास आपके लिए प्रोसेसिंग फ़ीस पर ₹2,000 की छूट है।",
            "मैं आपको हमारे वरिष्ठ सलाहकार से जोड़ रहा हूँ।",
            "धन्यवाद, आपका दिन शुभ हो।",
        ],
        "customer": [
            "हाँ, बताइए।",
            "ठीक है, मुझे और जानकारी चाहिए।",
            "ब्याज दर क्या है?",
            "अभी मैं व्यस्त हूँ, बाद में कॉल करें।",
            "मुझे इसमें कोई रुचि नहीं है।",
            "कृपया मुझे दोबारा कॉल मत कीजिए।",
            "मुझे किसी से बात करनी है।",
        ],
    },
    "hi-latn": {
        "agent": [
            "Namaste, {name} ji. Main VInfer ki taraf se baat kar raha hoon.",
            "Kya aap abhi baat kar sakte hain?",
            "Aapka loan renewal ka time aa gaya hai. Kya aap is baare mein baat karna chahenge?",
            "Processing fee par ₹2,000 ki chhoot hai.",
            "Dhanyavaad, aapka din shubh ho.",
        ],
        "customer": [
            "Haan, bataiye.",
            "Interest rate kitna hai?",
            "Abhi busy hoon, baad mein call karo.",
            "Mujhe interest nahi hai.",
            "Please mujhe dobara call mat karna.",
            "Haan, mujhe kisi se baat karni hai. Please mujhe connect karein.",
        ],
    },
    "ta": {
        "agent": [
            "வணக்கம் {name}, நான் VInfer-இல் இருந்து பேசுகிறேன்.",
            "உங்கள் கடன் புதுப்பிப்பு நேரம் வந்துவிட்டது.",
            "இப்போது பேச முடியுமா?",
            "செயலாக்கக் கட்டணத்தில் ₹2,000 தள்ளுபடி உள்ளது.",
            "நன்றி, நல்ல நாள்!",
        ],
        "customer": [
            "சரி, சொல்லுங்கள்.",
            "வட்டி விகிதம் என்ன?",
            "எனக்கு விருப்பம் இல்லை.",
            "பிறகு அழைக்கவும்.",
            "தயவுசெய்து மீண்டும் அழைக்க வேண்டாம்.",
            "ஒருவரிடம் பேச வேண்டும்.",
        ],
    },
    "te": {
        "agent": [
            "నమస్కారం {name} గారు, నేను VInfer నుండి మాట్లాడుతున్నాను.",
            "మీ లోన్ రెన్యూవల్ సమయం వచ్చింది.",
            "ధన్యవాదాలు!",
        ],
        "customer": ["సరే, చెప్పండి.", "నాకు ఆసక్తి లేదు.", "తర్వాత కాల్ చేయండి."],
    },
    "mr": {
        "agent": [
            "नमस्कार {name}, मी VInfer कडून बोलत आहे.",
            "तुमच्या कर्जाचे नूतनीकरण बाकी आहे.",
            "धन्यवाद!",
        ],
        "customer": ["हो, सांगा.", "मला रस नाही.", "नंतर फोन करा."],
    },
    "en": {
        "agent": [
            "Hello {name}, this is Neuron calling on behalf of VInfer.",
            "Your loan renewal is due — may I take two minutes?",
            "We're offering ₹2,000 off the processing fee this month.",
            "I'll connect you to a senior advisor right away.",
            "Thank you, have a nice day!",
        ],
        "customer": [
            "Yes, go ahead.",
            "What's the interest rate?",
            "I'm not interested, thanks.",
            "Can you call me back tomorrow?",
            "Please don't call me again.",
            "I'd like to speak to a person.",
        ],
    },
}
SUMMARIES = {
    "interested": "Customer expressed interest in the loan renewal and asked for the new rates.",
    "not_interested": "Customer declined the renewal offer.",
    "callback": "Customer was busy and asked to be called back later.",
    "dnd": "Customer asked not to be called again; added to do-not-disturb.",
    "escalated": "Customer requested escalation to a human agent.",
    "voicemail": "Call reached voicemail; no conversation took place.",
    "not_reachable": "Contact could not be reached.",
}
MOOD = {
    "interested": 0.5,
    "escalated": 0.15,
    "callback": 0.1,
    "not_interested": -0.25,
    "dnd": -0.6,
    "voicemail": 0.0,
    "not_reachable": 0.0,
}


def _score(x: float) -> float:
    return round(max(-1.0, min(1.0, x)), 2)


def make_transcript(seed: int, pos: int, c: Call) -> dict[str, Any]:
    """The completed transcript of call `c`, deterministic from (seed, pos)."""
    rng = random.Random(f"{seed}:{pos}")
    lang = c.language.split("-")[0]
    if lang == "hi" and rng.random() < 0.5:
        lang = "hi-latn"
    bank = PHRASES.get(lang, PHRASES["en"])
    first_name = c.name.split()[0]
    n = min(rng.randint(2, 12), max(2, c.duration // 4))
    agent_only = rng.random() < 0.05
    slot = c.duration / n
    segments: list[dict[str, Any]] = []
    for k in range(n):
        speaker = "agent" if agent_only or k % 2 == 0 else "customer"
        if k == 0:
            text = bank["agent"][0].format(name=first_name)
        else:
            text = rng.choice(bank[speaker]).replace("{name}", first_name)
        segments.append(
            {
                "speaker": speaker,
                "text": text,
                "start_time": round(k * slot + 0.15 * slot * rng.random(), 1),
                "end_time": round((k + 1) * slot - 0.15 * slot * rng.random(), 1),
                "confidence": round(rng.uniform(0.8, 0.99), 2),
            }
        )
    if rng.random() < EXTRA_SHARE * 3:
        seg = rng.choice(segments)
        seg["words"] = len(str(seg["text"]).split())
    mood = MOOD.get(c.disposition, 0.0)
    out: dict[str, Any] = {
        "call_id": c.id,
        "job_id": c.job_id,
        "status": "completed",
        "language": c.language,
        "duration_seconds": c.duration,
        "transcript": segments,
        "summary": SUMMARIES.get(c.disposition, "Call completed."),
        "sentiment": {
            "overall": _score(mood + rng.gauss(0, 0.2)),
            "by_speaker": {
                "agent": _score(0.5 + rng.gauss(0, 0.15)),
                "customer": 0.0 if agent_only else _score(mood + rng.gauss(0, 0.25)),
            },
        },
    }
    if rng.random() < EXTRA_SHARE * 3:
        out["keywords"] = rng.sample(["loan", "renewal", "interest rate", "EMI", "callback"], 2)
    return out
