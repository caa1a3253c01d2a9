"""What a new user meets first, as real processes: a refused key leaves nothing behind, `status`
and the sync's summary word the pending calls alike and fit a 120-column terminal, `-v` shows
each request and no secret, and a non-editable install works from any folder."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .procs import assert_one_line, cli_env, run_cli, sandbox_env, sync_args

REPO = Path(__file__).resolve().parents[1]


def test_a_refused_key_in_a_fresh_folder_leaves_no_file_behind(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {**sandbox_env(tmp_path, sandbox), "SOURCES__NEURON__API_KEY": "sk_wrong_key_123"}
    proc = run_cli(tmp_path, sync_args(work / "calls.duckdb"), env)
    assert_one_line(proc, runner.EXIT_CONFIG, "refused the key", "SOURCES__NEURON__API_KEY")
    assert sorted(p.name for p in work.iterdir()) == []  # no empty DuckDB file, no .lock
    pipelines = tmp_path / ".dlt" / "pipelines"
    assert not list(pipelines.glob("*.lock")) and not list(pipelines.glob(".*.lock"))


def test_status_and_the_summary_word_pending_alike_and_status_fits_120_columns(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=150)
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(tmp_path, sb)
    synced = run_cli(tmp_path, sync_args(db), env)
    assert synced.returncode == 0, synced.stderr
    summary = re.search(r"^pending +(\d+ calls \(.*\))$", synced.stdout, re.M)
    assert summary, synced.stdout
    repair = ["audit", "--duckdb", str(db), "--days", "2", "--repair"]
    assert run_cli(tmp_path, [sys.executable, "-m", "pipelines", *repair], env).returncode == 0
    status = run_cli(tmp_path, [sys.executable, "-m", "pipelines", "status", "--duckdb", str(db)])
    assert status.returncode == 0, status.stderr
    assert f"pending      {summary.group(1)}; pending since" in status.stdout
    assert "audit-repair" in status.stdout and "incremental" in status.stdout
    widest = max(len(line) for line in status.stdout.splitlines())
    assert widest <= 120, status.stdout
    assert "…" not in status.stdout  # nothing cut to fit


def test_verbose_shows_each_request_and_never_the_key_nor_a_signed_url(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=40)
    env = sandbox_env(tmp_path, sb, SOURCES__NEURON__RECORDINGS_URL=str(tmp_path / "recordings"))
    proc = run_cli(tmp_path, [*sync_args(tmp_path / "calls.duckdb"), "-v"], env)
    assert proc.returncode == 0, proc.stderr
    requests = [
        line for line in proc.stderr.splitlines() if re.search(r" GET /\S+ -> \d+ in ", line)
    ]
    assert any("GET /calls?" in line and "limit=100" in line for line in requests)
    assert sum("GET /calls/cal_" in line for line in requests) >= 40
    assert any(re.search(r"GET /recordings/cal_\w+\.wav -> 200 in \d+ ms", x) for x in requests)
    assert sb.api_key not in proc.stderr + proc.stdout
    assert "token=" not in proc.stderr and "expires=" not in proc.stderr


def test_a_non_editable_install_works_from_any_folder(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    views = sorted(p.name for p in (target / "pipelines" / "warehouse" / "sql").glob("*.sql"))
    assert views == sorted(p.name for p in (REPO / "pipelines" / "warehouse" / "sql").glob("*.sql"))
    check = (
        "import pipelines, pathlib; from pipelines.warehouse.views import VIEW_NAMES; "
        "print(pathlib.Path(pipelines.__file__).parent, len(VIEW_NAMES))"
    )
    for cwd, home in ((tmp_path, target), (REPO, REPO)):  # elsewhere; the repo's root shadows
        env = cli_env(tmp_path, PYTHONPATH=str(target))
        proc = subprocess.run(
            [sys.executable, "-c", check], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [str(home / "pipelines"), str(len(views))]
        status = subprocess.run(
            [sys.executable, "-m", "pipelines", "status", "--duckdb", str(tmp_path / "x.duckdb")],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        assert_one_line(status, runner.EXIT_CONFIG, "does not exist yet")
