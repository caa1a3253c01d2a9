"""A shared Postgres warehouse: an analyst's views and grants survive our view changes and full
refreshes, or the run refuses naming them and leaves everything in place (docs/warehouses.md)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2

from pipelines.commands import console
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox
from pipelines.warehouse.views import VIEW_NAMES

from .helpers import assert_matches_truth, fetcher
from .procs import assert_one_line, run_cli, sandbox_env
from .test_postgres import pg as pg  # the fixture: a database of its own on the test server
from .test_postgres import pg_sync

SQL_DIR = Path(__file__).resolve().parents[1] / "pipelines" / "warehouse" / "sql"
OUR_TABLES = ["calls", "transcripts", "transcript_segments", "speaker_sentiment"]

# An analyst with a schema of their own: views on our view and on our table, a view on their own
# view, SELECT granted on everything of ours, and their view granted on to a reader.
ANALYST = [
    "do $$ begin create role analyst; exception when duplicate_object then null; end $$",
    "do $$ begin create role reader; exception when duplicate_object then null; end $$",
    "create schema analyst authorization analyst",
    "grant usage on schema neuron to analyst",
    "grant select on all tables in schema neuron to analyst",  # our tables and views
    "set role analyst",
    "create view analyst.my_funnel as select campaign_id, calls from neuron.campaign_funnel",
    "create view analyst.my_calls as select id, status from neuron.calls",
    "create view analyst.my_top as select * from analyst.my_funnel where calls > 0",
    "create materialized view analyst.my_statuses as "
    "select status, count(*) as calls from neuron.stg_calls group by status",
    "create index my_statuses_status on analyst.my_statuses (status)",
    "comment on view analyst.my_funnel is 'the funnel, my way'",
    "grant usage on schema analyst to reader",
    "grant select on analyst.my_funnel to reader",
    "reset role",
]
THEIRS = ["analyst.my_funnel", "analyst.my_calls", "analyst.my_statuses", "analyst.my_top"]


def execute(url: str, *statements: str) -> None:
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    conn.close()


def changed_sql(tmp: Path, **changes: Callable[[str], str]) -> Path:
    """A test-only copy of the views' SQL with some files changed."""
    folder = tmp / "sql"
    shutil.copytree(SQL_DIR, folder)
    for name, change in changes.items():
        path = folder / f"{name}.sql"
        text = path.read_text(encoding="utf-8").rstrip()
        assert text.endswith("select * from final"), name  # the shape the changes below expect
        path.write_text(change(text), encoding="utf-8")
    return folder


def column_first(text: str) -> str:
    """A new first column: Postgres cannot `create or replace` such a view."""
    return text.removesuffix("select * from final") + "select 'v2' as sql_version, * from final\n"


def calls_renamed(text: str) -> str:
    """`calls` renamed: a view that selects it cannot be built on the new one."""
    return (
        text.removesuffix("select * from final")
        + "select campaign_id, calls as final_calls from final\n"
    )


def our_grants(url: str) -> dict[str, bool]:
    """Whether the analyst may read each of our tables and views."""
    ours = [*OUR_TABLES, *VIEW_NAMES]
    (granted,) = fetcher(url)(
        "select "
        + ", ".join(f"has_table_privilege('analyst', 'neuron.{name}', 'select')" for name in ours)
    )
    return dict(zip(ours, granted, strict=True))


def state(url: str) -> dict[str, Any]:
    """What an analyst relies on: their views (definition, owner, comment), who may read what."""
    fetch = fetcher(url)
    theirs = fetch(
        "select c.oid::regclass::text, pg_get_viewdef(c.oid), pg_get_userbyid(c.relowner), "
        "obj_description(c.oid, 'pg_class') from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'analyst' order by 1"
    )
    reader = fetch("select has_table_privilege('reader', 'analyst.my_funnel', 'select')")
    return {"theirs": theirs, "grants": our_grants(url), "reader": reader}


def our_views(url: str) -> list[tuple[Any, ...]]:
    return fetcher(url)(
        "select table_name, view_definition from information_schema.views "
        "where table_schema = 'neuron' order by 1"
    )


def as_analyst(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("set role analyst")
        cursor.execute(sql)
        rows = list(cursor.fetchall())
    conn.close()
    return rows


def test_a_view_whose_columns_change_keeps_the_analysts_views_and_grants(
    pg: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert pg_sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    execute(pg, *ANALYST)
    before = state(pg)
    with_index = sorted([*THEIRS, "analyst.my_statuses_status"])  # the index on their view
    assert [name for name, *_ in before["theirs"]] == with_index
    assert all(before["grants"].values()) and before["reader"] == [(True,)]
    funnel = as_analyst(pg, "select * from analyst.my_top order by 1")
    statuses = as_analyst(pg, "select * from analyst.my_statuses order by 1")
    # a new first column in a view everything reads, and in one the analyst's view reads
    sql = changed_sql(tmp_path, stg_calls=column_first, campaign_funnel=column_first)
    changed = pg_sync(sandbox, tmp_path, sql_folder=sql)
    assert changed.exit_code == runner.EXIT_OK, changed.error
    on_pg = fetcher(pg)
    assert on_pg("select distinct sql_version from neuron.campaign_funnel") == [("v2",)]
    assert on_pg("select distinct sql_version from neuron.stg_calls") == [("v2",)]
    assert state(pg) == before  # their views as they were, owned by them; every grant kept
    assert as_analyst(pg, "select * from analyst.my_top order by 1") == funnel
    assert as_analyst(pg, "select * from analyst.my_statuses order by 1") == statuses
    back = pg_sync(sandbox, tmp_path)  # the package's SQL again: the same once more
    assert back.exit_code == runner.EXIT_OK, back.error
    assert state(pg) == before
    assert on_pg(
        "select count(*) from information_schema.columns "
        "where table_schema = 'neuron' and column_name = 'sql_version'"
    ) == [(0,)]


def assert_refused_leaving_everything(
    pg: str, sandbox: Sandbox, tmp: Path, names: list[str], **options: Any
) -> dict[str, Any]:
    """A run with the analyst's objects in place exits 2, one line naming `names`, and changes
    nothing: theirs, ours, the grants; returns what was there."""
    assert pg_sync(sandbox, tmp).exit_code == runner.EXIT_OK
    execute(pg, *ANALYST)
    before, views_before = state(pg), our_views(pg)
    assert sorted(name for name, _ in views_before) == sorted(VIEW_NAMES)
    refused = pg_sync(sandbox, tmp, **options)
    assert refused.exit_code == runner.EXIT_CONFIG, refused.error
    assert refused.error and "\n" not in refused.error
    for name in names:
        assert name in refused.error, refused.error
    assert state(pg) == before
    assert our_views(pg) == views_before  # every view of ours in place, as it was
    return before


def test_a_view_change_that_theirs_cannot_follow_is_refused_leaving_everything(
    pg: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    sql = changed_sql(tmp_path, campaign_funnel=calls_renamed)
    names = ["analyst.my_funnel", "campaign_funnel"]
    assert_refused_leaving_everything(pg, sandbox, tmp_path, names, sql_folder=sql)
    again = pg_sync(sandbox, tmp_path)
    assert again.exit_code == runner.EXIT_OK, again.error


def test_a_full_refresh_with_their_views_on_ours_is_refused_then_runs_once_they_are_gone(
    pg: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    names = ["analyst.my_calls", "analyst.my_funnel", "--full-refresh"]
    before = assert_refused_leaving_everything(pg, sandbox, tmp_path, names, full_refresh=True)
    assert_matches_truth(pg, sandbox.truth())
    env = sandbox_env(
        tmp_path,
        sandbox,
        DESTINATION__POSTGRES__CREDENTIALS=pg,
    )
    args = [sys.executable, "-m", "pipelines", "sync", "--destination", "postgres"]
    assert_one_line(run_cli(tmp_path, [*args, "--full-refresh"], env), runner.EXIT_CONFIG, *names)
    assert state(pg) == before
    later = pg_sync(sandbox, tmp_path)
    assert later.exit_code == runner.EXIT_OK, later.error
    # what the line says to do: drop theirs, refresh; our grants survive the re-created tables
    execute(pg, "drop materialized view analyst.my_statuses")
    execute(pg, "drop view analyst.my_top, analyst.my_funnel, analyst.my_calls")
    refreshed = pg_sync(sandbox, tmp_path, full_refresh=True)
    assert refreshed.exit_code == runner.EXIT_OK, refreshed.error
    assert_matches_truth(pg, sandbox.truth())
    assert our_grants(pg) == before["grants"]


def test_a_failed_load_names_its_cause_and_the_next_run_completes_it(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=200)
    assert pg_sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    execute(  # a DBA's trigger that refuses every change to our calls table
        pg,
        "create function frozen() returns trigger language plpgsql as "
        "$$ begin raise exception 'calls are frozen for the audit'; end $$",
        "create trigger frozen before insert or update or delete on neuron.calls "
        "for each statement execute function frozen()",
    )
    sandbox.advance(6 * 3600)
    failed = pg_sync(sandbox, tmp_path)
    assert failed.exit_code == runner.EXIT_FAILED
    assert failed.error and "calls are frozen for the audit" in failed.error, failed.error
    assert not failed.error.rstrip().endswith(":")
    assert "nothing of this run was loaded" not in console.summary(failed)
    execute(pg, "drop trigger frozen on neuron.calls")
    done = pg_sync(sandbox, tmp_path)
    assert done.exit_code == runner.EXIT_OK, done.error
    assert_matches_truth(pg, sandbox.truth())
    assert fetcher(pg)("select count(*) from neuron.campaign_funnel")[0][0] > 0


def test_a_full_refresh_whose_load_fails_leaves_our_views_and_the_next_run_completes_it(
    pg: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert pg_sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    views_before = our_views(pg)
    execute(  # a DBA freezes every DROP TABLE (as an analyst's view created meanwhile would)
        pg,
        "create function no_drops() returns event_trigger language plpgsql as "
        "$$ begin raise exception 'drops are frozen'; end $$",
        "create event trigger no_drops on ddl_command_start when tag in ('DROP TABLE') "
        "execute function no_drops()",
    )
    failed = pg_sync(sandbox, tmp_path, full_refresh=True)
    assert failed.exit_code == runner.EXIT_FAILED
    assert failed.error and "drops are frozen" in failed.error, failed.error
    assert our_views(pg) == views_before  # the warehouse is never left without our views
    execute(pg, "drop event trigger no_drops")
    done = pg_sync(sandbox, tmp_path)  # completes the refresh's load, then syncs
    assert done.exit_code == runner.EXIT_OK, done.error
    # on the re-created tables (`select *` lists their columns in the order dlt made them)
    assert [name for name, _ in our_views(pg)] == [name for name, _ in views_before]
    assert_matches_truth(pg, sandbox.truth())
