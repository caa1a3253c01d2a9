"""Where a run writes, and the locks that keep one run per pipeline and per warehouse.

`DuckDBTarget` loads into a private copy of the analysts' file and publishes it whole
(`snapshot.py`); `DestinationTarget` loads any other dlt destination in place. dlt's working
folder is kept in step with the target a run writes (`align_working_folder`).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.reference import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines.runner.outcomes import EXIT_CONFIG, RunRefused, SyncAborted

from .access import DUCKDB_LOAD_CONFIG, Warehouse, literal
from .snapshot import Snapshot, SnapshotError

log = logging.getLogger(__name__)


class DuckDBTarget:
    """The analysts' DuckDB file: loaded through a private copy, then published whole."""

    staged = True

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.snapshot = Snapshot(self.path)
        self.identity = f"duckdb:{self.path}"
        self.description = str(self.path)

    def destination(self) -> Any:
        credentials = DuckDbCredentials(str(self.snapshot.staged), global_config=DUCKDB_LOAD_CONFIG)
        return capabilities_once(dlt.destinations.duckdb(credentials))

    @contextlib.contextmanager
    def lock(self, pipeline: Any) -> Iterator[None]:
        with exclusive(self.path.with_name(self.path.name + ".lock"), str(self.path)):
            yield

    @contextlib.contextmanager
    def stage(self) -> Iterator[None]:
        try:
            with self.snapshot.staging():
                yield
        except SnapshotError as exc:
            raise _run_error(exc) from None

    @contextlib.contextmanager
    def kept_open(self, pipeline: Any) -> Iterator[None]:
        """The copy open for the whole run: DuckDB then loads its catalog once, not at every
        step; closed before publishing."""
        with Warehouse.of(pipeline):
            yield

    def publish(self) -> None:
        try:
            self.snapshot.publish()
        except SnapshotError as exc:
            raise _run_error(exc) from None


def capabilities_once(destination: Any) -> Any:
    """`destination` answering `capabilities()` from its first answer for each naming convention.
    dlt asks again at every step (about 20 times a run, each resolving the destination's settings
    anew: a quarter of a small run's CPU); within a run (one destination object) the answer cannot
    change. Each caller gets its own copy, as from dlt."""
    asked = destination.capabilities
    known: dict[Any, Any] = {}

    def capabilities(config: Any = None, naming: Any = None) -> Any:
        if config is not None:
            return asked(config, naming)
        key = None if naming is None else (type(naming), naming.max_length)
        if key not in known:
            known[key] = asked(None, naming)
        return copy.deepcopy(known[key])

    destination.capabilities = capabilities
    return destination


def _run_error(exc: SnapshotError) -> SyncAborted:
    """A file that cannot be staged or published: refused (a read-write holder) or failed."""
    return (RunRefused if exc.code == EXIT_CONFIG else SyncAborted)(str(exc), exc.code)


class DestinationTarget:
    """Any other dlt destination: loaded in place (dlt's merge is transactional per table)."""

    staged = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.identity = f"destination:{name}"
        self.description = f"destination {name}"

    def destination(self) -> Any:
        try:
            destination = Destination.from_reference(self.name)
        except Exception:  # noqa: BLE001 - unknown type or named destination
            raise SyncAborted(
                f"unknown destination {self.name!r}: use a dlt destination type (postgres, "
                "motherduck, duckdb, ...) or a name configured as "
                f"DESTINATION__{self.name.upper()}__DESTINATION_TYPE"
            ) from None
        return capabilities_once(destination)

    @contextlib.contextmanager
    def lock(self, pipeline: Any) -> Iterator[None]:
        """One run per warehouse and dataset across hosts, where the warehouse has a lock."""
        with Warehouse.of(pipeline) as wh:
            if wh.dialect != "postgres":
                yield  # documented: only the local pipeline lock elsewhere
                return
            key = literal(f"{pipeline.pipeline_name}:{pipeline.dataset_name}")
            _, rows = wh.query(f"select pg_try_advisory_lock(hashtext({key}))")
            if not rows[0][0]:
                raise RunRefused(
                    f"another sync is running on {self.description} (dataset "
                    f"{pipeline.dataset_name}, Postgres advisory lock); wait for it to finish"
                )
            try:
                yield
            finally:
                wh.query(f"select pg_advisory_unlock(hashtext({key}))")

    @contextlib.contextmanager
    def stage(self) -> Iterator[None]:
        yield

    def kept_open(self, pipeline: Any) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()  # an idle connection must not hold locks through a load

    def publish(self) -> None:
        return None


Target = DuckDBTarget | DestinationTarget


def target_named(destination: str | None, duckdb_path: Path) -> Target:
    """`--destination NAME` (a dlt destination), else the DuckDB file `--duckdb PATH`."""
    if destination and destination != "duckdb":
        return DestinationTarget(destination)
    return DuckDBTarget(duckdb_path)


# The fastest load path dlt offers per destination: DuckDB copies parquet natively (dlt's
# default, INSERT ... VALUES text, needs memory that grows with the load); Postgres takes CSV
# through COPY (parquet needs ADBC, whose dlt loader fails on the empty tables every run
# materialises).
LOADER_FILE_FORMATS = {"duckdb": "parquet", "motherduck": "parquet", "postgres": "csv"}


def loader_file_format(pipeline: Any) -> str:
    kind = str(pipeline.destination.destination_type).rsplit(".", 1)[-1]
    caps = pipeline.destination.capabilities()
    if kind in LOADER_FILE_FORMATS:
        return LOADER_FILE_FORMATS[kind]
    if "parquet" in caps.supported_loader_file_formats:
        return "parquet"
    return str(caps.preferred_loader_file_format)


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """An advisory lock held for the run; a second run on the same thing gets a clear no.

    The lock file exists only while a run holds it (removed before the lock is let go, so no
    stray `.lock` is left beside the warehouse). A run that locked a file another run removed
    meanwhile holds nothing: it locks the path's current file instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a")  # noqa: SIM115 - closed below, after the lock is let go
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunRefused(
                f"another sync is running on {what}; wait for it to finish (lock: {path})"
            ) from None
        if _same_file(handle.fileno(), path):
            break
        handle.close()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def default_pipelines_dir() -> Path:
    """dlt's working folder under ~/.dlt, so HOME isolates it (for root too: dlt alone would
    pick /var/dlt); DLT_DATA_DIR still wins, as in dlt."""
    data_dir = os.environ.get("DLT_DATA_DIR")
    return Path(data_dir, "pipelines") if data_dir else Path.home() / ".dlt" / "pipelines"


def align_working_folder(workdir: Path, target: Target) -> None:
    """dlt's working folder must describe what the target holds, or be rebuilt from it.

    It is dropped (dlt then restores the state from the warehouse) when it served another
    target, or when a staged run did not publish: a package dlt loaded into a copy that was
    never published must not count as loaded.
    """
    marker = workdir / "neuron_target"
    if not in_step(workdir, target):
        log.debug(
            "working folder %s is not in step with %s: restoring state from it",
            workdir,
            target.description,
        )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if target.staged:
        marker.unlink(missing_ok=True)  # written again once this run is published
    else:
        marker.write_text(target.identity, encoding="utf-8")


@contextlib.contextmanager
def working_folders(folders: Path, name: str, target: Target, loads: bool) -> Iterator[Path]:
    """Where dlt keeps the pipeline `name`'s working folder for a run on `target`: `folders`,
    with the folder brought in step first for a run that loads; a run that does not load
    leaves a folder serving another target alone and works in a throwaway one (dlt would warn
    that the state's destination differs, and ignore it)."""
    if loads:
        align_working_folder(folders / name, target)
    elif not in_step(folders / name, target):
        with tempfile.TemporaryDirectory("-neuron") as throwaway:
            yield Path(throwaway)
        return
    yield folders


def in_step(workdir: Path, target: Target) -> bool:
    """The working folder describes `target` (or there is none yet)."""
    marker = workdir / "neuron_target"
    known = marker.read_text(encoding="utf-8") if marker.exists() else None
    return not workdir.exists() or known == target.identity


def mark_published(workdir: Path, target: Target) -> None:
    (workdir / "neuron_target").write_text(target.identity, encoding="utf-8")


def unmark_published(workdir: Path, target: Target) -> None:
    """Before a load into a staged copy: until it is published, the folder is not in step."""
    if target.staged:
        (workdir / "neuron_target").unlink(missing_ok=True)


def drop_loaded_packages(workdir: Path) -> None:
    """dlt keeps every loaded package (a clear copy of every row); recovery needs none of them:
    the state is in the working folder and in the warehouse."""
    loaded = workdir / "load" / "loaded"
    if loaded.is_dir():
        for package in loaded.iterdir():
            shutil.rmtree(package, ignore_errors=True)


def drops_pending(pipeline: Any) -> bool:
    """A failed full refresh's load, left for this run to complete, drops our tables first."""
    for load_id in pipeline.list_normalized_load_packages():
        state = pipeline.get_load_package_state(load_id)
        if state.get("dropped_tables") and not state.get("applied_dropped_tables"):
            return True
    return False
