"""The `neuron-calls` entry: process settings, signals, the parser's skeleton, the dispatch.

The dispatch hands the command line to the command's module, `pipelines/commands/<command>.py`.

A command's module is imported only when that command runs (or shows its --help), so
`neuron-calls --version` imports no command, and `status` none of the report or the sandbox.
Each module has `add_arguments(parser)` and `run(args) -> exit code`.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import logging
import os
import signal
import sys
from types import ModuleType
from typing import Any

from pipelines.runner.interrupts import Interrupted

log = logging.getLogger(__name__)

# the commands, in the order `neuron-calls --help` lists them, and what each does
COMMANDS = {
    "sync": "incremental sync of the API into the warehouse",
    "demo": "sync a local sandbox and print the campaign funnel",
    "status": "cursor, pending calls and the last runs",
    "audit": "compare the API with the warehouse per UTC day",
    "recordings": "archive the recordings of calls already loaded (RECORDINGS_URL)",
    "sql": "run one read-only SQL query on the warehouse",
    "report": "the disposition report: one HTML file",
    "forget": "erase one contact (a data subject's request) and keep them out",
    "sandbox": "serve the sandbox API until stopped",
}

# dlt's settings of a `neuron-calls` process, set by its entry (library code sets none); a
# user's own setting wins
DLT_SETTINGS = {
    # no usage telemetry from a batch job unless the user turns it on
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    # SIGTERM and Ctrl-C are the command's through every step (`_on_sigterm`): dlt's own
    # handler would drop the load a stopping run commits
    "RUNTIME__INTERCEPT_SIGNALS": "false",
    # extract's files are read back once, seconds later, by normalize: compressing them only
    # costs CPU
    "SOURCES__DATA_WRITER__DISABLE_COMPRESSION": "true",
    # a loaded package's files are a clear copy of every row (docs/pii.md); the runner also
    # drops loaded packages after every checkpoint, whoever runs it
    "LOAD__DELETE_COMPLETED_JOBS": "true",
}


def process_settings() -> None:
    """What a `neuron-calls` process sets for itself, before any run: dlt's settings above, and
    the C allocator's arenas (before any thread starts; `memory`)."""
    from pipelines.runner import memory

    for name, value in DLT_SETTINGS.items():
        os.environ.setdefault(name, value)
    memory.limit_arenas()


def main(argv: list[str] | None = None) -> int:
    process_settings()
    args = _parser(argv).parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    command = _command(args.command)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable
    try:
        code: int = command.run(args)
    except BaseException as exc:  # noqa: BLE001 - `_ended` re-raises what is not a stop
        code = _ended(exc)
    if code == 128 + signal.SIGTERM:  # outcomes.EXIT_SIGTERM: stopped by SIGTERM
        # recorded and told: leave now, not through the interpreter's shutdown, which could
        # crash in a thread dlt left running the stopped extract
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"pipelines.commands.{name}")


def _ended(exc: BaseException) -> int:
    """A command that stopped by raising: a refusal, a stop or a closed pipe as its one line
    and exit code; anything else is not ours to hide."""
    from pipelines.runner.outcomes import SyncAborted, explain

    if isinstance(exc, SyncAborted):
        print(f"neuron-calls: {exc}", file=sys.stderr)
        return exc.code
    if isinstance(exc, KeyboardInterrupt):
        code, line = explain(exc)
        print(f"neuron-calls: {line}", file=sys.stderr)
        return code
    if isinstance(exc, BrokenPipeError):  # `neuron-calls sql ... | head`: the reader has all
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    raise exc


def _runs() -> Any:
    """The runner, when this process loaded it (else no run can be in progress)."""
    return sys.modules.get("pipelines.runner.sync")


def _on_sigterm(signum: int, frame: Any) -> None:
    """Schedulers stop a run with SIGTERM: a sync in progress stops fetching, commits what it
    fetched however long that takes, and ends (exit 143; `runner.request_stop`); a second
    SIGTERM, or one outside a sync, stops at once, like Ctrl-C (a third is ignored while the
    run records itself)."""
    runs = _runs()
    if runs is not None and runs.request_stop():
        signal.signal(signal.SIGTERM, _stop_now)
        log.warning(
            "SIGTERM: stopping; committing what was fetched (a second SIGTERM stops at once)"
        )
        return
    _stop_now(signum, frame)


def _stop_now(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if (runs := _runs()) is not None:
        runs.request_halt(signum)
    raise Interrupted(signum)


def _unraisable(unraisable: Any) -> None:
    """A stop raised inside a `__del__` is swallowed by Python, which prints a traceback: the
    run has it noted already (`runner.request_halt`) and stops at its next checkpoint."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def _on_sigint(signum: int, frame: Any) -> None:
    """Ctrl-C stops at once, as Python's own handler does, and the run notes it too."""
    if (runs := _runs()) is not None:
        runs.request_halt(signum)
    raise KeyboardInterrupt


class _Command(argparse.ArgumentParser):
    """A subcommand's parser: an option it does not know is refused with its own usage
    (argparse would show the top-level one), naming the option it resembles."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown:
            known = [o for action in self._actions for o in action.option_strings]
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
        return parsed, unknown


def _parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Every command's name and help; the options of the one `argv` names (its module's
    `add_arguments`), the others' only when asked for."""
    parser = argparse.ArgumentParser(
        prog="neuron-calls",
        description="Sync Neuron (VInfer) calls, transcripts and sentiment into a warehouse.",
    )
    version = importlib.metadata.version("neuron-calls")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Command)
    named = _named(sys.argv[1:] if argv is None else argv)
    for name, help_text in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        if name == named:
            _command(name).add_arguments(command)
    return parser


def _named(argv: list[str]) -> str | None:
    """The command a command line names: its first word that is not an option (the top level's
    only options, --version and --help, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def configure_logging(verbose: bool = False) -> None:
    """Warnings and errors only on stderr, unless `-v` (debug: every step and request)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "aiohttp", "asyncio", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # `sql` says what it cannot translate


if __name__ == "__main__":
    sys.exit(main())
