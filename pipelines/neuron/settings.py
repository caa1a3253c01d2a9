"""Defaults and endpoint paths of the Neuron source: the one place for them."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.vinfer.ai/v1"

CALLS_PATH = "/calls"
CALL_PATH = "/calls/{call_id}"
TRANSCRIPT_PATH = "/calls/{call_id}/transcript"

PAGE_SIZE = 100  # the API's maximum `limit`

# A call is final in one of these states; until then the pipeline keeps coming back for it.
FINAL_STATUSES = frozenset({"completed", "failed"})

DEFAULT_LOOKBACK_MINUTES = 60  # re-read the list this far behind the cursor, for late arrivals
DEFAULT_MAX_CONCURRENCY = 32  # requests in flight at once
DEFAULT_PENDING_MAX_DAYS = 7  # re-poll a non-final call this long after first seeing it pending

DEFAULT_MAX_ATTEMPTS = 6  # per request, including the first
DEFAULT_TIMEOUT_SECONDS = 30.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
RETRY_AFTER_MAX_SECONDS = 120.0

# The signed recording URL is a short-lived credential: it is never stored.
DROPPED_CALL_FIELDS = frozenset({"recording_url", "contact"})
