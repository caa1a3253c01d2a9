"""Where a call's JSON becomes rows: pure functions, no I/O.

Fields the API adds later pass through as new columns; the signed `recording_url` never does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from typing import Any

import orjson
import pendulum

from .settings import DROPPED_CALL_FIELDS, FINAL_STATUSES

log = logging.getLogger(__name__)

Row = dict[str, Any]

# The `calls` columns a list item carries: what the audit compares with the warehouse.
LIST_FIELDS = (
    "campaign_id",
    "contact_phone",
    "contact_name",
    "status",
    "disposition",
    "duration_seconds",
    "language",
    "started_at",
    "ended_at",
)
# The `transcripts` and `transcript_segments` columns the audit compares with the API's.
TRANSCRIPT_FIELDS = ("job_id", "language", "duration_seconds", "summary", "sentiment_overall")
SEGMENT_FIELDS = ("speaker", "text", "start_time", "end_time", "confidence")
# what `GET /calls/{id}` adds to a list item
DETAIL_ONLY_FIELDS = frozenset({"transcript_job_id", "recording_url"})


def to_utc(value: Any) -> pendulum.DateTime:
    """An ISO 8601 timestamp (or date) as an aware UTC datetime; ValueError when it is not one."""
    if isinstance(value, pendulum.DateTime):
        return value.in_timezone("UTC")
    if isinstance(value, str):
        # the API's own form (`2024-01-31T09:14:03Z`): the standard library reads it much
        # faster than pendulum, which stays for every other form
        with contextlib.suppress(ValueError):
            return _utc(dt.datetime.fromisoformat(value))
    try:
        # exact: a bare date stays a Date, a time of day a Time, and neither is a timestamp
        parsed = pendulum.parse(str(value), exact=True)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        parsed = None
    if isinstance(parsed, pendulum.Date) and not isinstance(parsed, pendulum.DateTime):
        parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day)
    if not isinstance(parsed, pendulum.DateTime) or str(value).strip().lower() == "now":
        raise ValueError(f"{str(value)[:40]!r} is not an ISO 8601 timestamp")
    return parsed.in_timezone("UTC")


def _as_utc(moment: dt.datetime) -> dt.datetime:
    """The same moment in UTC; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _utc(moment: dt.datetime) -> pendulum.DateTime:
    """A datetime as a pendulum UTC datetime; a naive one is taken as UTC."""
    moment = _as_utc(moment)
    return pendulum.DateTime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=pendulum.UTC,
    )


def iso_utc(moment: dt.datetime, timespec: str = "seconds") -> str:
    """`2024-01-31T09:14:03Z` (or with `.ffffff` for timespec="microseconds"); naive is UTC."""
    return _as_utc(moment).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def parse_timestamp(value: Any) -> pendulum.DateTime | None:
    """Like `to_utc` for API values: None stays None, a bad value becomes None with a warning."""
    if value is None:
        return None
    try:
        return to_utc(value)
    except ValueError as exc:
        log.warning("%s: stored as NULL", exc)
        return None


def is_final(call: Row) -> bool:
    return call.get("status") in FINAL_STATUSES


def call_row(call: Row, *, detailed: bool = True) -> Row:
    """A `calls` row from a list item or a `GET /calls/{id}` body.

    `contact` is flattened to `contact_<field>`; `recording_url` becomes `has_recording`.
    A list item (`detailed=False`) has no recording field, so `has_recording` stays unknown.
    """
    row = {key: value for key, value in call.items() if key not in DROPPED_CALL_FIELDS}
    contact = call.get("contact")
    if isinstance(contact, dict):
        for key, value in contact.items():
            row[f"contact_{key}"] = value
    else:
        row.setdefault("contact_phone", None)
        row.setdefault("contact_name", None)
    row["started_at"] = parse_timestamp(call.get("started_at"))
    row["ended_at"] = parse_timestamp(call.get("ended_at"))
    row["has_recording"] = bool(call.get("recording_url")) if detailed else None
    return row


def transcript_is_ready(transcript: Row | None) -> bool:
    return transcript is not None and isinstance(transcript.get("transcript"), list)


def transcript_rows(call_id: str, transcript: Row) -> tuple[Row, list[Row], list[Row]]:
    """Rows of `transcripts`, `transcript_segments` and `speaker_sentiment` for one call."""
    sentiment = transcript.get("sentiment")
    if not isinstance(sentiment, dict):
        sentiment = {}
    head = {
        key: value
        for key, value in transcript.items()
        if key not in ("transcript", "sentiment", "status", "call_id")
    }
    head["call_id"] = call_id
    head["sentiment_overall"] = sentiment.get("overall")
    segments = [
        {**segment, "call_id": call_id, "segment_index": index}
        for index, segment in enumerate(transcript.get("transcript") or [])
        if isinstance(segment, dict)
    ]
    by_speaker = sentiment.get("by_speaker")
    speakers = [
        {"call_id": call_id, "speaker": speaker, "sentiment": value}
        for speaker, value in (by_speaker.items() if isinstance(by_speaker, dict) else [])
    ]
    return head, segments, speakers


def list_view(row: Row) -> Row:
    """The list-visible fields of a `calls` row (ours or a warehouse's), comparable by `==`:
    timestamps as ISO UTC strings, whole floats as ints."""
    return {name: _comparable(row.get(name)) for name in LIST_FIELDS}


def _comparable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_utc(value, "microseconds")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def fingerprint(call: Row, *, detailed: bool = False) -> str:
    """A short digest of a call as the list shows it (a list item, or a `GET /calls/{id}` body
    without its detail-only fields): equal digests, same list-visible state. `detailed`: of a
    `GET /calls/{id}` body as its `calls` row is loaded (the signed recording URL, new at every
    request, counts only as there or not): equal digests, the same row."""
    if detailed:
        item = {key: value for key, value in call.items() if key != "recording_url"}
        item["recording_url"] = bool(call.get("recording_url"))
    else:
        item = {key: value for key, value in call.items() if key not in DETAIL_ONLY_FIELDS}
    body = orjson.dumps(item, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(body, digest_size=8).hexdigest()
