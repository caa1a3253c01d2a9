"""The source as a dlt user sees it: resources named after their tables, selected with
`with_resources` (or `sync --resources`), and no request for what is not selected.

Request counts come from the sandbox's own stats, per endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pytest

from pipelines.neuron import NeuronSettings, neuron_source
from pipelines.neuron.api.errors import ConfigError
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import expected, load_ids, read_state, reloaded, sync, warehouse

TABLES_OF = {
    "calls": {"calls", "deleted_calls"},
    "transcripts": {"transcripts", "transcript_segments", "speaker_sentiment"},
    "recordings": {"recordings"},
}


def own_pipeline(tmp: Path) -> Any:
    return dlt.pipeline(
        "own_pipeline",
        pipelines_dir=str(tmp / "dlt"),
        destination=dlt.destinations.duckdb(str(tmp / "own.duckdb")),
        dataset_name="neuron",
    )


def requests(sb: Sandbox) -> dict[str, int]:
    counts: dict[str, int] = sb.stats()["by_endpoint"]
    sb.reset_stats()
    return counts


def test_calls_alone_make_no_transcript_request(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`with_resources("calls")`: every call with its details, not one transcript request, on
    the first run and on an incremental one; dlt shows each table under its resource."""
    for mode in ("BACKFILL_FROM", "BACKFILL_TO", "REPAIR_FROM", "FILTERS", "RECORDINGS_ONLY"):
        monkeypatch.setenv(f"SOURCES__NEURON__{mode}", "garbage")  # modes are no settings
    # 10:30 in Kolkata: the hours advanced below stay in the sandbox's calling hours, so calls
    # keep being dialled and becoming final
    sb = make_sandbox(calls=120, now="2026-11-01T05:00:00Z")
    pipeline = own_pipeline(tmp_path)
    source = neuron_source(api_key=sb.api_key, base_url=sb.base_url)
    assert list(source.selected_resources) == ["calls", "transcripts", "recordings"]
    pipeline.run(source.with_resources("calls"))
    first = requests(sb)
    assert (
        first["transcript"] == 0 and first["detail"] == 120 and first["list"] == 3
    )  # two pages and the clock
    sb.advance(3 * 3600)  # new calls, and calls that became final
    pipeline.run(neuron_source(api_key=sb.api_key, base_url=sb.base_url).with_resources("calls"))
    second = requests(sb)
    assert second["transcript"] == 0 and 0 < second["detail"] < 50
    db = tmp_path / "own.duckdb"
    got, want = warehouse(db), expected(sb.truth())
    assert got["calls"] == want["calls"] and len(want["calls"]) > 120
    assert got["transcripts"] == got["segments"] == got["speakers"] == {}  # the tables exist
    # dlt's view: tables under the resource that loads them; the engine is no table
    # transcripts of calls final since (those settled without: none): a day on, so the
    # sandbox's next business hours in India (when calls connect) are in
    sb.advance(24 * 3600)
    pipeline.run(neuron_source(api_key=sb.api_key, base_url=sb.base_url))
    assert requests(sb)["transcript"] > 0
    by_resource: dict[str, set[str]] = {}
    for table in pipeline.default_schema.data_tables():
        by_resource.setdefault(table["resource"], set()).add(table["name"])
    assert by_resource == TABLES_OF
    metrics = pipeline.last_trace.last_extract_info.metrics
    resources = {name for m in metrics.values() for name in m[0]["resource_metrics"]}
    assert resources == {"calls", "transcripts", "recordings"}


def test_pending_transcripts_wait_for_a_run_with_transcripts(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """Calls pending only for their transcript: a run without transcripts neither polls them
    nor drops them; the next run with transcripts loads them."""
    sb = make_sandbox(calls=300)
    no_audit = {"source_args": {"audit_days": 0}}
    first = sync(sb, tmp_path, **no_audit)
    assert first.exit_code == runner.EXIT_OK, first.error
    waiting = _waiting_for_transcripts(tmp_path)
    assert waiting, "the sandbox should have transcripts still processing"
    sb.advance(6 * 3600)  # their transcripts are ready now
    requests(sb)
    before = load_ids(tmp_path / "calls.duckdb")
    calls_only = sync(sb, tmp_path, resources=("calls",), **no_audit)
    assert calls_only.exit_code == runner.EXIT_OK, calls_only.error
    assert requests(sb)["transcript"] == 0
    assert calls_only.report.pending_transcripts == len(waiting)
    assert waiting <= _waiting_for_transcripts(tmp_path)  # kept, as they were
    assert not waiting & reloaded(before, load_ids(tmp_path / "calls.duckdb"))  # nor their rows
    both = sync(sb, tmp_path, **no_audit)
    assert both.exit_code == runner.EXIT_OK, both.error
    assert requests(sb)["transcript"] >= len(waiting)
    want, got = expected(sb.truth()), warehouse(tmp_path / "calls.duckdb")
    assert all(got["transcripts"][call_id] == want["transcripts"][call_id] for call_id in waiting)
    assert not waiting & _waiting_for_transcripts(tmp_path)


def _waiting_for_transcripts(tmp: Path) -> set[str]:
    pending = read_state(tmp / "calls.duckdb")["pending"]
    return {k for k, v in pending.items() if v["reason"].startswith("transcript")}


def test_what_cannot_be_selected_alone_is_refused_before_any_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Transcripts without their calls, or a name that is no resource: one line, exit 2 (the
    runner, `sync --resources`), or a ConfigError from dlt's extract (a user's own pipeline)."""
    refused = sync(sandbox, tmp_path, resources=("transcripts",))
    assert refused.exit_code == runner.EXIT_CONFIG
    assert "select calls too" in (refused.error or "")
    unknown = sync(sandbox, tmp_path, resources=("calls", "segments"))
    assert unknown.exit_code == runner.EXIT_CONFIG
    assert "unknown resource 'segments'" in (unknown.error or "")
    partial = sync(sandbox, tmp_path, resources=("calls",), full_refresh=True)
    assert partial.exit_code == runner.EXIT_CONFIG and "--resources" in (partial.error or "")
    source = neuron_source(api_key=sandbox.api_key, base_url=sandbox.base_url)
    sandbox.reset_stats()
    with pytest.raises(Exception) as failed:
        own_pipeline(tmp_path).run(source.with_resources("transcripts"))
    assert "select calls too" in str(failed.value)
    assert sandbox.stats()["total"] == 0


def test_the_cli_loads_the_resources_it_is_given(sandbox: Sandbox, tmp_path: Path) -> None:
    """`neuron-calls sync --resources calls`: the calls, no transcript."""
    from pipelines import cli

    env = {
        "SOURCES__NEURON__API_KEY": sandbox.api_key,
        "SOURCES__NEURON__BASE_URL": sandbox.base_url,
    }
    db = tmp_path / "cli.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
        code = cli.main(["sync", "--duckdb", str(db), "--resources", "calls"])
        assert code == runner.EXIT_OK
        assert cli.main(["sync", "--duckdb", str(db), "--resources", " , "]) == runner.EXIT_CONFIG
    got = warehouse(db)
    assert got["calls"] == expected(sandbox.truth())["calls"] and got["transcripts"] == {}


def test_settings_are_checked_in_one_place() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        NeuronSettings(api_key="k", max_concurrency=0)
    with pytest.raises(ConfigError, match="start_date"):
        NeuronSettings(api_key="k", start_date="yesterday-ish")
    with pytest.raises(ConfigError, match="no API key"):
        NeuronSettings(api_key="")
    with pytest.raises(ConfigError, match="max_attempts"):
        neuron_source(api_key="k", base_url="http://127.0.0.1:1/v1", max_attempts=0)
    assert "k3y" not in repr(NeuronSettings(api_key="k3y"))


def test_an_erased_call_leaves_every_table_whatever_the_selection(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """The audit of a calls-only sync finds a call erased upstream: its transcript rows go too
    (the tombstones of tables not selected pass through `calls`)."""
    import pendulum

    sb = make_sandbox(calls=80)
    pendulum.travel_to(sb.now(), freeze=False)  # the audit's days are the sandbox's
    try:
        assert sync(sb, tmp_path).exit_code == runner.EXIT_OK
        erased = next(iter(expected(sb.truth())["transcripts"]))
        sb.erase(erased)
        result = sync(sb, tmp_path, resources=("calls",))
    finally:
        pendulum.travel_back()
    assert result.exit_code == runner.EXIT_OK, result.error
    assert result.report.erased == [erased]
    got = warehouse(tmp_path / "calls.duckdb")
    assert erased not in got["calls"] and erased not in got["transcripts"]
    assert not [key for key in got["segments"] if key[0] == erased]
