"""The Dagster definitions in-process against the sandbox: every table equals the truth, the
views exist, the audit check passes, then fails once the API drifts.

Dagster is imported inside the tests (its import takes seconds), so the other test files'
workers do not pay for it at collection.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.sandbox import Sandbox
from pipelines.warehouse.views import VIEW_NAMES

from .helpers import assert_matches_truth, query, read_state

SANDBOX_DAY = "2026-11-01"  # the sandbox's today (conftest's SANDBOX_NOW)


@pytest.fixture
def dagster_env(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Sandbox, Path]:
    from pipelines import dagster_defs

    sb = make_sandbox(calls=80)
    monkeypatch.setenv("SOURCES__NEURON__API_KEY", sb.api_key)
    monkeypatch.setenv("SOURCES__NEURON__BASE_URL", sb.base_url)
    db = tmp_path / "dagster.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(db))  # dlt's config, as the CLI
    warehouse = dagster_defs.NeuronWarehouse(
        pipelines_dir=str(tmp_path / "dlt"), audit_until=SANDBOX_DAY
    )
    return warehouse, sb, db


def test_assets_load_every_table_and_the_audit_check_sees_drift(
    dagster_env: tuple[Any, Sandbox, Path],
) -> None:
    import dagster as dg

    from pipelines import dagster_defs

    warehouse, sb, db = dagster_env
    assets = [dagster_defs.neuron_calls, dagster_defs.neuron_views, dagster_defs.calls_audit]
    # the calls asset alone, into a warehouse of its own: dlt's selection, no transcript request
    own = dagster_defs.NeuronWarehouse(
        duckdb_path=str(db.with_name("calls.duckdb")), pipelines_dir=str(db) + "_"
    )
    calls = dg.AssetSelection.assets(dagster_defs.RESOURCE_KEYS["calls"])
    alone = dg.materialize(assets, resources={"warehouse": own}, selection=calls)
    assert alone.success and sb.stats()["by_endpoint"]["transcript"] == 0
    assert query(own.duckdb_path, "select count(*) from neuron.transcripts")[0][0] == 0
    [event] = alone.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == len(sb.truth()["calls"])
    result = dg.materialize(assets, resources={"warehouse": warehouse})
    assert result.success
    assert_matches_truth(db, sb.truth())
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == set(dagster_defs.RESOURCE_KEYS) | set(VIEW_NAMES)
    views = {name for (name,) in query(db, "select table_name from information_schema.views")}
    assert set(VIEW_NAMES) <= views
    [check] = result.get_asset_check_evaluations()
    assert check.passed, check.metadata
    # the runner's run log and state: the same code path as `neuron-calls sync`
    assert query(db, "select count(*), min(outcome) from neuron._sync_runs")[0] == (2, "ok")
    assert read_state(db)["cursor"]
    erased = sb.truth()["calls"][3]["id"]
    sb.erase(erased)
    only_check = dg.AssetSelection.checks(dagster_defs.calls_audit)
    drifted = dg.materialize(assets, resources={"warehouse": warehouse}, selection=only_check)
    [check] = drifted.get_asset_check_evaluations()
    assert not check.passed and check.metadata["erased"].value == 1
    # the views alone, one of them dropped: recreated through the lock, the private copy and
    # its publish, as a sync does
    with duckdb.connect(str(db)) as con:
        con.execute("drop view neuron.campaign_funnel")
    views = dg.AssetSelection.assets(*dagster_defs.VIEW_KEYS.values())
    again = dg.materialize(assets, resources={"warehouse": warehouse}, selection=views)
    assert again.success  # no run of its own in the run log: a sync and two audits
    assert query(db, "select count(*) from neuron._sync_runs")[0][0] == 3
    assert query(db, "select count(*) from neuron.campaign_funnel")[0][0] > 0


def test_the_definitions() -> None:
    """dagster-dlt's asset per resource, the views downstream of what they read, the schedule,
    the check on calls."""
    from dagster_dlt.constants import META_KEY_SOURCE

    from pipelines import dagster_defs

    defs = dagster_defs.defs
    graph = defs.resolve_asset_graph()
    keys = {key.path[-1] for key in graph.get_all_asset_keys()}
    assert keys == {"calls", "transcripts", "recordings"} | set(VIEW_NAMES)
    for spec in dagster_defs.neuron_calls.specs:  # built by dagster-dlt from the source
        assert spec.metadata[META_KEY_SOURCE].name == "neuron"
    transcripts = graph.get(dagster_defs.RESOURCE_KEYS["transcripts"])
    assert transcripts.parent_keys == {dagster_defs.RESOURCE_KEYS["calls"]}
    assert "transcript_segments" in transcripts.metadata["dlt_tables"]
    talk_time = graph.get(dagster_defs.VIEW_KEYS["talk_time"])
    assert dagster_defs.VIEW_KEYS["stg_transcript_segments"] in talk_time.parent_keys
    segments = graph.get(dagster_defs.VIEW_KEYS["stg_transcript_segments"])
    assert dagster_defs.RESOURCE_KEYS["transcripts"] in segments.parent_keys
    [check] = graph.asset_check_keys
    assert check.asset_key == dagster_defs.RESOURCE_KEYS["calls"]
    [schedule] = defs.schedules or []
    assert schedule.cron_schedule == "*/15 * * * *"
    assert dagster_defs.resources_for({"transcripts"}) == ("calls", "transcripts")
    assert dagster_defs.resources_for(set(dagster_defs.RESOURCE_KEYS)) is None


def test_a_run_beside_another_is_refused(dagster_env: tuple[Any, Sandbox, Path]) -> None:
    """The lock holds under Dagster: while a sync holds the pipeline's lock (here the test),
    the assets fail with the CLI's one line and load nothing."""
    import dagster as dg

    from pipelines import dagster_defs
    from pipelines.warehouse.targets import exclusive

    warehouse, sb, db = dagster_env
    lock = Path(warehouse.pipelines_dir) / ".neuron_calls.lock"
    with exclusive(lock, "this pipeline"):
        result = dg.materialize(
            [dagster_defs.neuron_calls], resources={"warehouse": warehouse}, raise_on_error=False
        )
    assert not result.success and not db.exists()
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "another sync is running on this pipeline" in str(failure.event_specific_data)
    assert sb.stats()["total"] == 0


def test_what_dagster_dev_leaves_in_the_repo_is_ignored() -> None:
    """Without DAGSTER_HOME, `dagster dev` keeps its instance in `.tmp_dagster_home_*` in the
    folder it runs in: a clone's `git status` does not show it."""
    repo = Path(__file__).resolve().parent.parent
    left = ".tmp_dagster_home_r4nd0m/storage/runs.db"
    check = ["git", "-C", str(repo), "check-ignore", "--no-index", left]
    assert subprocess.run(check, capture_output=True, text=True).stdout.strip() == left
