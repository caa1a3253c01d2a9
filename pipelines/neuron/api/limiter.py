"""The rate limit a client learns: what the server's headers say, and the pace of requests.

`parse_retry_after` and `parse_rate_limit_headers` read a 429's `Retry-After` and the
`RateLimit-*` / `X-RateLimit-*` quota headers; `RateLimiter` decides when each request may go
(a shared pause, a pace learned from 429s, a start-up ramp) and tells a limit's 429s from random
ones. `NeuronClient` owns one.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from .. import settings

log = logging.getLogger(__name__)


# -- what the server says about its limit ---------------------------------------------------------

# A reset value above this is a unix time (GitHub's X-RateLimit-Reset), not seconds from now.
_UNIX_TIME_FLOOR = 1_000_000_000


class RateLimitQuota(NamedTuple):
    """What `RateLimit-*` / `X-RateLimit-*` headers say: requests left, seconds until reset."""

    limit: float | None
    remaining: float
    reset: float


def _server_now(headers: Mapping[str, str]) -> float:
    """The server's clock from its `Date` header (so clock skew does not matter), else ours."""
    date = headers.get("Date")
    if date:
        with contextlib.suppress(TypeError, ValueError):
            return email.utils.parsedate_to_datetime(date).timestamp()
    return time.time()


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `Retry-After` (delta seconds or an HTTP date), capped; None when absent."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - _server_now(headers)
        except (TypeError, ValueError):
            log.debug("ignoring an unreadable Retry-After %r", value[:40])
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), settings.RETRY_AFTER_MAX_SECONDS)


def _leading_number(value: str | None) -> float | None:
    """`"60"`, `"60, 60;w=1"` (a policy list) -> 60.0; None when there is no number."""
    if value is None:
        return None
    head = value.split(",", 1)[0].split(";", 1)[0].strip().strip('"')
    try:
        number = float(head)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# names in the IETF draft's single `RateLimit` field: `limit=60, remaining=5, reset=1` (draft 7)
# or `"default";r=5;t=1` (draft 8 on)
_DRAFT_KEYS = {
    "limit": "limit",
    "remaining": "remaining",
    "reset": "reset",
    "r": "remaining",
    "t": "reset",
}


def _quota_fields(headers: Mapping[str, str]) -> dict[str, str]:
    """limit/remaining/reset from `RateLimit-*`, `X-RateLimit-*` or the draft's `RateLimit`."""
    fields: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        if "ratelimit" not in name:
            continue
        if name == "ratelimit":
            for part in value.replace(",", ";").split(";"):
                key, _, item = part.partition("=")
                key = _DRAFT_KEYS.get(key.strip().lower(), "")
                if key and item:
                    fields.setdefault(key, item.strip())
            continue
        for prefix in ("ratelimit-", "x-ratelimit-"):
            if name.startswith(prefix) and name[len(prefix) :] in ("limit", "remaining", "reset"):
                fields.setdefault(name[len(prefix) :], value)
    return fields


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitQuota | None:
    """The quota a response announces, or None when it announces none (most responses)."""
    fields = _quota_fields(headers)
    if not fields:
        return None
    remaining, reset = (
        _leading_number(fields.get("remaining")),
        _leading_number(fields.get("reset")),
    )
    if remaining is None or reset is None:
        return None
    if reset > _UNIX_TIME_FLOOR:
        reset -= _server_now(headers)
    return RateLimitQuota(
        _leading_number(fields.get("limit")), max(remaining, 0.0), max(reset, 0.0)
    )


# -- the pace of every request -------------------------------------------------------------------


class RateLimiter:
    """The pace of every API request: a shared pause, a learned rate, a hard cap.

    - Noise or a limit, from the evidence of a window: a 429 counts as a limit's only when the
      429s among the last answers since the pace last came down are more than random ones
      explain (`_shows_limit`: at least two, and beyond the tail of the noise's Poisson law, or
      a run of them in a row that noise would hardly give). The noise share is what a slower
      pace did not remove: the 429s among answers at a pace not above the fitted limit. Any
      other 429 is noise (a busy gateway, a quota another client used a moment): its request
      waits its own `Retry-After`, like a 5xx waits its backoff, and nothing else changes.
      Neither one 429 nor a steady trickle of them sets the pace; a limit met at any speed
      answers a growing share of 429s, and slowing down removes them.
    - A shared pause: when the evidence shows a limit, every request waits out the `Retry-After`
      (or a quota at 0 until its reset), instead of each retrying into a limiter that already
      said no.
    - A start-up ramp: until a limit shows up, requests in flight start at a few and grow by one
      every few good answers, and the pace starts moderate and doubles every few good answers,
      so that few requests are in flight when a limit shows up (each of them gets a 429).
    - A learned pace, AIMD style. On a limit's 429 the limit is fitted to what got through since
      the last pause (good answers over that time plus the wait asked for), the pace set just
      under it. A decrease whose 429s the noise measured after it explains is undone.
      After each quiet interval in which the pace held requests back it goes back to the fitted
      limit, then probes above it by a step that doubles each quiet interval; far above the fitted
      limit and no longer binding, the limit counts as lifted and pacing stops. A 429 to a request
      sent before the pace came down is old news: no second decrease.
    - A quota from `RateLimit-*` / `X-RateLimit-*` headers sets the pace directly: what remains,
      spread evenly until the reset.
    - `max_rps` is a hard cap over all of it.
    - Across runs (`recall` / `memory`): while no run has met a limit, a run that reached full
      speed lets the next one start there, without the ramp; once a limit was met (429s that
      showed one, or a quota announced), every later run ramps up again.
    """

    def __init__(
        self,
        max_rps: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        slow_start: bool = True,
        max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self.cap = max_rps or None
        self.clock = clock
        self.sleep = sleep
        self.starting = slow_start  # no limit known yet, pace ramping up
        self.rate: float | None = settings.SLOW_START_REQUESTS_PER_SECOND if slow_start else None
        self.ceiling: float | None = None  # the limit fitted at the last 429
        self.probe_step = settings.RATE_PROBE_STEP
        self.resume_at = 0.0  # the shared pause ends here
        self.next_slot = 0.0  # the next free send time at the current pace
        self.generation = 0  # bumped when the pace comes down: waiting requests take new slots
        self.limited_at = -math.inf  # when the pace last came down
        self.epoch_start: float | None = None  # the fit counts good answers from here on
        self.answers: deque[float] = deque(maxlen=8192)  # times of good answers, for the fit
        self.start_answers = 0  # good answers during the start-up ramp
        self.in_flight = 0
        self.released_at = -math.inf  # when a request last ended
        self.max_concurrency = max_concurrency
        # requests in flight at most during start-up (None: no limit beyond max_concurrency)
        self.window: int | None = None
        if slow_start and max_concurrency > settings.SLOW_START_WINDOW:
            self.window = settings.SLOW_START_WINDOW
        self._room = asyncio.Event()  # set when a seat in the window may have come free
        self.adjusted_at = 0.0
        self.interval_answers = 0  # good answers since the last adjustment
        self.limit_met = False  # 429s that showed a limit, or a quota announced, this run
        # the last answers since the pace came down: True for a 429
        self.recent: deque[bool] = deque(maxlen=settings.RATE_EVIDENCE_WINDOW)
        # answers since the last decrease or block, and their 429s, at a pace not above the
        # fitted limit: every RATE_NOISE_BLOCK of them join the noise's
        self.block = [0, 0]
        self.noise_answers = 0.0
        self.noise_limited = 0.0
        # the last decrease, until a block of noise after it tells whether it was a limit's:
        # the pace, ceiling and limit_met before it, and the 429s and answers that brought it
        self.undo: tuple[float | None, float | None, bool, tuple[int, int, int]] | None = None

    # -- what one run tells the next -----------------------------------------------------------

    def recall(self, memory: dict[str, Any] | None) -> None:
        """Start from what the previous run learned (`memory()`): if it met no limit, no ramp."""
        if memory and memory.get("limit_met") is False and self.starting:
            log.debug("the last run met no rate limit: starting at full speed")
            self.starting, self.rate, self.window = False, None, None

    def memory(self, previous: dict[str, Any] | None) -> dict[str, Any] | None:
        """What this run learned for the next: a limit met (now or in an earlier run: a limit
        once met keeps the ramp on, rather than the next run bursting into it), none met at
        full speed, or (a run too short to tell) what the previous run knew."""
        if self.limit_met or (previous or {}).get("limit_met") is True:
            return {"limit_met": True}
        if not self.starting and self.window is None:
            return {"limit_met": False}
        return previous

    # -- waiting -----------------------------------------------------------------------------

    @property
    def pace(self) -> float | None:
        """Requests per second at most, now: the learned pace under the hard cap."""
        if self.rate is None:
            return self.cap
        return min(self.rate, self.cap) if self.cap else self.rate

    async def acquire(self) -> float:
        """Take a seat in the start-up window, wait out the shared pause and this request's slot.

        Returns the send time. Every `acquire()` is paired with one `release()`.
        """
        while self.window is not None and self.in_flight >= self.window:
            self._room.clear()
            await self._room.wait()
        if not self.in_flight:
            self._after_idle(self.clock())
        self.in_flight += 1
        try:
            return await self._wait_turn()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """The request is over (whatever its answer): its seat is free."""
        self.in_flight -= 1
        self.released_at = self.clock()
        if self.window is not None:
            self._room.set()

    async def _wait_turn(self) -> float:
        while True:
            now = self.clock()
            if self.epoch_start is None:
                self.epoch_start = self.adjusted_at = now
            if now < self.resume_at:
                await self.sleep(self.resume_at - now)
                continue
            self._maybe_adjust(now)
            pace = self.pace
            if not pace:
                return now
            slot = max(self.next_slot, now)
            self.next_slot = slot + 1.0 / pace
            if slot <= now:
                return now
            generation = self.generation
            await self.sleep(slot - now)
            now = self.clock()
            if generation == self.generation and now >= self.resume_at:
                return now
            # the pace came down or a pause began while this request waited: queue again

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` from now (a pause already longer stays)."""
        now = self.clock()
        resume_at = now + seconds
        if resume_at > self.resume_at:
            if now >= self.resume_at:
                log.debug("pausing every request for %.2fs", seconds)
            self.resume_at = resume_at
            self.next_slot = max(self.next_slot, resume_at)

    # -- what the answers say ----------------------------------------------------------------

    def on_answer(self, sent_at: float | None = None) -> None:
        """A good (not 429) answer to a request sent at `sent_at`: it counts for the fit and the
        noise, and speeds up the start-up ramp."""
        now = self.clock()
        self.answers.append(now)
        self.interval_answers += 1
        self.recent.append(False)
        self._count_noise(now if sent_at is None else sent_at, limited=False)
        if self.starting or self.window is not None:
            self.start_answers += 1
            if self.window is not None:
                self._widen()  # one more request in flight per good answer: x2 a round trip
            if self.starting and self.start_answers % settings.SLOW_START_DOUBLING_ANSWERS == 0:
                self._ramp_up()

    def on_rate_limited(self, sent_at: float, wait: float | None) -> None:
        """A 429 to a request sent at `sent_at`; the server asked to wait `wait` seconds.

        The request waits `wait` whatever this decides (the client's retry); every request
        waits, and the pace comes down, only when the recent answers show a limit."""
        if sent_at <= self.limited_at:
            log.debug("429 to a request sent before the pace came down: no new decrease")
            return
        self.recent.append(True)
        self._count_noise(sent_at, limited=True)
        if not self._is_limit():
            return
        self.undo = (self.rate, self.ceiling, self.limit_met, self._evidence())
        self.limit_met = True
        if wait is not None:
            self.pause(wait)
        self._decrease(self.clock(), wait or 0.0)

    # -- noise or a limit --------------------------------------------------------------------

    @property
    def noise(self) -> float:
        """The share of 429s that showed no limit: random.

        Counted in blocks of answers at a pace not above the fitted limit (so not while probing
        past it); a block cut short by a decrease does not count (those 429s were a limit's).
        A small prior weighs in as RATE_NOISE_PRIOR_ANSWERS answers: a few clean blocks are not
        taken for no noise at all."""
        prior = settings.RATE_NOISE_PRIOR_ANSWERS
        return (self.noise_limited + settings.RATE_NOISE_PRIOR * prior) / (
            self.noise_answers + prior
        )

    def _allowed(self, answers: int) -> int:
        """The most 429s among `answers` the noise explains: its Poisson tail above this is
        under RATE_EVIDENCE_ALPHA."""
        mean = self.noise * answers
        allowed, term = 0, math.exp(-mean)
        tail = 1.0 - term
        while tail >= settings.RATE_EVIDENCE_ALPHA:
            allowed += 1
            term *= mean / allowed
            tail -= term
        return max(allowed, settings.RATE_EVIDENCE_MIN_429S - 1)

    def _evidence(self) -> tuple[int, int, int]:
        """The last answers since the pace came down: the 429s at their end one after another,
        the 429s among them, and how many they are."""
        run = 0
        for limited in reversed(self.recent):
            if not limited:
                break
            run += 1
        return run, sum(self.recent), len(self.recent)

    def _shows_limit(self, run: int, limited: int, answers: int) -> bool:
        """Do these 429s show a limit, beyond the noise? A run of them in a row that noise
        would hardly give (its share to that power under RATE_EVIDENCE_RUN_CHANCE: a limit that
        ran out refuses everything it is sent), or more among the answers than the noise's
        Poisson tail allows (over at least RATE_EVIDENCE_MIN_ANSWERS answers, unless most were
        429s)."""
        likely_run = math.log(settings.RATE_EVIDENCE_RUN_CHANCE) / math.log(self.noise)
        if run >= max(settings.RATE_EVIDENCE_MIN_429S, math.ceil(likely_run)):
            return True
        if answers < settings.RATE_EVIDENCE_MIN_ANSWERS and 2 * limited < answers:
            return False
        return limited > self._allowed(answers)

    def _is_limit(self) -> bool:
        """Do the 429s among the last answers since the pace came down show a limit?"""
        evidence = self._evidence()
        if self._shows_limit(*evidence):
            return True
        log.debug(
            "429: %d of the last %d answers (noise %.1f%%): noise, not a limit",
            evidence[1],
            evidence[2],
            100 * self.noise,
        )
        return False

    def _was_noise(self) -> bool:
        """Does the noise measured since the last decrease explain the 429s that brought it?
        Then the pace before comes back."""
        if self.undo is None:
            return False
        rate, ceiling, limit_met, evidence = self.undo
        self.undo = None
        if self._shows_limit(*evidence):
            return False
        log.debug(
            "%d 429s of %d answers were noise (%.1f%% since): pacing at %s again",
            evidence[1],
            evidence[2],
            100 * self.noise,
            _per_second(rate if ceiling is not None else None),
        )
        self.rate, self.ceiling = (rate, ceiling) if ceiling is not None else (None, None)
        self.limit_met = limit_met
        return True

    def _count_noise(self, sent_at: float, *, limited: bool) -> None:
        """Count an answer for the noise; a full block joins it (and judges the last decrease)."""
        if sent_at <= self.limited_at:
            return
        if self.ceiling is not None and (self.rate is None or self.rate > self.ceiling):
            return  # probing past the fitted limit: its 429s may be the limit's
        self.block[0] += 1
        self.block[1] += limited
        if self.block[0] < settings.RATE_NOISE_BLOCK:
            return
        if self.noise_answers >= settings.RATE_NOISE_MEMORY:  # older answers fade
            self.noise_answers /= 2
            self.noise_limited /= 2
        self.noise_answers += self.block[0]
        self.noise_limited += self.block[1]
        self.block = [0, 0]
        self._was_noise()

    def on_quota(self, quota: RateLimitQuota) -> None:
        """Pace by the quota the server announces: what remains, spread until the reset."""
        self.limit_met = True
        if quota.remaining < 1:
            if quota.reset > 0:
                log.debug("quota used up: waiting %.2fs for its reset", quota.reset)
                self.pause(min(quota.reset, settings.RETRY_AFTER_MAX_SECONDS))
            return
        if quota.reset <= 0:
            return
        rate = max(quota.remaining / quota.reset, settings.RATE_MIN_REQUESTS_PER_SECOND)
        if self.rate is None or abs(rate - self.rate) > 0.1 * self.rate:
            log.debug(
                "quota %g left for %.2fs (limit %s): pacing at %.1f/s",
                quota.remaining,
                quota.reset,
                quota.limit,
                rate,
            )
        self._end_start_up()
        self.rate = self.ceiling = rate

    # -- decisions ---------------------------------------------------------------------------

    def _after_idle(self, now: float) -> None:
        """Nothing in flight for a while: the fit starts afresh (idle time says nothing)."""
        if self.epoch_start is not None and now - self.released_at > settings.RATE_FIT_IDLE_SECONDS:
            log.debug("idle %.2fs: the rate fit starts again", now - self.released_at)
            self.epoch_start = max(self.epoch_start, now)

    def _widen(self) -> None:
        """Start-up: one more request in flight; at the client's concurrency, no window."""
        assert self.window is not None
        self.window += 1
        if self.window >= self.max_concurrency:
            log.debug("start-up: %d in flight, no 429 met", self.window)
            self.window = None
        self._room.set()

    def _end_start_up(self) -> None:
        """A limit showed up: the learned pace takes over from the start-up ramp."""
        self.starting = False
        if self.window is not None:
            self.window = None
            self._room.set()

    def _ramp_up(self) -> None:
        """Start-up: double the pace; far beyond any plausible limit, stop pacing."""
        assert self.rate is not None
        self.rate *= 2
        if self.rate >= settings.SLOW_START_EXIT_REQUESTS_PER_SECOND:
            log.debug("start-up over after %d good answers: no rate limit met", self.start_answers)
            self.starting, self.rate = False, None
        else:
            log.debug("start-up: pacing at %.0f/s", self.rate)

    def _fit_limit(self, now: float, wait: float) -> float | None:
        """The server's rate: good answers since the last pause over that time plus `wait`.

        A token bucket (or a fixed window) lets through what it refills over that time, so this
        is its rate whatever its burst size. None with too few answers to tell.
        """
        epoch_start = now if self.epoch_start is None else self.epoch_start
        start = max(epoch_start, now - settings.RATE_FIT_WINDOW_SECONDS)
        if len(self.answers) == self.answers.maxlen:
            start = max(start, self.answers[0])
        good = sum(1 for _ in itertools.takewhile(lambda t: t >= start, reversed(self.answers)))
        if good < settings.RATE_FIT_MIN_ANSWERS:
            log.debug("429 after %d good answers: too few to fit a rate", good)
            return None
        fitted = good / max(now - start + wait, 1e-3)
        log.debug(
            "429: %d good answers in %.2fs + %.2fs wait: limit ~%.1f/s",
            good,
            now - start,
            wait,
            fitted,
        )
        return fitted

    def _decrease(self, now: float, wait: float) -> None:
        """Multiplicative decrease: just under the fitted limit (or half the pace, unfitted)."""
        fitted = self._fit_limit(now, wait)
        current = self.pace
        if fitted is not None:
            rate = min(fitted, current or math.inf) * settings.RATE_DECREASE_FACTOR
        elif current is not None:
            rate = current / 2
        else:
            rate = None
        if rate is not None:
            rate = max(rate, settings.RATE_MIN_REQUESTS_PER_SECOND)
            log.debug("rate limited: pacing at %.1f/s (was %s)", rate, _per_second(current))
        self._end_start_up()
        self.rate = rate
        self.ceiling = fitted if fitted is not None else rate
        self.probe_step = settings.RATE_PROBE_STEP
        self.limited_at = now
        self.recent.clear()
        self.block = [0, 0]
        self.epoch_start = max(now, self.resume_at)
        self.next_slot = max(now, self.resume_at)
        self.generation += 1

    def _maybe_adjust(self, now: float) -> None:
        """Once an interval: grow a pace that held requests back with no 429, or drop it."""
        if self.rate is None or self.starting:
            return
        elapsed = now - self.adjusted_at
        if elapsed < settings.RATE_ADJUST_INTERVAL_SECONDS:
            return
        answered, self.interval_answers, self.adjusted_at = self.interval_answers, 0, now
        if self.limited_at >= now - elapsed:
            return  # a 429 in this interval: the decrease said it all
        if self.cap and self.rate >= self.cap:
            return  # the hard cap binds, not the learned pace
        if answered >= settings.RATE_BINDING_SHARE * self.rate * elapsed:
            self._increase()
        elif self.ceiling and self.rate >= settings.RATE_RELEASE_FACTOR * self.ceiling:
            log.debug(
                "pace %.0f/s, %.0fx the last fitted limit, no longer binds: limit lifted",
                self.rate,
                self.rate / self.ceiling,
            )
            self.rate = self.ceiling = None

    def _increase(self) -> None:
        """Back to the fitted limit; past it, probe by a step that doubles each time."""
        assert self.rate is not None
        before = self.rate
        if self.ceiling is not None and self.rate < self.ceiling:
            self.rate = self.ceiling
        else:
            self.rate *= 1 + self.probe_step
            self.probe_step = min(self.probe_step * 2, settings.RATE_PROBE_STEP_MAX)
        log.debug("no 429 for an interval: pacing at %.1f/s (was %.1f/s)", self.rate, before)


def _per_second(rate: float | None) -> str:
    return "unpaced" if rate is None else f"{rate:.1f}/s"
