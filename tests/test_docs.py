"""The README is a front door: short, the two commands first, every docs page linked from it,
and no link in the README or the docs that leads nowhere. Every fenced block in README.md and
docs/*.md runs as written, and the outputs they show are what the commands print."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .procs import cli_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def local_links(page: Path) -> set[Path]:
    """The files a page links to (web links and pure anchors left out)."""
    return {
        (page.parent / target).resolve()
        for target in _LINK.findall(page.read_text())
        if "://" not in target
    }


@pytest.mark.unit
def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    assert lines[0] == "# neuron-calls"
    assert [line.split()[0:2] for line in lines[4:6]] == [["make", "demo"], ["make", "test"]]


@pytest.mark.unit
def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = local_links(README)
    assert sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in linked) == []


@pytest.mark.unit
def test_every_local_link_leads_to_a_file() -> None:
    broken = [
        f"{page.relative_to(ROOT)} -> {target.relative_to(ROOT)}"
        for page in [README, *sorted(DOCS.glob("*.md"))]
        for target in local_links(page)
        if not target.exists()
    ]
    assert broken == []


# -- every fenced block runs as written ----------------------------------------------------------
#
# A page's blocks run in order in one bash shell (what a block exports, the next one has), from a
# folder of the page's own that holds the repository's .venv, Makefile and sources (linked), with
# HOME there too. The page's setup: the two `export` lines the sandbox prints (a shared sandbox,
# 300 calls, frozen at SANDBOX_NOW), and `neuron_calls.duckdb` synced from it when the page says
# so with `<!-- docs-test: setup: a synced warehouse -->`. PATH has no .venv/bin: a bare
# `neuron-calls` fails as it does after `make install`.
#
# An HTML comment right before a fence says what the block needs or why it does not run:
#   <!-- docs-test: skip: WHY -->    not run (serves until stopped, a cron line, ...)
#   <!-- docs-test: output -->       what the block before it printed (stdout), compared: lines in
#                                    order, seconds (`2.2s`) any; a `json` block as JSON, floats any
#   <!-- docs-test: postgres -->     the page gets DESTINATION__POSTGRES__CREDENTIALS (a database)
#   <!-- docs-test: s3 -->           the page gets an S3-compatible server's AWS_* and `my-bucket`
# Without one, `sh` and `python` blocks run (each command must exit 0), and each statement of a
# `sql` block runs through the CLI's `sql` (as the pages say); a `console` or `cron` block must
# say why it does not run; any other fence is a picture, compared only when marked `output`.
# `export NAME=...` (a value with `...` in it) is yours to fill in: the setup exported it already.

RUNS = {"sh", "python", "sql"}
COMMANDS = RUNS | {"console", "bash", "cron"}  # blocks that must run or say why they do not
SYNCED = "<!-- docs-test: setup: a synced warehouse -->"
_FENCE = re.compile(r"^```(\S*).*?\n(.*?)^```[ \t]*$", re.M | re.S)
_MARK = re.compile(r"<!-- docs-test: (.+?) -->[ \t]*\n\Z")
_SECONDS = re.compile(r"\b\d+(\.\d+)?s\b")
_PLACEHOLDER = re.compile(r"^export [^#]*\.\.\.", re.M)
LINKED = (".venv", "Makefile", "pyproject.toml", "constraints.txt", "pipelines")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str
    mark: str  # the words of the comment before the fence, "" without one

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return not self.mark.startswith(("skip:", "output")) and self.lang in RUNS

    def script(self, folder: Path, n: int) -> str:
        """The block as bash: placeholders left to the setup, Python and SQL through .venv."""
        if self.lang == "python":
            (folder / f".block{n}.py").write_text(self.text)
            return f".venv/bin/python .block{n}.py\n"
        if self.lang == "sql":  # `neuron-calls sql QUERY` for each, in one process (one import)
            text = "\n".join(s for s in self.text.splitlines() if not s.startswith("--"))
            queries = [q.strip() for q in text.split(";") if q.strip()]
            (folder / f".block{n}.py").write_text(SQL_EACH.format(queries=queries))
            return f".venv/bin/python .block{n}.py\n"
        return _PLACEHOLDER.sub(lambda m: "# " + m.group(0), self.text)


SQL_EACH = """import runpy, sys
for query in {queries!r}:
    sys.argv = ["neuron-calls", "sql", query]
    try:
        runpy.run_module("pipelines", run_name="__main__")
    except SystemExit as done:
        if done.code:
            raise
"""


def page_blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for fence in _FENCE.finditer(text):
        before = text[: fence.start()]
        mark = _MARK.search(before)
        found.append(
            Block(
                page,
                before.count("\n") + 1,
                fence.group(1),
                fence.group(2),
                mark.group(1).strip() if mark else "",
            )
        )
    return found


def normalised(text: str) -> list[str]:
    return [_SECONDS.sub("Ns", line.rstrip()) for line in text.strip("\n").splitlines()]


def differs(shown: Block, printed: str) -> str | None:
    """Why what the doc shows is not what was printed, or None."""
    if shown.lang == "json":
        as_shown = json.loads(shown.text, parse_float=lambda _: "a float")
        try:
            as_printed = json.loads(printed, parse_float=lambda _: "a float")
        except ValueError:
            return f"printed no JSON:\n{printed}"
        return None if as_shown == as_printed else f"printed:\n{printed}"
    want, got = normalised(shown.text), normalised(printed)
    if any(got[i : i + len(want)] == want for i in range(len(got) - len(want) + 1)):
        return None
    return "printed:\n" + "\n".join(got)


def in_path_without_venv() -> str:
    return os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if not d.endswith(".venv/bin")
    )


def shell(folder: Path, env: dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    """A script run by bash in a folder that holds the repository's .venv, as a clone would."""
    folder.mkdir(exist_ok=True)
    for name in LINKED:
        if not (folder / name).exists():
            (folder / name).symlink_to(ROOT / name)
    with subprocess.Popen(
        ["bash", "-c", script],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a command that serves on is stopped with all it started
    ) as proc:
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return subprocess.CompletedProcess(script, -1, out, "did not end within 60 s")
    return subprocess.CompletedProcess(script, proc.returncode, out, err)


def run_page(page: Path, folder: Path, env: dict[str, str]) -> list[str]:
    """Run a page's blocks in order; one line per block that failed or printed otherwise."""
    (folder / ".env").write_text("")
    failures, printed = [], ""
    for n, block in enumerate(page_blocks(page)):
        if block.mark.startswith("output"):
            why = differs(block, printed)
            if why:
                failures.append(f"{block.where}: not what the block before printed; {why}")
        if not block.runs:
            continue
        script = f"set -eo pipefail\n. ./.env\n{block.script(folder, n)}\nexport -p > ./.env\n"
        done = shell(folder, env, script)
        printed = done.stdout
        if done.returncode != 0:
            failures.append(
                f"{block.where}: exit {done.returncode}: "
                + (done.stderr.strip() or done.stdout.strip())[-600:]
            )
    return failures


PAGES = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.unit
def test_every_block_runs_or_says_why_not() -> None:
    unsaid = [
        f"{b.where} ({b.lang or 'no language'})"
        for page in PAGES
        for b in page_blocks(page)
        if b.lang in COMMANDS and not (b.runs or b.mark.removeprefix("skip:").strip())
    ]
    assert unsaid == []


@pytest.mark.timeout(300)  # ~40 processes on 2 cores, beside other tests: 30-120 s
def test_every_block_runs_as_written(sandbox: Any, postgres: Any, s3: Any, tmp_path: Path) -> None:
    def env(folder: Path, page: Path) -> dict[str, str]:
        marks = " ".join(b.mark for b in page_blocks(page))
        extra = {"SOURCES__NEURON__API_KEY": sandbox.api_key}
        extra["SOURCES__NEURON__BASE_URL"] = sandbox.base_url
        if "postgres" in marks:
            name = re.sub(r"\W", "_", page.stem)
            extra["DESTINATION__POSTGRES__CREDENTIALS"] = postgres.new_database(f"docs_{name}")
        if "s3" in marks:
            extra.update(s3.env())
        # DLT_DATA_DIR: a plain dlt pipeline run by root keeps its state in /var/dlt, not HOME
        extra.update(PATH=in_path_without_venv(), DLT_DATA_DIR=str(folder / ".dlt"))
        return cli_env(folder, **extra)

    # `make install` in a page's folder must find .venv up to date (or it would install that folder)
    assert subprocess.run(["make", "-q", "install"], cwd=ROOT).returncode == 0, "make install first"

    s3.filesystem().mkdir("my-bucket")
    pool = ThreadPoolExecutor(4)
    synced = tmp_path / "synced"
    first = pool.submit(shell, synced, env(synced, README), ".venv/bin/neuron-calls sync")

    def run(page: Path) -> list[str]:
        folder = tmp_path / page.stem
        folder.mkdir()
        if SYNCED in page.read_text():
            assert first.result().returncode == 0, first.result().stderr
            shutil.copy(synced / "neuron_calls.duckdb", folder)
        return run_page(page, folder, env(folder, page))

    # the pages with most commands first, so that no long one is left running alone at the end
    pages = sorted(
        (p for p in PAGES if any(b.runs for b in page_blocks(p))),
        key=lambda p: -sum(b.text.count("\n") for b in page_blocks(p) if b.runs),
    )
    with pool:
        failures = [line for lines in pool.map(run, pages) for line in lines]
    assert not failures, "\n\n".join(failures)


def test_the_sandbox_prints_what_its_page_shows(tmp_path: Path) -> None:
    (shown,) = [b for b in page_blocks(DOCS / "sandbox.md") if b.lang == "console"]
    command, *banner = shown.text.split("\n$ ")[0].splitlines()
    argv = shlex.split(command.removeprefix("$ ")) + ["--port", "0"]
    with subprocess.Popen(
        argv, cwd=ROOT, env=cli_env(tmp_path), stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        stop = threading.Timer(30, server.kill)  # a shorter banner than the page's: not a hang
        stop.start()
        printed = [server.stdout.readline().rstrip() for _ in banner]
        stop.cancel()
        server.terminate()
    port = re.search(r"127\.0\.0\.1:(\d+)", printed[0])
    assert port, printed
    assert [line.replace(f":{port[1]}/", ":8765/") for line in printed] == banner
