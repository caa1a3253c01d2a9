"""JSON -> rows: the pure functions of `pipelines.neuron.rows`, no HTTP."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest

from pipelines.neuron.rows import (
    Row,
    call_row,
    is_final,
    iso_utc,
    parse_timestamp,
    to_utc,
    transcript_rows,
)
from pipelines.neuron.tables import (
    CALLS,
    DELETED_CALLS,
    SPEAKER_SENTIMENT,
    TRANSCRIPT_SEGMENTS,
    TRANSCRIPTS,
    Table,
)

pytestmark = pytest.mark.unit

DETAIL: dict[str, Any] = {
    "id": "cal_9Hm3kP7qZ",
    "campaign_id": "cmp_4Rv8sT1wX",
    "contact": {"phone": "+919876543210", "name": "Priya Sharma"},
    "status": "completed",
    "disposition": "escalated",
    "duration_seconds": 142,
    "language": "hi-IN",
    "started_at": "2024-02-01T09:14:03Z",
    "ended_at": "2024-02-01T09:16:25Z",
    "transcript_job_id": "job_2Kn7wR4pM",
    "recording_url": "https://recordings.vinfer.ai/signed/cal_9Hm3kP7qZ?token=eyJ&expires=1",
}

TRANSCRIPT: dict[str, Any] = {
    "call_id": "cal_9Hm3kP7qZ",
    "job_id": "job_2Kn7wR4pM",
    "status": "completed",
    "language": "hi-IN",
    "duration_seconds": 142,
    "transcript": [
        {"speaker": "agent", "text": "नमस्ते, प्रिया जी।", "start_time": 0.4, "end_time": 5.1},
        {"speaker": "customer", "text": "வணக்கம், சொல்லுங்கள்.", "start_time": 5.9},
        {"speaker": "agent", "text": "Aapka loan renewal", "start_time": 7.6, "end_time": 13.0},
    ],
    "summary": "Customer asked for a human agent.",
    "sentiment": {"overall": 0.42, "by_speaker": {"agent": 0.65, "customer": 0.38}},
}


def utc(hour: int, minute: int, second: int) -> pendulum.DateTime:
    """A moment of 1 Feb 2024, UTC: the day of the fixtures."""
    return pendulum.datetime(2024, 2, 1, hour, minute, second, tz="UTC")


def detail(**changes: Any) -> dict[str, Any]:
    return {**DETAIL, **changes}


def transcript(**changes: Any) -> dict[str, Any]:
    return {**TRANSCRIPT, **changes}


# -- calls -------------------------------------------------------------------------------------


def test_call_row_flattens_contact_and_drops_the_signed_recording_url() -> None:
    row = call_row(DETAIL)
    assert row == {
        "id": "cal_9Hm3kP7qZ",
        "campaign_id": "cmp_4Rv8sT1wX",
        "contact_phone": "+919876543210",
        "contact_name": "Priya Sharma",
        "status": "completed",
        "disposition": "escalated",
        "duration_seconds": 142,
        "language": "hi-IN",
        "started_at": utc(9, 14, 3),
        "ended_at": utc(9, 16, 25),
        "transcript_job_id": "job_2Kn7wR4pM",
        "has_recording": True,
    }
    assert "token" not in repr(row)


@pytest.mark.parametrize(
    ("call", "detailed", "has_recording"),
    [
        (DETAIL, True, True),
        (detail(recording_url=None), True, False),
        ({k: v for k, v in DETAIL.items() if k != "recording_url"}, True, False),
        ({k: v for k, v in DETAIL.items() if k != "recording_url"}, False, None),
    ],
    ids=["url", "null-url", "no-field", "list-item"],
)
def test_has_recording(call: dict[str, Any], detailed: bool, has_recording: bool | None) -> None:
    row = call_row(call, detailed=detailed)
    assert row["has_recording"] is has_recording
    assert "recording_url" not in row


@pytest.mark.parametrize("contact", [None, "not an object"])
def test_missing_contact_gives_null_contact_columns(contact: Any) -> None:
    row = call_row(detail(contact=contact))
    assert (row["contact_phone"], row["contact_name"]) == (None, None)
    assert "contact" not in row


def test_call_row_keeps_fields_the_api_adds_later() -> None:
    row = call_row(detail(agent_id="agt_1", tags=["vip"], contact={"phone": "+91", "email": "e"}))
    assert (row["agent_id"], row["tags"], row["contact_email"]) == ("agt_1", ["vip"], "e")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-02-01T09:14:03Z", utc(9, 14, 3)),
        ("2024-02-01T14:44:03+05:30", utc(9, 14, 3)),
        ("2024-02-01T09:14:03.250Z", pendulum.datetime(2024, 2, 1, 9, 14, 3, 250000)),
        (None, None),
        ("garbage", None),
        ("", None),
        ("2024-13-45T00:00:00Z", None),
        (1706778843, None),
    ],
)
def test_started_at_is_an_aware_utc_datetime_or_none(value: Any, expected: Any) -> None:
    row = call_row(detail(started_at=value, ended_at=value))
    for column in ("started_at", "ended_at"):
        assert row[column] == expected
        if expected is not None:
            assert isinstance(row[column], pendulum.DateTime)
            assert row[column].utcoffset() == pendulum.duration(0)
            assert row[column].timezone_name == "UTC"


def test_in_progress_call_keeps_null_ended_at() -> None:
    row = call_row(detail(status="in_progress", disposition=None, ended_at=None))
    assert row["ended_at"] is None
    assert row["started_at"] == utc(9, 14, 3)


@pytest.mark.parametrize(
    "value",
    [
        "2024-02-01T09:14:03Z",
        "2024-02-01T09:14:03.123456Z",
        "2024-02-01T14:44:03+05:30",
        "2024-02-01T09:14:03",
        "2024-02-01 09:14:03Z",
        "2024-02-01",
        "20240201T091403Z",
    ],
)
def test_the_fast_timestamp_reading_agrees_with_pendulum(value: str) -> None:
    """`to_utc` reads ISO strings with the standard library, and falls back to pendulum."""
    parsed = pendulum.parse(value, exact=True)
    if not isinstance(parsed, pendulum.DateTime):
        parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day)
    stamp = to_utc(value)
    assert stamp == parsed
    assert isinstance(stamp, pendulum.DateTime) and stamp.timezone_name == "UTC"


@pytest.mark.parametrize(
    "moment",
    [
        pendulum.datetime(2024, 2, 1, 9, 14, 3, 250000),
        pendulum.datetime(2024, 2, 1, 14, 44, 3, tz="Asia/Kolkata"),
        pendulum.naive(2024, 2, 1, 9, 14, 3),
    ],
)
def test_iso_utc_writes_what_pendulum_wrote(moment: Any) -> None:
    utc_moment = pendulum.instance(moment).in_timezone("UTC")
    assert iso_utc(moment) == utc_moment.format("YYYY-MM-DDTHH:mm:ss[Z]")
    assert iso_utc(moment, "microseconds") == utc_moment.format("YYYY-MM-DDTHH:mm:ss.SSSSSS[Z]")


@pytest.mark.parametrize("value", ["now", "09:14:03"])
def test_non_timestamp_words_are_not_turned_into_the_current_date(value: str) -> None:
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("status", "final"),
    [("completed", True), ("failed", True), ("in_progress", False), (None, False), ("new", False)],
)
def test_is_final(status: str | None, final: bool) -> None:
    assert is_final({"id": "c", "status": status}) is final


def test_is_final_without_status() -> None:
    assert is_final({"id": "c"}) is False


# -- transcripts -------------------------------------------------------------------------------


def test_transcript_rows() -> None:
    head, segments, speakers = transcript_rows("cal_9Hm3kP7qZ", TRANSCRIPT)
    assert head == {
        "call_id": "cal_9Hm3kP7qZ",
        "job_id": "job_2Kn7wR4pM",
        "language": "hi-IN",
        "duration_seconds": 142,
        "summary": "Customer asked for a human agent.",
        "sentiment_overall": 0.42,
    }
    assert [(s["segment_index"], s["speaker"], s["call_id"]) for s in segments] == [
        (0, "agent", "cal_9Hm3kP7qZ"),
        (1, "customer", "cal_9Hm3kP7qZ"),
        (2, "agent", "cal_9Hm3kP7qZ"),
    ]
    assert speakers == [
        {"call_id": "cal_9Hm3kP7qZ", "speaker": "agent", "sentiment": 0.65},
        {"call_id": "cal_9Hm3kP7qZ", "speaker": "customer", "sentiment": 0.38},
    ]


def test_segments_keep_api_order_and_non_ascii_text_unchanged() -> None:
    _, segments, _ = transcript_rows("c", TRANSCRIPT)
    assert [s["text"] for s in segments] == [s["text"] for s in TRANSCRIPT["transcript"]]
    assert segments[0]["text"] == "नमस्ते, प्रिया जी।"
    assert segments[1]["text"] == "வணக்கம், சொல்லுங்கள்."
    assert "end_time" not in segments[1]  # a missing field stays missing, nothing invented


def test_transcript_rows_keep_extra_fields() -> None:
    head, segments, _ = transcript_rows(
        "c",
        transcript(
            keywords=["loan"],
            transcript=[{"speaker": "agent", "text": "hi", "emotion": "calm"}],
        ),
    )
    assert head["keywords"] == ["loan"]
    assert segments == [
        {"speaker": "agent", "text": "hi", "emotion": "calm", "call_id": "c", "segment_index": 0}
    ]


@pytest.mark.parametrize(
    "sentiment",
    [None, {}, {"overall": None}, {"by_speaker": None}, "positive"],
    ids=["null", "empty", "null-overall", "null-by-speaker", "string"],
)
def test_missing_sentiment(sentiment: Any) -> None:
    head, segments, speakers = transcript_rows("c", transcript(sentiment=sentiment))
    assert head["sentiment_overall"] is None
    assert speakers == []
    assert len(segments) == 3


def test_transcript_without_sentiment_key() -> None:
    body = {k: v for k, v in TRANSCRIPT.items() if k != "sentiment"}
    head, _, speakers = transcript_rows("c", body)
    assert (head["sentiment_overall"], speakers) == (None, [])


def test_call_id_argument_wins_over_the_body() -> None:
    head, segments, speakers = transcript_rows("cal_other", TRANSCRIPT)
    assert {head["call_id"]} | {r["call_id"] for r in segments + speakers} == {"cal_other"}


# -- how rows reach dlt: arrow tables for what fits, dicts for the rest ----------------------------


def _items(table: Table, rows: list[Row]) -> list[Any]:
    return [item.data for item in table.rows(rows)]


def test_rows_that_fit_the_declared_columns_go_as_one_arrow_table() -> None:
    import pyarrow as pa

    head, segments, speakers = transcript_rows("cal_1", TRANSCRIPT)
    segments.append(TRANSCRIPT_SEGMENTS.tombstone("cal_2"))
    [table] = _items(TRANSCRIPT_SEGMENTS, segments)
    assert isinstance(table, pa.Table) and table.num_rows == 4
    assert table.schema.field("call_id").nullable is False  # as the hints say: no dlt warning
    assert table.column("_deleted").to_pylist() == [None, None, None, True]
    assert table.column("end_time").to_pylist() == [5.1, None, 13.0, None]  # a missing field
    [call] = _items(CALLS, [call_row(DETAIL)])
    assert call.schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    assert call.column("started_at").to_pylist() == [utc(9, 14, 3)]
    assert call.column("has_recording").to_pylist() == [True]


def test_rows_with_fields_the_api_added_go_as_dicts_beside_the_arrow_table() -> None:
    import pyarrow as pa

    _, segments, _ = transcript_rows("cal_1", TRANSCRIPT)
    segments[1]["words"] = 3
    table, dicts = _items(TRANSCRIPT_SEGMENTS, segments)
    assert isinstance(table, pa.Table) and table.column("segment_index").to_pylist() == [0, 2]
    assert dicts == [segments[1]]
    [calls] = _items(CALLS, [call_row(detail(agent_version="v3.2"))])  # no arrow table at all
    assert calls[0]["agent_version"] == "v3.2"


def test_a_value_of_another_type_sends_the_batch_as_dicts() -> None:
    _, segments, _ = transcript_rows("cal_1", TRANSCRIPT)
    segments[0]["confidence"] = "high"  # dlt makes a variant column of it
    assert _items(TRANSCRIPT_SEGMENTS, segments) == [segments]
    # values pyarrow would change without a word: 12.7 cut to 12, True made 1.0
    head, _, speakers = transcript_rows("cal_1", transcript(duration_seconds=12.7))
    assert _items(TRANSCRIPTS, [head]) == [[head]]
    speakers[0]["sentiment"] = True
    assert _items(SPEAKER_SENTIMENT, speakers) == [speakers]
    [calls] = _items(CALLS, [call_row(detail(duration_seconds=False))])
    assert calls[0]["duration_seconds"] is False
    assert _items(DELETED_CALLS, [{"call_id": "cal_1", "detected_at": None}]) == [
        [{"call_id": "cal_1", "detected_at": None}]
    ]  # not an arrow table
