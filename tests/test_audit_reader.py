"""A DuckDB-backed `WarehouseReader` for the audit tests, and its own tests.

Plain `duckdb.connect(path, read_only=True)`, one short connection per question, so it never
holds the file while dlt loads. The product's reader goes through dlt's sql_client.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.neuron.audit import StoredTranscript
from pipelines.neuron.rows import LIST_FIELDS
from pipelines.runner.stored import WarehouseReader

pytestmark = pytest.mark.unit

DAY = "cast(timezone('UTC', c.started_at) as date)"


class DuckDbReader:
    def __init__(self, path: Path, schema: str = "neuron") -> None:
        self.path, self.schema = path, schema

    def _query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        with duckdb.connect(str(self.path), read_only=True) as conn:
            found = conn.execute(
                "select count(*) from information_schema.tables where table_schema = ? "
                "and table_name = 'calls'",
                [self.schema],
            ).fetchone()
            if not found or not found[0]:
                return []
            return conn.execute(sql.replace("{schema}", self.schema), params).fetchall()

    def day_counts(self, first: dt.date, last: dt.date) -> dict[tuple[dt.date, str | None], int]:
        rows = self._query(
            f"select {DAY}, c.disposition, count(*) from {{schema}}.calls c "
            f"where {DAY} between ? and ? group by all",
            [first, last],
        )
        return {(day, disposition): calls for day, disposition, calls in rows}

    def day_calls(self, days: list[dt.date]) -> dict[dt.date, dict[str, dict[str, Any]]]:
        columns = ", ".join(f"c.{name}" for name in LIST_FIELDS)
        rows = self._query(
            f"select {DAY}, c.id, {columns} from {{schema}}.calls c where list_contains(?, {DAY})",
            [days],
        )
        by_day: dict[dt.date, dict[str, dict[str, Any]]] = {}
        for day, call_id, *fields in rows:
            by_day.setdefault(day, {})[call_id] = dict(zip(LIST_FIELDS, fields, strict=True))
        return by_day

    def stored_transcripts(self, first: dt.date, last: dt.date) -> dict[str, StoredTranscript]:
        window = f"join {{schema}}.calls c on c.id = t.call_id where {DAY} between ? and ?"
        heads = self._query(
            f"select t.call_id, {DAY}, t.job_id, t.language, t.duration_seconds, t.summary, "
            f"t.sentiment_overall from {{schema}}.transcripts t {window}",
            [first, last],
        )
        segments = self._query(
            f"select t.call_id, t.speaker, t.text, t.start_time, t.end_time, t.confidence "
            f"from {{schema}}.transcript_segments t {window} order by t.call_id, t.segment_index",
            [first, last],
        )
        speakers = self._query(
            f"select t.call_id, t.speaker, t.sentiment from {{schema}}.speaker_sentiment t "
            f"{window}",
            [first, last],
        )
        out: dict[str, StoredTranscript] = {}
        for call_id, day, *head in heads:
            fields = ("job_id", "language", "duration_seconds", "summary", "sentiment_overall")
            out[call_id] = StoredTranscript(day, dict(zip(fields, head, strict=True)), [], {})
        for call_id, *segment in segments:
            fields = ("speaker", "text", "start_time", "end_time", "confidence")
            if call_id in out:
                out[call_id].segments.append(dict(zip(fields, segment, strict=True)))
        for call_id, speaker, sentiment in speakers:
            if call_id in out:
                out[call_id].speakers[speaker] = sentiment
        return out


def test_reader_satisfies_the_protocol_and_reads_an_empty_or_missing_file(tmp_path: Path) -> None:
    reader: WarehouseReader = DuckDbReader(tmp_path / "none.duckdb")
    day = dt.date(2024, 2, 1)
    assert reader.day_counts(day, day) == {}
    assert reader.day_calls([day]) == {}
    assert reader.stored_transcripts(day, day) == {}


def test_reader_groups_by_utc_day(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute("set timezone = 'Asia/Kolkata'")
        conn.execute("create schema neuron")
        conn.execute(
            "create table neuron.calls (id varchar, campaign_id varchar, contact_phone varchar, "
            "contact_name varchar, status varchar, disposition varchar, duration_seconds bigint, "
            "language varchar, started_at timestamptz, ended_at timestamptz)"
        )
        conn.execute(
            "insert into neuron.calls values "
            "('a', null, null, null, 'completed', 'dnd', 3, 'hi-IN', "
            "'2024-02-01 23:30:00+00', '2024-02-01 23:31:00+00'), "
            "('b', null, null, null, 'in_progress', null, null, 'hi-IN', "
            "'2024-02-02 00:10:00+00', null)"
        )
    reader = DuckDbReader(db)
    day = dt.date(2024, 2, 1)
    assert reader.day_counts(day, day.replace(day=2)) == {
        (day, "dnd"): 1,
        (day.replace(day=2), None): 1,
    }
    assert set(reader.day_calls([day])[day]) == {"a"}
    assert reader.day_calls([day])[day]["a"]["duration_seconds"] == 3
    assert set(reader.day_calls([day, day.replace(day=2)])) == {day, day.replace(day=2)}
