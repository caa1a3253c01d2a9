"""End to end: the real sandbox over loopback HTTP, synced into DuckDB, compared with its truth."""

from __future__ import annotations

import argparse

import pendulum

from pipelines.commands import console, status
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import DETAIL_KEYS, assert_matches_truth, expected, query, read_state, sync


def requests_by_endpoint(sandbox: Sandbox) -> dict[str, int]:
    return dict(sandbox.stats()["by_endpoint"])


def test_first_and_second_sync_match_truth_and_read_only_what_changed(make_sandbox, tmp_path):
    sandbox = make_sandbox(calls=400)
    db = tmp_path / "calls.duckdb"

    first = sync(sandbox, tmp_path)
    truth = sandbox.truth()
    assert first.exit_code == runner.EXIT_OK, first.error
    assert_matches_truth(db, truth)
    assert first.inserted == len(truth["calls"]) == first.report.listed == 400
    state = read_state(db)
    assert state["cursor"] == max(c["started_at"] for c in truth["calls"])
    not_final = {c["id"] for c in truth["calls"] if c["status"] == "in_progress"}
    processing = {
        c["id"]
        for c in truth["calls"]
        if c["transcript_job_id"] and c["id"] not in truth["transcripts"]
    }
    assert not_final and processing, "the sandbox should leave work pending at its clock"
    assert set(state["pending"]) == not_final | processing
    with_job = sum(1 for c in truth["calls"] if c["transcript_job_id"])
    assert requests_by_endpoint(sandbox) | {"recording": 0} == {
        "list": 1 + 4,  # the API's clock (GET /calls?limit=1), then 4 pages
        "detail": 400,
        "transcript": with_job,
        "recording": 0,
    }

    # two hours later: new calls, the pending ones final; only those are read
    sandbox.reset_stats()
    sandbox.advance(2 * 3600)
    no_audit = {"audit_days": 0}  # this test counts the incremental path's requests alone
    second = sync(sandbox, tmp_path, source_args=no_audit)
    new_truth = sandbox.truth()
    assert second.exit_code == runner.EXIT_OK, second.error
    assert_matches_truth(db, new_truth)
    new_ids = {c["id"] for c in new_truth["calls"]} - {c["id"] for c in truth["calls"]}
    assert new_ids
    assert second.inserted == len(new_ids)
    reads = requests_by_endpoint(sandbox)
    assert reads["detail"] == len(new_ids | not_final | processing)
    assert reads["list"] == 1 + 1  # the clock, then one page

    # unchanged re-run: one list page, no details, no transcripts, no new rows
    sandbox.reset_stats()
    pending_now = set(read_state(db)["pending"])
    third = sync(sandbox, tmp_path, source_args=no_audit)
    assert third.exit_code == runner.EXIT_OK
    assert third.inserted == 0
    assert requests_by_endpoint(sandbox)["detail"] == len(pending_now)
    assert_matches_truth(db, new_truth)


def test_rerun_adds_no_rows_and_no_token_is_stored(sandbox, tmp_path):
    db = tmp_path / "calls.duckdb"
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    counts = {
        t: query(db, f"select count(*) from neuron.{t}")[0][0]
        for t in ("calls", "transcripts", "transcript_segments", "speaker_sentiment")
    }
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    assert sync(sandbox, tmp_path, full_refresh=True).exit_code == runner.EXIT_OK
    for table, count in counts.items():
        assert query(db, f"select count(*) from neuron.{table}")[0][0] == count
    assert_matches_truth(db, sandbox.truth())

    # the signed recording URL is a credential: no column, no value anywhere in the file
    text_columns = query(
        db,
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR'",
    )
    assert not [c for c in text_columns if "recording_url" in c[2]]
    for schema, table, column in text_columns:
        leaked = query(
            db,
            f'select count(*) from "{schema}"."{table}" '
            f"where \"{column}\" like '%token=%' or \"{column}\" like '%/recordings/%'",
        )[0][0]
        assert leaked == 0, f"{schema}.{table}.{column} holds a recording URL"


def test_the_source_in_a_users_own_pipeline(make_sandbox, tmp_path, monkeypatch):
    """The README's Python use: `neuron_source()` in the user's own `dlt.pipeline`, no runner.
    The arrow rows still get dlt's row id and load id (NOT NULL columns), run after run."""
    import dlt

    from pipelines.neuron import neuron_source
    from pipelines.warehouse.access import Warehouse
    from pipelines.warehouse.views import apply_views

    for name in ("ADD_DLT_ID", "ADD_DLT_LOAD_ID"):
        monkeypatch.delenv(f"NORMALIZE__PARQUET_NORMALIZER__{name}", raising=False)
    sb = make_sandbox(calls=200)
    db = tmp_path / "own.duckdb"
    pipeline = dlt.pipeline(
        "own_pipeline",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(db)),
        dataset_name="neuron",
    )
    for _ in range(2):
        pipeline.run(neuron_source(api_key=sb.api_key, base_url=sb.base_url))
        sb.advance(3 * 3600)
    with Warehouse.of(pipeline) as wh:
        apply_views(wh)
    assert_matches_truth(db, sb.truth())
    rows, ids, load_ids = query(
        db,
        "select count(*), count(distinct _dlt_id), count(_dlt_load_id) "
        "from neuron.transcript_segments",
    )[0]
    assert rows == ids == load_ids > 0
    assert query(db, "select count(*) from neuron.campaign_funnel")[0][0] > 0


def test_fields_the_api_added_beside_arrow_rows(sandbox, tmp_path):
    """Most rows go to dlt as arrow tables; the few with undocumented fields go as dicts in the
    same load: a segment's `words` lands in a new column (NULL on the others), a transcript's
    `keywords` list in dlt's child table, and every row has dlt's row id and load id."""
    db = tmp_path / "calls.duckdb"
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    truth = sandbox.truth()["transcripts"]
    words = {
        (call_id, index): segment.get("words")
        for call_id, transcript in truth.items()
        for index, segment in enumerate(transcript["transcript"])
    }
    assert 0 < sum(value is not None for value in words.values()) < len(words) / 10
    stored = query(db, "select call_id, segment_index, words from neuron.transcript_segments")
    assert {(call_id, index): value for call_id, index, value in stored} == words
    keywords = {call_id: sorted(t["keywords"]) for call_id, t in truth.items() if t.get("keywords")}
    assert keywords, "the sandbox should serve some transcripts with keywords"
    stored = query(
        db,
        "select t.call_id, list_sort(list(k.value)) from neuron.transcripts t "
        "join neuron.transcripts__keywords k on k._dlt_parent_id = t._dlt_id group by 1",
    )
    assert dict(stored) == keywords
    for table in ("calls", "transcripts", "transcript_segments", "speaker_sentiment"):
        rows, ids, load_ids = query(
            db,
            f"select count(*), count(distinct _dlt_id), count(_dlt_load_id) from neuron.{table}",
        )[0]
        assert rows == ids == load_ids > 0, table


def test_types_extra_fields_and_non_ascii(sandbox, tmp_path):
    db = tmp_path / "calls.duckdb"
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    types = dict(
        query(
            db,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'neuron' and table_name = 'calls'",
        )
    )
    assert types["started_at"] == types["ended_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["has_recording"] == "BOOLEAN"
    assert "recording_url" not in types and "contact" not in types

    truth = sandbox.truth()
    extra_fields = {
        (c["id"], key): value
        for c in truth["calls"]
        for key, value in c.items()
        if key not in DETAIL_KEYS and not isinstance(value, dict | list)
    }
    assert extra_fields, "the sandbox should serve some undocumented fields"
    for (call_id, key), value in extra_fields.items():
        assert query(db, f"select {key} from neuron.calls where id = '{call_id}'") == [(value,)]
    texts = [row[0] for row in query(db, "select text from neuron.transcript_segments")]
    assert any(any(ord(ch) > 0x900 for ch in text) for text in texts)  # Devanagari / Tamil
    assert sorted(texts) == sorted(
        s["text"] for t in truth["transcripts"].values() for s in t["transcript"]
    )


def test_backfill_and_filters_do_not_move_the_cursor(sandbox, tmp_path):
    db = tmp_path / "calls.duckdb"
    truth = sandbox.truth()
    calls = sorted(truth["calls"], key=lambda c: c["started_at"])
    window = calls[100]["started_at"], calls[149]["started_at"]

    result = sync(sandbox, tmp_path, backfill_from=window[0], backfill_to=window[1])
    assert result.exit_code == runner.EXIT_OK, result.error
    loaded = {row[0] for row in query(db, "select id from neuron.calls")}
    assert loaded == {c["id"] for c in calls if window[0] <= c["started_at"] <= window[1]}
    assert read_state(db).get("cursor") is None

    campaign = next(c["campaign_id"] for c in calls if c["campaign_id"])
    result = sync(sandbox, tmp_path, filters={"campaign_id": campaign, "language": "hi-IN"})
    assert result.exit_code == runner.EXIT_OK, result.error
    in_campaign = {
        row[0]
        for row in query(
            db,
            f"select id from neuron.calls where campaign_id = '{campaign}' and language = 'hi-IN'",
        )
    }
    assert in_campaign == {
        c["id"] for c in calls if c["campaign_id"] == campaign and c["language"] == "hi-IN"
    }
    assert read_state(db).get("cursor") is None

    # the incremental run then reads the whole history, and equals the truth
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    assert_matches_truth(db, truth)


def test_start_date_limits_the_first_sync(sandbox, tmp_path):
    truth = sandbox.truth()
    start = sorted(c["started_at"] for c in truth["calls"])[-50]
    result = sync(sandbox, tmp_path, source_args={"start_date": start})
    assert result.exit_code == runner.EXIT_OK, result.error
    assert result.report.listed == 50


def test_pending_call_expires_after_pending_max_days(make_sandbox, tmp_path):
    sandbox = make_sandbox(calls=120)
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    pending = read_state(tmp_path / "calls.duckdb")["pending"]
    assert pending
    with pendulum.travel(days=8):  # the pipeline's clock, not the sandbox's
        result = sync(sandbox, tmp_path)
    assert sorted(result.report.expired) == sorted(pending)
    assert read_state(tmp_path / "calls.duckdb")["pending"] == {}


def test_views_are_created_and_match_the_calls(sandbox, tmp_path):
    db = tmp_path / "calls.duckdb"
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    truth = expected(sandbox.truth())["calls"]
    final = [c for c in truth.values() if c[3] in ("completed", "failed")]
    funnel = query(db, "select sum(calls), sum(connected) from neuron.campaign_funnel")
    assert funnel == [(len(final), sum(1 for c in final if c[5] and c[5] > 0))]
    talk = query(db, "select count(*) from neuron.talk_time")[0][0]
    assert talk == len(sandbox.truth()["transcripts"])


def test_status_shows_cursor_pending_and_runs(sandbox, tmp_path, capsys):
    db = tmp_path / "calls.duckdb"
    options = runner.SyncOptions(
        duckdb_path=db,
        pipelines_dir=str(tmp_path / "dlt"),
        source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key},
    )
    runner.run_sync(options)
    assert status.run(argparse.Namespace(duckdb=db, destination=None, format="text")) == 0
    out = capsys.readouterr().out
    state = read_state(db)
    assert state["cursor"] in out
    assert f"{len(state['pending'])} calls" in out
    assert "call in_progress" in out
    oldest = min(state["pending"], key=lambda k: state["pending"][k]["since"])
    assert oldest in out  # the pending calls are listed by id
    assert "incremental" in out  # the run log


def test_summary_names_every_figure(sandbox, tmp_path):
    result = sync(sandbox, tmp_path)
    text = console.summary(result)
    for word in (
        "listed",
        "inserted",
        "loaded again",
        "transcripts",
        "pending",
        "requests",
        "retries",
        "429",
        "time",
    ):
        assert word in text
    assert f"listed {len(sandbox.truth()['calls'])}" in text


def test_a_backfill_of_loaded_calls_claims_no_update(sandbox, tmp_path):
    # a backfill loads every call of its window again, changed or not: the summary says so
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    day = "2026-10-30"
    again = sync(
        sandbox, tmp_path, backfill_from=f"{day}T00:00:00Z", backfill_to=f"{day}T23:59:59Z"
    )
    n = sum(c["started_at"].startswith(day) for c in sandbox.truth()["calls"])
    assert n and again.report.listed == n
    line = console.summary(again).splitlines()[0]
    assert line == f"calls        listed {n}, inserted 0, loaded again {n}"


def test_state_survives_a_lost_working_folder(make_sandbox, tmp_path):
    import shutil

    sandbox = make_sandbox(calls=150)
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    state = read_state(tmp_path / "calls.duckdb")
    shutil.rmtree(tmp_path / "dlt")  # dlt's working folder, e.g. a new container
    sandbox.reset_stats()
    result = sync(sandbox, tmp_path)
    assert result.exit_code == runner.EXIT_OK, result.error
    assert result.inserted == 0
    # restored from the DuckDB file: only the pending calls are fetched again
    assert requests_by_endpoint(sandbox)["detail"] == len(state["pending"])
    assert_matches_truth(tmp_path / "calls.duckdb", sandbox.truth())


def test_two_duckdb_files_under_one_home_each_keep_their_own_cursor(make_sandbox, tmp_path):
    sandbox = make_sandbox(calls=200)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()

    def run(folder):
        return runner.run_sync(
            runner.SyncOptions(
                duckdb_path=folder / "calls.duckdb",
                pipelines_dir=str(tmp_path / "dlt"),
                source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key},
            )
        )

    assert run(a).exit_code == runner.EXIT_OK
    for _ in range(3):  # same working folder, another file, whose state gets ahead of a's
        sandbox.advance(4 * 3600)
        assert run(b).exit_code == runner.EXIT_OK
    result = run(a)  # must resume from a's own cursor, not b's
    assert result.exit_code == runner.EXIT_OK, result.error
    assert_matches_truth(a / "calls.duckdb", sandbox.truth())
    assert_matches_truth(b / "calls.duckdb", sandbox.truth())


def test_full_refresh_with_a_window_or_filter_is_refused(sandbox, tmp_path):
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    result = sync(sandbox, tmp_path, full_refresh=True, filters={"language": "hi-IN"})
    assert result.exit_code == runner.EXIT_CONFIG
    assert "--full-refresh" in (result.error or "")
    assert_matches_truth(tmp_path / "calls.duckdb", sandbox.truth())  # nothing dropped


def test_base_url_without_v1_is_a_config_error(sandbox, tmp_path):
    result = sync(sandbox, tmp_path, source_args={"base_url": sandbox.base_url.removesuffix("/v1")})
    assert result.exit_code == runner.EXIT_CONFIG
    assert "SOURCES__NEURON__BASE_URL" in (result.error or "")


def test_demo_refuses_to_overwrite_a_real_database(sandbox, tmp_path):
    from pipelines.cli import main

    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    db = tmp_path / "calls.duckdb"
    before = db.stat().st_size
    assert main(["demo", "--duckdb", str(db), "--calls", "10"]) == runner.EXIT_CONFIG
    assert db.stat().st_size == before
    assert_matches_truth(db, sandbox.truth())


def test_calls_without_a_phone_are_contacts_of_their_own(make_sandbox, tmp_path):
    """The sandbox serves some calls without a phone (and some without a name): each matches no
    other call, so its callback waits in the queue and its DND counts no one else's calls."""
    sandbox = make_sandbox(calls=1000)
    no_phone = [
        c
        for c in sandbox.truth()["calls"]
        if c["contact"]["phone"] is None and c["status"] != "in_progress"
    ]
    for call in no_phone[:2]:  # a DND without a phone, and one after it: someone else's call
        sandbox.relabel(call["id"], disposition="dnd")
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    db = tmp_path / "calls.duckdb"
    truth = sandbox.truth()["calls"]
    no_phone = [c for c in truth if c["contact"]["phone"] is None]
    assert 0 < len(no_phone) < 0.05 * len(truth)
    assert any(c["contact"]["name"] is None for c in truth)
    callbacks = sorted(c["id"] for c in no_phone if c["disposition"] == "callback")
    dnd = sorted(c["started_at"] for c in no_phone if c["disposition"] == "dnd")
    assert callbacks and dnd
    waiting = query(
        db, "select call_id from neuron.callback_queue where contact_phone is null order by 1"
    )
    assert [row[0] for row in waiting] == callbacks
    rows = query(
        db,
        "select strftime(first_dnd_at at time zone 'UTC', '%Y-%m-%dT%H:%M:%SZ'), calls_after_dnd "
        "from neuron.dnd_contacts where contact_phone is null order by 1",
    )
    assert rows == [(started, 0) for started in dnd]
