"""How a run ends: the exit codes, the exceptions that stop a run, and `explain`, the one place
that turns any failure into an exit code and the one line a user reads."""

from __future__ import annotations

import logging
import os
import re
import signal

from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)

from pipelines.commands.display import counted
from pipelines.neuron.api.errors import (
    APIConnectionError,
    AuthenticationError,
    BaseURLError,
    ConfigError,
    MissingAPIKeyError,
    NeuronError,
)
from pipelines.neuron.settings import DEFAULT_BASE_URL, env_var

from .interrupts import Interrupted

log = logging.getLogger(__name__)

EXIT_OK = 0  # every call in the window loaded
EXIT_FAILED = 1  # the run failed (API down, list page failed after retries, load failed)
EXIT_CONFIG = 2  # settings, key, input, or another run already going
EXIT_PARTIAL = 3  # loaded, but some calls failed after retries: they are retried next run
EXIT_DRIFT = 4  # `audit` found drift it did not repair
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

OUTCOMES = {
    EXIT_OK: "ok",
    EXIT_FAILED: "failed",
    EXIT_CONFIG: "refused",
    EXIT_PARTIAL: "partial",
    EXIT_DRIFT: "drift",
    EXIT_SIGINT: "interrupted",
    EXIT_SIGTERM: "interrupted",
}


class SyncAborted(Exception):
    """A run that cannot start or finish; `code` is the exit status, the message one line."""

    def __init__(self, message: str, code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.code = code


class RunRefused(SyncAborted):
    """Another run holds the lock, or a reader holds the file read-write: nothing was touched."""


def kept(checkpoints: int, inserted: int) -> str:
    """What a stopped run leaves: the checkpoints it committed, or nothing."""
    if not checkpoints:
        return "nothing of this run was published, the next run completes it"
    return (
        f"committed {counted(checkpoints, 'checkpoint')} of this run "
        f"({counted(inserted, 'new call')}); the next run goes on from the last"
    )


def cause_of(exc: BaseException) -> BaseException:
    """The first error we know how to explain behind dlt's wrapping exceptions."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _KNOWN):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


_KNOWN = (
    NeuronError,
    SyncAborted,
    KeyboardInterrupt,
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)


def explain(exc: BaseException, checkpoints: int = 0, inserted: int = 0) -> tuple[int, str]:
    """The exit code and the one line a user reads, for any failure of a run; a stopped run's
    line says what it committed (`checkpoints`, with `inserted` new calls in them)."""
    cause = cause_of(exc)
    if isinstance(cause, Interrupted) or getattr(cause, "signal_code", None) == signal.SIGTERM:
        return (  # ours, or dlt's own handler (it takes SIGTERM while it normalizes and loads)
            cause.code if isinstance(cause, Interrupted) else EXIT_SIGTERM,
            f"stopped by SIGTERM; {kept(checkpoints, inserted)}",
        )
    if isinstance(cause, KeyboardInterrupt):
        return EXIT_SIGINT, f"interrupted; {kept(checkpoints, inserted)}"
    if isinstance(cause, SyncAborted):
        return cause.code, first_line(cause)
    if isinstance(cause, ConfigFieldMissingException):
        return EXIT_CONFIG, _missing_setting(cause)
    if isinstance(cause, ConfigValueCannotBeCoercedException):
        hint = getattr(cause.hint, "__name__", str(cause.hint))
        value = "" if "key" in cause.field_name else f", got {str(cause.field_value)[:40]!r}"
        return EXIT_CONFIG, (
            f"setting {cause.field_name} ({env_var(cause.field_name)}) must be "
            f"of type {hint}{value}"
        )
    if isinstance(cause, NeuronError):
        return _neuron_error(cause)
    line = first_line(cause)
    if _is_connection_failure(cause):
        return EXIT_CONFIG, (
            f"cannot connect to the destination: {line}; check its credentials "
            "(e.g. DESTINATION__POSTGRES__CREDENTIALS)"
        )
    return EXIT_FAILED, _with_root_cause(cause)


def _with_root_cause(exc: BaseException) -> str:
    """An unexpected failure's line; inside dlt, where it failed and its root cause (dlt wraps
    the database's own error in two or three exceptions whose first lines say neither)."""
    chain = [exc]
    while (inner := _inner(chain[-1])) is not None and inner not in chain:
        chain.append(inner)
    step = next((e.step for e in chain if hasattr(e, "step")), None)
    if step is None:
        return first_line(exc)
    job = next((str(e.job_id) for e in chain if hasattr(e, "job_id")), None)
    where = f"loading table {job.split('.')[0]}" if job else f"dlt's {step} step"
    return f"{where} failed: {first_line(chain[-1])}"


def _inner(exc: BaseException) -> BaseException | None:
    """The exception `exc` wraps: dlt keeps it as an attribute, Python as the cause."""
    for name in ("exception", "client_exception"):
        inner = getattr(exc, name, None)
        if isinstance(inner, BaseException):
            return inner
    return exc.__cause__


_ENV_KEY = re.compile(r"\(Environment Variables, ((?:DESTINATION|SOURCES)__[A-Z0-9_]+)\)")


def _neuron_error(exc: NeuronError) -> tuple[int, str]:
    """The client says what happened; here is what to do about it."""
    line = first_line(exc)
    if isinstance(exc, MissingAPIKeyError):
        return (
            EXIT_CONFIG,
            f"{line}: set {API_KEY_SETTING}, or api_key under [sources.neuron] "
            "in .dlt/secrets.toml",
        )
    if isinstance(exc, AuthenticationError):
        return EXIT_CONFIG, f"{line}: check {API_KEY_SETTING}"
    if isinstance(exc, BaseURLError):
        return EXIT_CONFIG, (
            f"{line}: {BASE_URL_SETTING} must be the API's /v1 URL (default {DEFAULT_BASE_URL})"
        )
    if isinstance(exc, APIConnectionError):
        return EXIT_FAILED, f"{line}; check {BASE_URL_SETTING} and the network"
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG, line
    return EXIT_FAILED, line


API_KEY_SETTING = env_var("api_key")
BASE_URL_SETTING = env_var("base_url")


def _missing_setting(exc: ConfigFieldMissingException) -> str:
    if "api_key" in exc.fields:
        return (
            f"no API key: set {API_KEY_SETTING}, or api_key under [sources.neuron] "
            "in .dlt/secrets.toml"
        )
    keys = _ENV_KEY.findall(str(exc))
    name = keys[0] if keys else "/".join(exc.fields)
    if "__CREDENTIALS__" in name:  # one URL holds them all: postgresql://user:password@host/db
        part = name[name.index("__CREDENTIALS__") + len("__CREDENTIALS__") :].lower()
        name = name[: name.index("__CREDENTIALS__")] + "__CREDENTIALS"
        if os.environ.get(name):  # set, but the URL lacks a part (a password, say)
            return (
                f"{name} has no {part}: write it whole, e.g. "
                "postgresql://user:password@host:5432/database"
            )
    return f"missing setting {name} (or the same in .dlt/secrets.toml): set it and run again"


def _is_connection_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in (
            "OperationalError",
            "DestinationConnectionError",
            "DestinationTerminalException",
        ) and ("connect" in str(seen).lower() or "authentication" in str(seen).lower()):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def partly_loaded(exc: BaseException) -> bool:
    """dlt's load failed after some of its jobs had written to the warehouse."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "is_package_partially_loaded", False):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _URL_PASSWORD.sub(r"\1***@", line)[:300]
