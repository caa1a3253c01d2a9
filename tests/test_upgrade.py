"""Upgrades: warehouses and dlt states captured from released versions sync on with this one.

The fixtures (tests/fixtures/releases, made by its capture.py with each release's own code
against this sandbox) are: v2026-11-28 (af1ca9f, before fingerprints: `recent` holds bare
timestamps), v2026-11-29 (102ac49), v2026-12-07 (e07f021) and v2026-12-07-stopped (e07f021, a
first sync stopped by SIGTERM with its history walk open). Each goes on incrementally: no call
loaded again but the pending ones and those the old state could not vouch for, the cursor
where the API's newest call is, nothing twice, the open walk finished.
"""

from __future__ import annotations

import copy
import gzip
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.neuron import versions
from pipelines.neuron.progress import walks_of
from pipelines.runner import sync as runner
from pipelines.runner.outcomes import explain
from pipelines.sandbox import Sandbox
from pipelines.warehouse.targets import DuckDBTarget

from .helpers import assert_matches_truth, load_ids, query, read_state, reloaded
from .procs import PIPELINE_DIR, run_cli, sandbox_env, sync_args
from .test_resume import details

RELEASES = Path(__file__).parent / "fixtures" / "releases"
FIXTURES = ["v2026-11-28", "v2026-11-29", "v2026-12-07", "v2026-12-07-stopped"]


def captured_state(name: str) -> dict[str, Any]:
    """The source state as that release left it in dlt's working folder."""
    state = json.loads((RELEASES / f"{name}.state.json").read_text())
    return dict(state["sources"]["neuron"])


def captured_file(name: str, home: Path, in_place: bool) -> Path:
    """The release's DuckDB file under `home`; `in_place`: its dlt working folder too, as an
    upgrade in place finds it (else dlt restores the state from the file, as after a move)."""
    db = home / "calls.duckdb"
    with gzip.open(RELEASES / f"{name}.duckdb.gz", "rb") as src, open(db, "wb") as dst:
        shutil.copyfileobj(src, dst)
    if in_place:
        workdir = home / PIPELINE_DIR
        with tarfile.open(RELEASES / f"{name}.workdir.tar.gz") as tar:
            tar.extractall(workdir, filter="data")
        (workdir / "neuron_target").write_text(DuckDBTarget(db).identity, encoding="utf-8")
    return db


# -- each migration, on states captured from releases --------------------------------------------


@pytest.mark.unit
def test_every_version_has_its_migration() -> None:
    assert len(versions.MIGRATIONS) == versions.STATE_VERSION


@pytest.mark.unit
def test_to_1_gives_bare_timestamps_in_recent_an_unknown_fingerprint() -> None:
    state = captured_state("v2026-11-28")
    written = dict(state["recent"])
    assert written and all(isinstance(at, str) for at in written.values())  # as it was written
    versions.migrate(state)
    assert state["recent"] == {call_id: [at, ""] for call_id, at in written.items()}
    assert state[versions.KEY] == versions.STATE_VERSION


@pytest.mark.unit
@pytest.mark.parametrize("name", ["v2026-11-29", "v2026-12-07", "v2026-12-07-stopped"])
def test_to_1_keeps_a_state_with_fingerprints_as_it_is(name: str) -> None:
    before = captured_state(name)
    after = copy.deepcopy(before)
    versions.MIGRATIONS[0](after)
    assert after == before


@pytest.mark.unit
def test_to_2_names_a_walks_bounds_and_changes_nothing_else() -> None:
    """A stopped first sync's open walk: `start`, `top` and `end` become `lower`, `upper` and
    `reached` (the moving boundary), with their values; `status` reads the walk of a state no
    run of this release has written yet, and leaves that state as it is."""
    before = captured_state("v2026-12-07-stopped")
    (written,) = before["walks"]
    assert {"start", "top", "end"} <= set(written)  # as that release wrote it
    read = walks_of(before)  # as `status` reads it
    assert before == captured_state("v2026-12-07-stopped")  # left as it was
    after = versions.migrate(copy.deepcopy(before))
    (walk,) = after["walks"]
    assert (walk["lower"], walk["upper"], walk["reached"]) == (
        written["start"],
        written["top"],
        written["end"],
    )
    assert not {"start", "top", "end"} & set(walk)
    assert {k: v for k, v in walk.items() if k not in ("lower", "upper", "reached")} == {
        k: v for k, v in written.items() if k not in ("start", "top", "end")
    }
    assert after["state_version"] == 2
    assert [(w.lower, w.upper, w.reached) for w in read] == [
        (written["start"], written["top"], written["end"])
    ]
    assert {k: v for k, v in after.items() if k not in ("walks", versions.KEY)} == {
        k: v for k, v in before.items() if k != "walks"
    }


@pytest.mark.unit
def test_a_state_of_a_newer_release_is_refused_with_exit_2() -> None:
    state = {**captured_state("v2026-12-07"), versions.KEY: versions.STATE_VERSION + 1}
    with pytest.raises(versions.StateTooNew) as refused:
        versions.migrate(state)
    code, line = explain(refused.value)
    assert code == runner.EXIT_CONFIG and "newer neuron-calls" in line and "upgrade" in line
    assert state[versions.KEY] == versions.STATE_VERSION + 1  # left as it was


# -- end to end: the old warehouse and state sync on with this release -------------------------


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "moved"])
@pytest.mark.parametrize("name", FIXTURES)
def test_a_warehouse_of_an_older_release_syncs_on_without_a_reload(
    name: str, in_place: bool, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    meta = json.loads((RELEASES / f"{name}.json").read_text())
    sandbox = make_sandbox(**meta["sandbox"])
    db = captured_file(name, tmp_path, in_place)
    old = read_state(db)
    assert versions.KEY not in old  # written before versions
    before = load_ids(db)
    truth_ids = {c["id"] for c in sandbox.truth()["calls"]}
    assert set(before) <= truth_ids, (
        "the sandbox's data changed since the fixtures were captured: run "
        "tests/fixtures/releases/capture.py again (see its docstring)"
    )
    stopped = bool(old.get("walks"))
    if not stopped:
        sandbox.advance(3600)  # an hour later: new calls, and the pending ones moved on
    sandbox.reset_stats()
    env = sandbox_env(tmp_path, sandbox, SOURCES__NEURON__PENDING_MAX_DAYS="3650")
    run = run_cli(tmp_path, sync_args(db), env)
    assert run.returncode == runner.EXIT_OK, run.stderr
    truth = sandbox.truth()
    assert_matches_truth(db, truth)
    assert query(db, "select count(*) = count(distinct id) from neuron.calls") == [(True,)]
    state = read_state(db)
    assert state[versions.KEY] == versions.STATE_VERSION
    assert state["cursor"] == max(c["started_at"] for c in truth["calls"]) >= old["cursor"]
    assert "walks" not in state  # a walk left open by the old release is finished
    # no reload: of the calls the old release loaded, only its pending ones and those its
    # state could not vouch for (no fingerprint) were fetched and loaded again
    unknown = {k for k, v in old.get("recent", {}).items() if isinstance(v, str)}
    again = reloaded(before, load_ids(db)) & set(before)
    assert again <= set(old["pending"]) | unknown, again - set(old["pending"])
    new = len(set(load_ids(db)) - set(before))
    assert details(sandbox) <= new + len(old["pending"]) + len(unknown)
