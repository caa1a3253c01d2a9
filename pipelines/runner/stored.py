"""What an audit compares with, read from the warehouse by the runner on its own thread.

The source never reads the warehouse: the runner reads what the audit's days hold (between two
dlt loads for a sync, before it starts for the `audit` command) and hands it to the source as
plain data (`neuron.audit.StoredWindow`). `warehouse.access.DatasetReader` is the reader on
every destination; tests read DuckDB files or memory the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from pipelines.neuron.audit import AuditWindow, StoredTranscript, StoredWindow


class WarehouseReader(Protocol):
    def day_counts(self, first: dt.date, last: dt.date) -> dict[tuple[dt.date, str | None], int]:
        """Calls in `calls` per UTC day of started_at (first..last inclusive) x disposition."""
        ...

    def day_calls(self, days: list[dt.date]) -> dict[dt.date, dict[str, dict[str, Any]]]:
        """The stored list-visible fields of every call started on those UTC days, by day, then
        id (`rows.LIST_FIELDS`: campaign_id, contact_phone, contact_name, status, disposition,
        duration_seconds, language, started_at, ended_at); one question for all the days."""
        ...

    def stored_transcripts(self, first: dt.date, last: dt.date) -> dict[str, StoredTranscript]:
        """The stored transcripts of the calls started first..last (UTC days), by call id."""
        ...


def read_window(reader: WarehouseReader, window: AuditWindow) -> StoredWindow:
    """What the warehouse holds of the window's days: their counts and calls (a question
    each), and their transcripts when the audit re-checks them."""
    return StoredWindow(
        counts=reader.day_counts(window.first, window.last),
        calls=reader.day_calls(window.days),
        transcripts=(
            reader.stored_transcripts(window.first, window.last) if window.transcripts else None
        ),
    )
