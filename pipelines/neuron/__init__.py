"""The Neuron calls source for dlt: calls, transcripts (with their segments and speaker
sentiment) and recordings, one resource each, named after their tables (`resources.py`).

    pipeline.run(neuron_source())                          # everything
    pipeline.run(neuron_source().with_resources("calls"))  # calls only: no transcript request

The `@dlt.source` is a thin wrapper: its parameters are the settings (section `neuron`, so
`SOURCES__NEURON__API_KEY` works), checked in one place (`config.NeuronSettings`), and it runs
the default run, incremental. The runner's runs (backfill windows, filters, audit and repair,
recordings only) come through `run_source` with a `SyncRun`, never through settings.

The source takes settings and plain data and yields rows and state: it imports nothing of the
runner, the warehouse or the commands, and never reads the warehouse (what an audit compares
with is handed in, `SyncRun.stored`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dlt
from dlt.common.configuration.inject import with_config
from dlt.common.typing import TSecretStrValue
from dlt.extract import DltSource

from . import settings, tables
from .api.errors import ConfigError
from .config import NeuronSettings, SyncRun, neuron_settings
from .model import SyncPlan, SyncReport
from .pii import Privacy, privacy_of
from .recordings import RecordingStore
from .resources import RESOURCE_TABLES, check_selection, neuron_resources

__all__ = [
    "RESOURCE_TABLES",
    "NeuronSettings",
    "Privacy",
    "SyncPlan",
    "SyncReport",
    "SyncRun",
    "neuron_privacy",
    "neuron_settings",
    "neuron_source",
    "run_source",
    "source_shape",
]

SOURCE_NAME = "neuron"  # the source's name, config section, schema and state key
MAX_TABLE_NESTING = 1


@dlt.source(section=SOURCE_NAME, name=SOURCE_NAME, max_table_nesting=MAX_TABLE_NESTING)
def neuron_source(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    start_date: str | None = None,
    lookback_minutes: float = settings.DEFAULT_LOOKBACK_MINUTES,
    max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY,
    pending_max_days: float = settings.DEFAULT_PENDING_MAX_DAYS,
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
    timeout_seconds: float = settings.DEFAULT_TIMEOUT_SECONDS,
    max_requests_per_second: float | None = None,
    audit_days: int = settings.DEFAULT_AUDIT_DAYS,
    recordings_url: str | None = None,
    checkpoint_seconds: float = settings.DEFAULT_CHECKPOINT_SECONDS,
    max_offset: int = settings.DEFAULT_MAX_OFFSET,
    pii: str = settings.DEFAULT_PII,
    pii_key: TSecretStrValue | None = None,
    pii_archive_recordings: bool = False,
) -> Any:
    """Calls of the Neuron Calls API with their transcripts, sentiment and recordings.

    A run lists calls from the cursor minus `lookback_minutes` (the first run from
    `start_date`, or the whole history) to the run's start, fetches what is new or changed, and
    comes back for calls not final yet, or whose transcript is still processing, for
    `pending_max_days` after first finding them pending. Recordings are archived under
    `recordings_url` when it is set. `audit_days` is for the runner's audit, which needs the
    warehouse (`neuron-calls sync`); a plain source does not audit. `pii` (`keep` or
    `pseudonymize`, with the secret `pii_key`) is what the rows hold (docs/pii.md).
    `checkpoint_seconds` is for the runner, which loads a run in segments; a plain source is
    one dlt load.
    """
    config = NeuronSettings(
        api_key=api_key,
        base_url=base_url,
        start_date=start_date,
        lookback_minutes=lookback_minutes,
        max_concurrency=max_concurrency,
        pending_max_days=pending_max_days,
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
        max_requests_per_second=max_requests_per_second,
        audit_days=audit_days,
        recordings_url=recordings_url,
        checkpoint_seconds=checkpoint_seconds,
        max_offset=max_offset,
        pii=pii,
        pii_key=pii_key,
        pii_archive_recordings=pii_archive_recordings,
    )
    return neuron_resources(config, SyncRun(), _store(config, config.privacy()))


def run_source(
    config: NeuronSettings,
    run: SyncRun,
    resources: Sequence[str] | None = None,
    transport: Any = None,
) -> DltSource:
    """The runner's source: the same resources as `neuron_source`, for one `run`, with
    `resources` selected (None: all); one source for the whole run, each dlt load of it extracts
    the run's next segment. A window, a repair or a selection that cannot be is refused here,
    before any file is touched. `transport`: an httpx transport for the client (tests)."""
    store = _store(config, run.policy(config))
    run.plan(config, recordings_only=check_selection(_selection(resources), store))
    made = neuron_resources(config, run, store, transport)
    source = DltSource(dlt.Schema(SOURCE_NAME), SOURCE_NAME, made)
    source.max_table_nesting = MAX_TABLE_NESTING
    return source.with_resources(*resources) if resources else source


def source_shape() -> DltSource:
    """The source's resources, unconfigured, for tools that only read its shape (dagster-dlt's
    asset specs): it needs no setting, and must not be run."""
    config = NeuronSettings(api_key="unused: the shape only")
    return DltSource(dlt.Schema(SOURCE_NAME), SOURCE_NAME, neuron_resources(config, SyncRun()))


def _selection(resources: Sequence[str] | None) -> set[str]:
    if not resources:
        return set(RESOURCE_TABLES)
    unknown = [name for name in resources if name not in RESOURCE_TABLES]
    if unknown:
        raise ConfigError(
            f"unknown resource {unknown[0]!r}: choose from {', '.join(RESOURCE_TABLES)}"
        )
    return set(resources)


def _store(config: NeuronSettings, privacy: Privacy) -> RecordingStore | None:
    tables.import_pyarrow()
    if not config.recordings_url:
        return None
    if privacy.pseudonymize and not privacy.archive_recordings:
        raise ConfigError(  # spoken personal data that no redaction reaches
            "recordings hold the contact's voice, name and number in clear: under "
            "SOURCES__NEURON__PII=pseudonymize set SOURCES__NEURON__PII_ARCHIVE_RECORDINGS=true "
            "to archive them anyway, or unset SOURCES__NEURON__RECORDINGS_URL"
        )
    store = RecordingStore(config.recordings_url)
    store.check_writable()  # fail now, before any extraction starts
    return store


@with_config(sections=("sources", "neuron"))
def neuron_privacy(
    pii: str = settings.DEFAULT_PII,
    pii_key: TSecretStrValue | None = None,
    pii_archive_recordings: bool = False,
) -> Privacy:
    """The personal data policy from the source's settings (SOURCES__NEURON__PII, ..._PII_KEY,
    ..._PII_ARCHIVE_RECORDINGS), for work outside the source (the runner, `forget`)."""
    return privacy_of(pii, pii_key, pii_archive_recordings)
