"""The words a person reads count right: one call, five calls, one retry."""

from __future__ import annotations

import pytest

from pipelines.commands import console
from pipelines.commands.display import pending_line
from pipelines.neuron import SyncReport
from pipelines.runner import sync as runner

pytestmark = pytest.mark.unit


def test_pending_calls_are_counted_in_words_that_agree() -> None:
    assert pending_line(["call in_progress"]) == "1 call (1 in_progress)"
    reasons = ["call in_progress"] * 5 + ["transcript processing"] * 14
    assert pending_line(reasons) == "19 calls (5 in_progress, 14 transcript processing)"
    assert pending_line([]) == "none"


def test_the_summary_says_one_call_and_one_retry() -> None:
    report = SyncReport(listed=1)
    report.stats.requests, report.stats.retries = 1, 1
    report.deferred = {"c1": "GET /calls/c1 failed"}
    report.expired = ["c2"]
    result = runner.SyncResult(runner.EXIT_PARTIAL, report, 1.0, inserted=1)
    text = console.summary(result)
    assert "http         1 request, 1 retry, 0 x 429" in text
    assert "deferred     1 call failed after retries" in text
    assert "expired      1 call left the pending set" in text
    stopped = runner.SyncResult(runner.EXIT_FAILED, report, 1.0, inserted=1, checkpoints=1)
    assert "committed 1 checkpoint of this run (1 new call)" in console.summary(stopped)


def test_a_stopped_runs_line_is_built_from_what_it_committed() -> None:
    """`explain` says what a stopped run committed from the figures it is given, the same way
    for SIGTERM and Ctrl-C (no other module rewrites its sentence)."""
    from pipelines.runner.outcomes import explain

    code, line = explain(runner.Interrupted(15), 2, 1)
    assert code == runner.EXIT_SIGTERM
    assert line == (
        "stopped by SIGTERM; committed 2 checkpoints of this run (1 new call); "
        "the next run goes on from the last"
    )
    code, line = explain(KeyboardInterrupt(), 1, 0)
    assert code == runner.EXIT_SIGINT
    assert line.endswith(
        "committed 1 checkpoint of this run (0 new calls); the next run goes on from the last"
    )
    assert explain(KeyboardInterrupt())[1] == (
        "interrupted; nothing of this run was published, the next run completes it"
    )
