"""What a running sandbox holds beside its data: the clock, the counters, the rate limit, the
knobs, and the recordings it refuses. Plain Python: no web stack."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .data import Dataset, iso
from .recordings import RECORDING_TTL, sign

ENDPOINTS = ("list", "detail", "transcript", "recording")
FAULT_KINDS = (("429", 0.3), ("500", 0.2), ("503", 0.2), ("drop", 0.15), ("truncated", 0.15))


class Clock:
    """The sandbox's notion of now: frozen at a moment, or running at `speed` from it."""

    def __init__(self, now: float, *, live: bool = False, speed: float = 1.0) -> None:
        self.live, self.speed = live, speed
        self._anchor, self._mono = float(now), time.monotonic()

    def now(self) -> float:
        if not self.live:
            return self._anchor
        return self._anchor + (time.monotonic() - self._mono) * self.speed

    def set(self, now: float) -> None:
        self._anchor, self._mono = float(now), time.monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)


@dataclass
class Stats:
    by_endpoint: dict[str, Counter[str]] = field(
        default_factory=lambda: {e: Counter() for e in ENDPOINTS}
    )
    faults: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)  # per method+path+query, for faults

    def as_json(self) -> dict[str, Any]:
        by_status: Counter[str] = Counter()
        for c in self.by_endpoint.values():
            by_status.update(c)
        return {
            "total": sum(by_status.values()),
            "by_endpoint": {e: sum(c.values()) for e, c in self.by_endpoint.items()},
            "by_status": dict(by_status),
            "by_endpoint_status": {e: dict(c) for e, c in self.by_endpoint.items()},
            "faults": dict(self.faults),
        }


class TokenBucket:
    """A global token bucket: `rate` tokens a second, holding at most `capacity`."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a token was taken; else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def headers(self) -> dict[str, str]:
        """IETF draft RateLimit headers for the bucket as it is now: the limit per 1 s window,
        the requests left right now, and the seconds until the bucket is full again."""
        limit = math.floor(self.capacity)
        return {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(max(0, math.floor(self.tokens))),
            "RateLimit-Reset": str(max(0, math.ceil((self.capacity - self.tokens) / self.rate))),
            "RateLimit-Policy": f"{limit};w=1",
        }


@dataclass
class State:
    data: Dataset
    clock: Clock
    api_key: str
    secret: bytes
    seed: int
    origin: str = "http://127.0.0.1"
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    bucket: TokenBucket | None = None
    rate_limit_headers: bool = False
    max_offset: int | None = None  # the list refuses deeper offsets with a 400, like many APIs
    refused_recordings: set[str] = field(default_factory=set)
    stats: Stats = field(default_factory=Stats)
    jitter: random.Random = field(default_factory=random.Random)

    def set_rate_limit(self, rps: float | None) -> None:
        self.bucket = TokenBucket(rps) if rps else None

    def config_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "fault_rate": self.fault_rate,
            "rate_limit": self.bucket.rate if self.bucket else None,
            "rate_limit_headers": self.rate_limit_headers,
            "max_offset": self.max_offset,
        }

    def recording_url(self, call_id: str) -> str:
        expires = int(self.clock.now()) + RECORDING_TTL
        token = sign(self.secret, call_id, expires)
        return f"{self.origin}/recordings/{call_id}.wav?token={token}&expires={expires}"

    def call_json(self, call_id: str) -> dict[str, Any] | None:
        """The call as GET /v1/calls/{id} answers now; None when it answers 404."""
        now = self.clock.now()
        call = self.data.get(call_id, now)
        if call is None:
            return None
        return self.data.call_json(call, now, detail=True, sign_url=self.recording_url)

    def truth(self) -> dict[str, Any]:
        """What the API converges to at the clock: every call that exists, listed yet or not."""
        now = self.clock.now()
        data = self.data
        existing = data.existing(now)
        return {
            "now": iso(now),
            "calls": [
                data.call_json(c, now, detail=True, sign_url=self.recording_url) for c in existing
            ],
            "transcripts": {
                c.id: data.transcript_json(c, now)
                for c in existing
                if data.transcript_ready(c, now) and c.ended <= now
            },
        }

    def drift_json(self) -> dict[str, Any]:
        """The drift applied so far, by call id."""
        data = self.data
        ids = [c.id for c in data.calls]
        return {
            "relabelled": sorted(ids[p] for p in data.generated if p not in data.erased),
            "erased": sorted(ids[p] for p in data.erased),
            "delayed_listing": {
                ids[p]: iso(t) for p, t in sorted(data.listed_from.items()) if p not in data.erased
            },
            "retranscribed": {
                ids[p]: {"revision": r.number, "segments": r.segments}
                for p, r in sorted(data.revisions.items())
                if p not in data.erased
            },
            "refused_recordings": sorted(self.refused_recordings),
        }

    def fault_for(self, method: str, target: str) -> str | None:
        """A reproducible fault decision: hash of (seed, request, attempt number)."""
        if self.fault_rate <= 0:
            return None
        key = f"{method} {target}"
        attempt = self.stats.attempts[key]
        self.stats.attempts[key] += 1
        digest = hashlib.blake2b(f"{self.seed}|{key}|{attempt}".encode(), digest_size=16).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        if roll >= self.fault_rate:
            return None
        pick = int.from_bytes(digest[8:], "big") / 2**64
        for kind, share in FAULT_KINDS:
            if pick < share:
                return kind
            pick -= share
        return FAULT_KINDS[-1][0]
