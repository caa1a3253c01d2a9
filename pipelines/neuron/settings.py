"""Defaults and endpoint paths of the Neuron source: the one place for them."""

from __future__ import annotations

from typing import NamedTuple

ENV_PREFIX = "SOURCES__NEURON__"  # dlt's section for the source: [sources.neuron]


def env_var(name: str) -> str:
    """The environment variable of a setting: `env_var("api_key")` is SOURCES__NEURON__API_KEY."""
    return ENV_PREFIX + name.upper()


DEFAULT_BASE_URL = "https://api.vinfer.ai/v1"

CALLS_PATH = "/calls"
CALL_PATH = "/calls/{call_id}"
TRANSCRIPT_PATH = "/calls/{call_id}/transcript"

PAGE_SIZE = 100  # the API's maximum `limit`
# The deepest `offset` the list is asked for; past it a window is split in time (progress.Paging).
# Many APIs refuse offsets past 10,000 with a 400, which splits the window too.
DEFAULT_MAX_OFFSET = 10_000

# A call is final in one of these states; until then the pipeline keeps coming back for it.
FINAL_STATUSES = frozenset({"completed", "failed"})

DEFAULT_LOOKBACK_MINUTES = 60  # re-read the list this far behind the cursor, for late arrivals
DEFAULT_MAX_CONCURRENCY = 32  # requests in flight at once
DEFAULT_PENDING_MAX_DAYS = 7  # re-poll a non-final call this long after first seeing it pending
# A run commits what it fetched (a dlt load, published on DuckDB) at least this often; a stop
# loses at most the work since the last commit. On DuckDB each commit copies the file (a cost that
# grows with it): the interval stretches so that copying stays under CHECKPOINT_STAGING_SHARE of
# the run (docs/checkpoints.md).
DEFAULT_CHECKPOINT_SECONDS = 60.0
MAX_CHECKPOINT_SECONDS = 300.0
CHECKPOINT_STAGING_SHARE = 0.05
# ... and at least every SEGMENT_MAX_CALLS calls listed: dlt's normalize and load of one segment
# hold it in memory, so a run's peak memory does not grow with the history (Airbyte: 10,000 records)
SEGMENT_MAX_CALLS = 10_000

DEFAULT_MAX_ATTEMPTS = 6  # per request, including the first
DEFAULT_TIMEOUT_SECONDS = 30.0
# A failed request (5xx, dropped, cut off, a 429 without Retry-After) waits on its own, never
# holding the others: BACKOFF_BASE_SECONDS x BACKOFF_FACTOR ** (retry - 1), 50-100% of it, capped.
# Short at first (a random fault costs one quick retry), long soon (a server that keeps failing).
BACKOFF_BASE_SECONDS = 0.1
BACKOFF_FACTOR = 3.0
BACKOFF_MAX_SECONDS = 30.0
RETRY_NOTICE_SECONDS = 2.0  # a retry that waits this long (or after a timeout) is logged at INFO
RETRY_AFTER_MAX_SECONDS = 120.0

# The signed recording URL is a short-lived credential: it is never stored.
DROPPED_CALL_FIELDS = frozenset({"recording_url", "contact"})

# -- the learned rate limit (client.RateLimiter) ------------------------------------------------
# The API documents no limit; it answers 429. The client paces its requests at a rate it learns
# from those answers: multiplicative decrease when the 429s show a limit, growth after quiet
# intervals. Start-up: until a limit shows, the pace starts here and doubles every few good
# answers, so a limit is discovered with few requests in flight (each in flight then is refused).
SLOW_START_WINDOW = 4  # requests in flight at first; one more per good answer
SLOW_START_REQUESTS_PER_SECOND = 200.0
SLOW_START_DOUBLING_ANSWERS = 25  # good answers between two doublings of the start-up pace
SLOW_START_EXIT_REQUESTS_PER_SECOND = 12_800.0  # start-up pace past this: no limit, stop pacing
# After a 429: the limit is fitted to what got through (good answers since the last pause, over
# that time plus the wait the API asked for), and the pace set to this share of it.
RATE_DECREASE_FACTOR = 0.9
RATE_FIT_MIN_ANSWERS = 20  # fewer good answers than this: no fit, halve the pace instead
RATE_FIT_WINDOW_SECONDS = 30.0  # the fit looks back at most this far
RATE_FIT_IDLE_SECONDS = 0.25  # nothing in flight this long: the fit starts again after it
RATE_MIN_REQUESTS_PER_SECOND = 0.5  # the pace never drops below this
# A 429 brings the pace down (and holds every request for its Retry-After) only when the 429s
# among the last RATE_EVIDENCE_WINDOW answers since the pace last came down are more than the
# noise explains: at least RATE_EVIDENCE_MIN_429S, and beyond the noise's Poisson tail at
# RATE_EVIDENCE_ALPHA. Any other 429 waits alone, like a 5xx.
RATE_EVIDENCE_WINDOW = 100
RATE_EVIDENCE_MIN_ANSWERS = 50  # fewer answers since the pace came down: a limit only if most 429
RATE_EVIDENCE_MIN_429S = 2
RATE_EVIDENCE_ALPHA = 0.002
# ... or when the last answers were 429s in a row, a run the noise gives with a chance under this
RATE_EVIDENCE_RUN_CHANCE = 1e-6
# The noise: the share of 429s in blocks of RATE_NOISE_BLOCK answers at a pace not above the
# fitted limit that ended without a decrease (older answers fade past RATE_NOISE_MEMORY); until
# one such block, RATE_NOISE_PRIOR. A decrease whose 429s the noise measured after it explains
# was noise's: the pace before it comes back.
RATE_NOISE_BLOCK = 50
RATE_NOISE_PRIOR = 0.01
RATE_NOISE_PRIOR_ANSWERS = 50
RATE_NOISE_MEMORY = 5000
# Growth: once per interval without a decrease in which the pace held requests back: back to the
# fitted limit first, then probing above it by a step that doubles each quiet interval.
RATE_ADJUST_INTERVAL_SECONDS = 1.0
RATE_PROBE_STEP = 0.05  # first probe: 5% above the fitted limit
RATE_PROBE_STEP_MAX = 1.0  # at most doubling the pace per interval
RATE_BINDING_SHARE = 0.8  # the pace holds requests back when answers reach this share of it
RATE_RELEASE_FACTOR = 4.0  # pace this far above the fitted limit and not binding: limit lifted

RECORDING_CHUNK_BYTES = 64 * 1024  # a recording streams through memory in chunks of this size

# a file the sync writes the disposition report to after every run (`neuron-calls report`'s page);
# None: no report
DEFAULT_REPORT_FILE: str | None = None
DEFAULT_AUDIT_DAYS = 7  # days every incremental sync audits, today included; 0 turns it off
# The dispositions the API documents as list filters; others only count in the total.
DOCUMENTED_DISPOSITIONS = (
    "interested",
    "not_interested",
    "callback",
    "not_reachable",
    "dnd",
    "escalated",
)

# -- every setting of the source, the one list -------------------------------------------------
DEFAULT_PII = "keep"  # or "pseudonymize"
# the business time zone (an IANA name): the views' and the report's days and hours are its
DEFAULT_TIMEZONE = "UTC"


class Setting(NamedTuple):
    """A setting of the source: its key under `[sources.neuron]` (also its parameter of
    `neuron_source`), its default (None: unset), what it does, and whether it is a secret
    (set in `.dlt/secrets.toml` or the environment, never in `config.toml`)."""

    name: str
    default: object
    doc: str
    secret: bool = False

    @property
    def env_var(self) -> str:
        return env_var(self.name)


# `.dlt/config.toml`, `.dlt/secrets.toml.example` and the README's settings table are checked
# against this list by tests/test_settings.py.
SETTINGS = (
    Setting("api_key", None, "the API key", secret=True),
    Setting("base_url", DEFAULT_BASE_URL, "the API's /v1 URL"),
    Setting("start_date", None, "where the first sync starts; none: the whole history"),
    Setting("lookback_minutes", DEFAULT_LOOKBACK_MINUTES, "re-read the list this far back"),
    Setting("max_concurrency", DEFAULT_MAX_CONCURRENCY, "requests in flight"),
    Setting("pending_max_days", DEFAULT_PENDING_MAX_DAYS, "re-poll a non-final call this long"),
    Setting("max_attempts", DEFAULT_MAX_ATTEMPTS, "attempts per request"),
    Setting("timeout_seconds", DEFAULT_TIMEOUT_SECONDS, "request timeout"),
    Setting("max_requests_per_second", None, "a client-side cap; none: no cap"),
    Setting("audit_days", DEFAULT_AUDIT_DAYS, "UTC days every incremental sync audits; 0: off"),
    Setting("recordings_url", None, "where recordings are archived; none: not downloaded"),
    Setting("checkpoint_seconds", DEFAULT_CHECKPOINT_SECONDS, "how often a run commits"),
    Setting("max_offset", DEFAULT_MAX_OFFSET, "the deepest list offset asked for"),
    Setting("pii", DEFAULT_PII, "personal data policy: keep or pseudonymize"),
    Setting("pii_key", None, "the key for pseudonymized values", secret=True),
    Setting("pii_archive_recordings", False, "under pseudonymize: archive recordings anyway"),
    Setting("report_file", DEFAULT_REPORT_FILE, "write the HTML report after each sync; none: off"),
    Setting("timezone", DEFAULT_TIMEZONE, "the business time zone of the views and the report"),
)
