"""Drift in the API is found and repaired by the ordinary sync (issue 10), end to end.

The sandbox relabels, erases, delays the listing of and re-transcribes calls at runtime; each
test then runs the next scheduled `sync` (audit on, reading the warehouse) and ends equal
to the sandbox's truth. The pipeline's clock follows the sandbox's (`pendulum.travel_to`), so
"the last 7 days" are the sandbox's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox
from tests.helpers import assert_matches_truth, load_ids, query, reloaded, sync

Make = Callable[..., Sandbox]


@pytest.fixture(autouse=True)
def _travel_back() -> Iterator[None]:
    yield
    pendulum.travel_back()


def scheduled(sb: Sandbox, tmp: Path, **source: Any) -> runner.SyncResult:
    """One scheduled sync at the sandbox's clock, audit on; fails the test unless it loads."""
    pendulum.travel_to(sb.now(), freeze=False)
    repair = {key: source.pop(key) for key in list(source) if key.startswith("repair_")}
    result = sync(sb, tmp, source_args=source, **repair)  # audits through the runner's reader
    assert result.exit_code == runner.EXIT_OK, result.error
    return result


def calls(sb: Sandbox) -> list[dict[str, Any]]:
    """The sandbox's calls, newest first."""
    return sorted(sb.truth()["calls"], key=lambda c: c["started_at"], reverse=True)


def final_call(sb: Sandbox, *, older_than_hours: float, transcript: bool = False) -> dict[str, Any]:
    edge = sb.now().subtract(hours=older_than_hours)
    truth = sb.truth()
    for call in calls(sb):
        if (
            call["status"] == "completed"
            and pendulum.parse(call["started_at"]) < edge
            and call["disposition"] in ("interested", "callback", "not_interested")
            and (not transcript or call["id"] in truth["transcripts"])
        ):
            return call
    raise AssertionError("no such call in the sandbox")


def stored(db: Path, call_id: str) -> dict[str, int]:
    return {
        table: query(db, f"select count(*) from neuron.{table} where {key} = '{call_id}'")[0][0]
        for table, key in (
            ("calls", "id"),
            ("transcripts", "call_id"),
            ("transcript_segments", "call_id"),
            ("speaker_sentiment", "call_id"),
        )
    }


def settled(sb: Sandbox) -> set[str]:
    """Calls with nothing left to wait for: final, transcript ready or none to come."""
    truth = sb.truth()
    return {
        c["id"]
        for c in truth["calls"]
        if c["status"] in ("completed", "failed")
        and (c["transcript_job_id"] is None or c["id"] in truth["transcripts"])
    }


def test_relabel_inside_the_lookback_is_fixed_by_the_list_alone(make_sandbox: Make, tmp_path):
    sb = make_sandbox(calls=300, days=10)
    day = 24 * 60
    scheduled(sb, tmp_path, lookback_minutes=day, audit_days=0)
    loads = load_ids(tmp_path / "calls.duckdb")
    loaded_final = settled(sb) & set(loads)
    call = final_call(sb, older_than_hours=2)
    sb.relabel(call["id"], disposition="dnd", duration_seconds=7)
    sb.advance(600)
    result = scheduled(sb, tmp_path, lookback_minutes=day, audit_days=0)
    assert result.report.listed > 20  # the lookback re-listed a day of calls ...
    again = reloaded(loads, load_ids(tmp_path / "calls.duckdb"))
    assert again & loaded_final == {call["id"]}  # ... and loaded one of them again
    assert_matches_truth(tmp_path / "calls.duckdb", sb.truth())


def test_relabel_two_days_later_is_fixed_by_the_audit(make_sandbox: Make, tmp_path):
    sb = make_sandbox(calls=300, days=10)
    scheduled(sb, tmp_path)
    call = final_call(sb, older_than_hours=50)
    sb.relabel(call["id"], disposition="escalated")
    sb.advance(1800)
    result = scheduled(sb, tmp_path)
    assert result.report.audit.found("changed") == 1
    assert result.report.audit.repaired["changed"] == 1
    assert_matches_truth(tmp_path / "calls.duckdb", sb.truth())


def test_erased_calls_leave_every_table_and_the_views(make_sandbox: Make, tmp_path):
    sb = make_sandbox(calls=300, days=10)
    scheduled(sb, tmp_path)
    db = tmp_path / "calls.duckdb"
    old = final_call(sb, older_than_hours=30, transcript=True)
    (pending_id,) = query(db, "select id from neuron.calls where status = 'in_progress' limit 1")[0]
    assert all(stored(db, old["id"]).values())
    sb.erase(old["id"])
    sb.erase(pending_id)
    sb.advance(1800)
    result = scheduled(sb, tmp_path)
    assert set(result.report.erased) == {old["id"], pending_id}
    for call_id in (old["id"], pending_id):
        assert stored(db, call_id) == dict.fromkeys(stored(db, call_id), 0)
    gone = query(db, "select call_id, detected_at from neuron.deleted_calls order by 1")
    assert [row[0] for row in gone] == sorted([old["id"], pending_id])
    assert not query(
        db,
        "select 1 from neuron.callback_queue where contact_phone = "
        f"'{old['contact']['phone']}' and call_id = '{old['id']}'",
    )
    # no tombstone stays as a row
    for table in ("calls", "transcripts", "transcript_segments", "speaker_sentiment"):
        assert query(db, f"select count(*) from neuron.{table} where _deleted")[0][0] == 0
    assert_matches_truth(db, sb.truth())


def test_a_call_listed_hours_late_is_loaded_by_the_audit(make_sandbox: Make, tmp_path):
    sb = make_sandbox(calls=300, days=10)
    newest_first = calls(sb)
    # a call X followed within the hour by another Y, both at least a day old (the newest such)
    edge = sb.now().subtract(days=1)
    late, after = next(
        (x, y)
        for y, x in zip(newest_first, newest_first[1:], strict=False)
        if pendulum.parse(y["started_at"]) < edge
        and 0
        < (pendulum.parse(y["started_at"]) - pendulum.parse(x["started_at"])).in_minutes()
        < 50
    )
    sb.delay_listing(late["id"], 3 * 3600)
    now = sb.now()
    sb.set_now(pendulum.parse(late["started_at"]).subtract(minutes=1))
    scheduled(sb, tmp_path, lookback_minutes=0)
    sb.set_now(pendulum.parse(after["started_at"]).add(minutes=5))
    scheduled(sb, tmp_path, lookback_minutes=0)  # lists Y, not X: the cursor passes X
    sb.set_now(now)
    result = scheduled(sb, tmp_path, lookback_minutes=0)
    assert result.report.audit.repaired["missing"] >= 1
    assert stored(tmp_path / "calls.duckdb", late["id"])["calls"] == 1
    assert_matches_truth(tmp_path / "calls.duckdb", sb.truth())


def test_retranscribed_with_fewer_and_zero_segments_is_replaced_by_a_repair(
    make_sandbox: Make, tmp_path
):
    sb = make_sandbox(calls=300, days=10)
    scheduled(sb, tmp_path)
    db = tmp_path / "calls.duckdb"
    truth = sb.truth()
    shrink, empty = [
        c
        for c in calls(sb)
        if c["id"] in truth["transcripts"]
        and len(truth["transcripts"][c["id"]]["transcript"]) > 2
        and pendulum.parse(c["started_at"]) < sb.now().subtract(days=1)
    ][:2]
    sb.retranscribe(shrink["id"], segments=1)
    sb.retranscribe(empty["id"], segments=0)
    sb.advance(1800)
    days = sorted(pendulum.parse(c["started_at"]).date() for c in (shrink, empty))
    sb.reset_stats()
    result = scheduled(
        sb,
        tmp_path,
        repair_from=days[0].isoformat(),
        repair_to=days[1].isoformat(),
        repair_transcripts=True,
    )
    assert result.report.audit.repaired["transcript"] == 2
    assert stored(db, shrink["id"])["transcript_segments"] == 1
    assert stored(db, empty["id"])["transcript_segments"] == 0
    assert result.report.listed == 0  # a repair run lists no window of its own
    scheduled(sb, tmp_path)  # the calls dialled meanwhile
    assert_matches_truth(db, sb.truth())


def test_an_unchanged_warehouse_costs_one_list_request_per_small_day(make_sandbox: Make, tmp_path):
    sb = make_sandbox(calls=300, days=10)
    scheduled(sb, tmp_path)
    db = tmp_path / "calls.duckdb"
    pending = query(
        db,
        "select count(*) from neuron.calls c where status = 'in_progress' or (transcript_job_id "
        "is not null and c.id not in (select call_id from neuron.transcripts))",
    )[0][0]
    sb.reset_stats()
    result = scheduled(sb, tmp_path)
    reads = sb.stats()["by_endpoint"]
    # the incremental list (1 page) + one page per audited day (each under 100 calls)
    assert reads["list"] == 1 + 1 + 7  # and the API's clock
    assert reads["detail"] == pending  # the pending re-poll only: no audit request
    assert result.report.audit.days_differing == 0
    assert len(result.report.audit.days) == 7
    assert_matches_truth(db, sb.truth())


def test_the_audit_reads_the_warehouse_on_the_runners_thread_only(
    make_sandbox: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source never reads the warehouse: what the audit compares with is read by the runner
    on its own thread between two loads, and the drift is still found and healed (a sync's audit
    and a repair's). dlt's sql_client is never opened from the fetching's thread."""
    import threading

    from dlt.pipeline.pipeline import Pipeline

    sb = make_sandbox(calls=300, days=10)
    scheduled(sb, tmp_path)
    opened_on: list[str] = []
    sql_client = Pipeline.sql_client

    def recorded(self: Pipeline, *args: Any, **kw: Any) -> Any:
        opened_on.append(threading.current_thread().name)
        return sql_client(self, *args, **kw)

    monkeypatch.setattr(Pipeline, "sql_client", recorded)
    relabelled = final_call(sb, older_than_hours=50)
    sb.relabel(relabelled["id"], disposition="escalated")
    sb.advance(1800)
    result = scheduled(sb, tmp_path)
    assert result.report.audit.repaired["changed"] == 1
    assert_matches_truth(tmp_path / "calls.duckdb", sb.truth())
    erased = final_call(sb, older_than_hours=30)
    sb.erase(erased["id"])
    day = pendulum.parse(erased["started_at"]).date().isoformat()
    repaired = scheduled(sb, tmp_path, repair_from=day, repair_to=day)
    assert repaired.report.audit.repaired["erased"] == 1
    assert_matches_truth(tmp_path / "calls.duckdb", sb.truth())
    assert opened_on and set(opened_on) == {threading.main_thread().name}
