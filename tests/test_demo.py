"""`neuron-calls demo` as a newcomer meets it: one screen of results, a report, hints that work."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .browser import chart_cache
from .procs import cli_env, run_cli

LAPTOP_COLUMNS = 80


def test_the_demo_prints_only_what_a_newcomer_needs(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # as `make demo` runs it: the customers' business zone
    env = cli_env(
        tmp_path, SOURCES__NEURON__TIMEZONE="Asia/Kolkata", **chart_cache(tmp_path_factory)
    )
    demo = [sys.executable, "-m", "pipelines", "demo", "--calls", "300", "--latency-ms", "0"]
    done = run_cli(tmp_path, demo, env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no log lines, no library warnings
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sandbox      300 calls at http://127.0.0.1:")
    assert lines[1].startswith("calls        listed 300, inserted 300")
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert len(table) >= 5 and "campaign_id" in table[1]
    assert max(len(line) for line in lines if line in table) <= LAPTOP_COLUMNS
    # the funnel of the report's window, in the report's order, and both say which days
    window = re.search(r"Campaign funnel, ([\d-]+) to ([\d-]+) \(Asia/Kolkata", done.stdout)
    assert window, done.stdout
    printed = [
        [cell.strip() for cell in line.strip("│").split("│")[:4]]
        for line in table
        if line.startswith("│")
    ]
    page_text = (tmp_path / "neuron_demo_report.html").read_text()
    funnel = page_text.split('id="funnel-table"')[1].split("</table>")[0]
    shown = [
        [re.sub("<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>.*?</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", funnel.split("<tbody>")[1])
    ]
    assert printed == [[row[0], row[1], row[3], row[4]] for row in shown]
    assert f"{window.group(1)} to {window.group(2)} (Asia/Kolkata" in page_text
    # the report is written and named; the demo's sync lock is gone
    page = tmp_path / "neuron_demo_report.html"
    assert f"open {page.name} in a browser" in done.stdout
    assert "Campaign funnel" in page.read_text()
    left = sorted(p.name for p in tmp_path.glob("neuron_demo*"))
    assert left == ["neuron_demo.duckdb", "neuron_demo_report.html"]
    # run in a clone, git shows none of it
    repo = Path(__file__).resolve().parent.parent
    check = ["git", "-C", str(repo), "check-ignore", "--no-index", *left]
    assert subprocess.run(check, capture_output=True, text=True).stdout.split() == left
    # every hinted command works and the query returns rows
    hints = [line.strip() for line in lines if line.strip().startswith(".venv/bin/neuron-calls ")]
    assert len(hints) == 2
    procs = {
        hint: subprocess.Popen(
            [sys.executable, "-m", "pipelines", *shlex.split(hint)[1:]],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for hint in hints
    }
    for hint, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, (hint, err)
        if " sql " in hint:
            assert len(out.strip().splitlines()) > 1, out  # a header and rows
