"""`neuron-calls demo` as a newcomer meets it: one screen of results, a report, hints that work."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .procs import cli_env, run_cli

LAPTOP_COLUMNS = 80


def test_the_demo_prints_only_what_a_newcomer_needs(tmp_path: Path) -> None:
    env = cli_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    demo = [sys.executable, "-m", "pipelines", "demo", "--calls", "400", "--latency-ms", "0"]
    done = run_cli(tmp_path, demo, env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no log lines, no library warnings
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sandbox      400 calls at http://127.0.0.1:")
    assert lines[1].startswith("calls        listed 400, inserted 400")
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert len(table) >= 5 and "campaign_id" in table[1]
    assert max(len(line) for line in lines if line in table) <= LAPTOP_COLUMNS
    # the report is written and named; the demo's sync lock is gone
    page = tmp_path / "neuron_demo_report.html"
    assert f"open {page.name} in a browser" in done.stdout
    assert "Campaign funnel" in page.read_text()
    assert sorted(p.name for p in tmp_path.glob("neuron_demo*")) == [
        "neuron_demo.duckdb",
        "neuron_demo_report.html",
    ]
    # every hinted command works and the query returns rows
    hints = [line.strip() for line in lines if line.strip().startswith(".venv/bin/neuron-calls ")]
    assert len(hints) == 2
    for hint in hints:
        argv = [sys.executable, "-m", "pipelines", *shlex.split(hint)[1:]]
        ran = run_cli(tmp_path, argv, env, timeout=90)
        assert ran.returncode == 0, (hint, ran.stderr)
        if " sql " in hint:
            assert len(ran.stdout.strip().splitlines()) > 1, ran.stdout  # a header and rows
