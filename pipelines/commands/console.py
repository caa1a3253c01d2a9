"""What a person sees of a run: the live progress line, the summary, the one-line error."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from pipelines.neuron import SyncReport
from pipelines.neuron.progress import duration
from pipelines.runner import sync as runner

from .display import counted, days_named, pending_line

log = logging.getLogger(__name__)


class Progress:
    """Pages, calls and requests/s while a run goes: a live line on a terminal, else log lines."""

    def __init__(self, stream: TextIO, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = 0.25 if self.tty else every
        self.started = self.last = time.monotonic()
        self.width = 0  # the longest line drawn: a shorter one after it blanks the rest

    def __call__(self, report: SyncReport) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        requests = report.stats.requests
        line = (
            f"pages {report.pages}  listed {_listed(report, elapsed)}  calls {report.calls}  "
            f"transcripts {report.transcripts}  requests {requests} "
            f"({requests / elapsed:.0f}/s)  {elapsed:.0f}s"
        ) + (f"  {report.stats.waiting}" if report.stats.waiting else "")
        if self.tty:
            self.stream.write("\r" + line + " " * max(4, self.width - len(line)))
            self.width = max(self.width, len(line))
            self.stream.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * max(100, self.width + 4) + "\r")
            self.stream.flush()


def _listed(report: SyncReport, elapsed: float) -> str:
    """`2,300/10,000 (23%, ~4 min left)` when the list's `total` tells what is left (the time
    at the pace of the listing so far), else the count alone."""
    if not report.left or not report.listed:
        return f"{report.listed:,}"
    total = report.listed + report.left
    left = duration(report.left * elapsed / report.listed)
    return f"{report.listed:,}/{total:,} ({report.listed / total:.0%}, ~{left} left)"


def summary(result: runner.SyncResult) -> str:
    r, s = result.report, result.report.stats
    if not result.loaded:
        kept = (
            f"committed {counted(result.checkpoints, 'checkpoint')} of this run "
            f"({counted(result.inserted, 'new call')}), the next run goes on from the last"
            if result.checkpoints
            else "some of this run may be loaded (dlt loads table by table), the next run "
            "completes it"
            if result.loaded_in_place
            else "nothing of this run was loaded"
        )
        return (
            f"failed       {kept}; {counted(r.listed, 'call')} listed, "
            f"{counted(s.requests, 'request')}, {counted(s.retries, 'retry', 'retries')}, "
            f"{s.rate_limited} x 429, "
            f"{result.seconds:.1f}s"
        )
    lines = [
        f"calls        listed {r.listed}, inserted {result.inserted}, "
        f"loaded again {result.updated}",
        f"transcripts  loaded {r.transcripts}",
        f"pending      {pending_line(r.pending.values())}",
        f"http         {counted(s.requests, 'request')}, "
        f"{counted(s.retries, 'retry', 'retries')}, {s.rate_limited} x 429",
        f"time         {result.seconds:.1f}s"
        + (f" ({result.checkpoints} checkpoints)" if result.checkpoints > 1 else ""),
    ]
    if r.deferred:
        lines.append(
            f"deferred     {counted(len(r.deferred), 'call')} failed after retries; the next run "
            f"retries them (e.g. {next(iter(r.deferred.values()))})"
        )
    if r.expired:
        lines.append(
            f"expired      {counted(len(r.expired), 'call')} left the pending set (never final)"
        )
    if r.skipped_invalid:
        lines.append(f"skipped      {r.skipped_invalid} list items without an id")
    if r.recordings or r.recordings_kept or r.pending_recordings:
        lines.append(
            f"recordings   archived {r.recordings} (downloaded now), {r.recordings_kept} in "
            f"storage already; still pending {r.pending_recordings} (retried next run)"
        )
    if r.audit.days:
        lag = r.audit.found("lagging")
        lines.append(
            f"audit        {days_named(r.audit.days)}: {r.audit.days_differing} differed; "
            f"repaired {counted(sum(r.audit.repaired.values()), 'call')}"
            + (f" ({len(r.erased)} erased upstream, removed)" if r.erased else "")
            + (f"; {lag} listed late (listing lag, not drift)" if lag else "")
        )
    return "\n".join(lines)


def with_progress(options: runner.SyncOptions) -> runner.SyncResult:
    progress = Progress(sys.stderr)
    try:
        return runner.run_sync(options, progress)
    finally:
        progress.close()


def run_and_tell(options: runner.SyncOptions) -> runner.SyncResult:
    result = with_progress(options)
    if result.error:
        print(f"neuron-calls: {result.error}", file=sys.stderr)
    if result.exit_code not in (runner.EXIT_CONFIG, runner.EXIT_SIGINT, runner.EXIT_SIGTERM):
        print(summary(result))
    return result
