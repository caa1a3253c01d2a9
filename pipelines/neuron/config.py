"""The source's settings, checked in one place, and what one run adds to them.

`NeuronSettings` holds the settings a user sets (`SOURCES__NEURON__*`, `.dlt/config.toml`) and
checks them when made. `SyncRun` holds what a caller adds for one run, as plain data: its window,
filters or repair days, whether it audits and what the warehouse holds of the audited days (read
by the caller, never by the source), the personal data policy with the erased contacts, its
report and a progress callback. `neuron_source()` runs the default `SyncRun` (incremental, no
audit); only the runner makes others, so no setting can turn a plain source into a backfill or a
repair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dlt
import pendulum
from dlt.common.configuration.inject import with_config
from dlt.common.typing import TSecretStrValue

from . import settings
from .api.client import NeuronClient, check_settings
from .api.errors import ConfigError
from .audit import AuditWindow, StoredWindow
from .dates import business_zone, window_bound
from .model import SyncPlan, SyncReport
from .pii import Privacy, privacy_of


@dataclass(frozen=True)
class NeuronSettings:
    """The source's settings (defaults in `settings.py`); a wrong one raises ConfigError."""

    api_key: str = field(default=dlt.secrets.value, repr=False)  # a secret: never printed
    base_url: str = settings.DEFAULT_BASE_URL
    start_date: str | None = None
    lookback_minutes: float = settings.DEFAULT_LOOKBACK_MINUTES
    max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY
    pending_max_days: float = settings.DEFAULT_PENDING_MAX_DAYS
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS
    timeout_seconds: float = settings.DEFAULT_TIMEOUT_SECONDS
    max_requests_per_second: float | None = None
    audit_days: int = settings.DEFAULT_AUDIT_DAYS
    recordings_url: str | None = None
    checkpoint_seconds: float = settings.DEFAULT_CHECKPOINT_SECONDS
    max_offset: int = settings.DEFAULT_MAX_OFFSET
    pii: str = settings.DEFAULT_PII
    pii_key: TSecretStrValue | None = field(default=None, repr=False)  # a secret
    pii_archive_recordings: bool = False
    timezone: str = settings.DEFAULT_TIMEZONE  # the views' and the report's, not the source's

    def __post_init__(self) -> None:
        check_settings(self.api_key if isinstance(self.api_key, str) else None, self.base_url)
        rules = (
            ("max_concurrency", self.max_concurrency >= 1, "at least 1"),
            ("lookback_minutes", self.lookback_minutes >= 0, "at least 0"),
            ("pending_max_days", self.pending_max_days >= 0, "at least 0"),
            ("audit_days", self.audit_days >= 0, "at least 0"),
            ("max_offset", self.max_offset >= 0, "at least 0"),
            ("max_attempts", self.max_attempts >= 1, "at least 1"),
            ("timeout_seconds", self.timeout_seconds > 0, "above 0"),
            (
                "max_requests_per_second",
                self.max_requests_per_second is None or self.max_requests_per_second > 0,
                "above 0",
            ),
            (
                "checkpoint_seconds",
                0 < self.checkpoint_seconds <= settings.MAX_CHECKPOINT_SECONDS,
                f"above 0 and at most {settings.MAX_CHECKPOINT_SECONDS:g}",
            ),
        )
        for name, ok, rule in rules:
            if not ok:  # the one setting that is wrong, by its name and its variable
                raise ConfigError(
                    f"{name} must be {rule} (SOURCES__NEURON__{name.upper()}), "
                    f"got {getattr(self, name):g}"
                )
        self.start  # noqa: B018 - a bad start date fails here, not at extraction
        self.privacy()  # a bad policy or key fails here too
        business_zone(self.timezone)

    def privacy(self) -> Privacy:
        """The personal data policy these settings ask for (docs/pii.md)."""
        return privacy_of(self.pii, self.pii_key, self.pii_archive_recordings)

    @property
    def start(self) -> pendulum.DateTime | None:
        return window_bound("start_date (SOURCES__NEURON__START_DATE)", self.start_date)

    def client(self, transport: Any = None, stats: Any = None) -> NeuronClient:
        """A client with these settings; makes no request."""
        return NeuronClient(
            self.api_key,
            self.base_url,
            max_concurrency=self.max_concurrency,
            max_attempts=self.max_attempts,
            timeout=self.timeout_seconds,
            max_rps=self.max_requests_per_second,
            transport=transport,
            stats=stats,
        )


# dlt resolves the settings it is not given from its config, under sources.neuron
neuron_settings: Callable[..., NeuronSettings] = with_config(
    NeuronSettings, sections=("sources", "neuron")
)


@dataclass
class SyncRun:
    """What a caller adds to the settings for one run (the runner: `neuron-calls` commands).

    An audit compares the API with the warehouse, which the source never reads: a caller that
    sets `audits` reads what the warehouse holds of the audit's days and hands it in as
    `stored`, between two loads (a sync: once the segment whose end names the days is
    committed, `feed.SegmentEnd.audit`; a repair: `repair_window`, before its first load)."""

    backfill_from: str | None = None  # a window on started_at: the cursor stays where it is
    backfill_to: str | None = None
    filters: dict[str, str] = field(default_factory=dict)  # the list's own filters
    repair_from: str | None = None  # `audit --repair`: audit and repair these UTC days only
    repair_to: str | None = None
    repair_transcripts: bool = False
    audits: bool = False  # the caller hands in `stored` when asked; False: no audit
    stored: StoredWindow | None = None  # what the warehouse holds of the audit's days
    report: SyncReport = field(default_factory=SyncReport)
    on_progress: Callable[[SyncReport], None] | None = None
    privacy: Privacy | None = None  # the runner's (it knows the erased contacts); None: settings'

    def policy(self, config: NeuronSettings) -> Privacy:
        """The run's personal data policy: the runner's, else the settings'."""
        return self.privacy or config.privacy()

    def plan(self, config: NeuronSettings, recordings_only: bool = False) -> SyncPlan:
        """This run's plan; ConfigError for a window or a repair that cannot be."""
        plan = SyncPlan(
            now=pendulum.now("UTC"),
            start=window_bound("--from", self.backfill_from),
            end=window_bound("--to", self.backfill_to, end=True),
            filters=dict(self.filters),
            incremental=not (self.backfill_from or self.backfill_to or self.filters),
            lookback=pendulum.duration(minutes=config.lookback_minutes),
            pending_max_days=config.pending_max_days,
            max_offset=config.max_offset,
            audit_days=config.audit_days if self.audits else 0,
            privacy=self.policy(config),
        )
        if plan.start and plan.end and plan.start > plan.end:
            raise ConfigError(f"--from {self.backfill_from} is after --to {self.backfill_to}")
        if self.repair_from or self.repair_to:
            self._plan_repair(plan)
        if recordings_only:  # only the recordings of calls already loaded
            plan.recordings_only, plan.incremental, plan.audit_days = True, False, 0
            plan.transcripts = False
        return plan

    def _plan_repair(self, plan: SyncPlan) -> None:
        """A repair run: no list, no cursor; the audit of the UTC days repair_from..repair_to."""
        first = window_bound("--from", self.repair_from)
        last = window_bound("--to", self.repair_to, end=True)
        if first is None or last is None or first > last:
            raise ConfigError("a repair needs a window: --from and --to, --from not after --to")
        if not plan.incremental:
            raise ConfigError("a repair cannot be combined with a backfill window or a filter")
        if not self.audits:
            raise ConfigError("a repair needs the warehouse to compare with (no reader given)")
        plan.incremental = plan.lists = False
        plan.audit_from, plan.audit_to = first.date(), last.date()  # it stops at the API's now
        plan.audit_transcripts = self.repair_transcripts

    def repair_window(self) -> AuditWindow | None:
        """The days a repair run audits, for its caller to read before the first load (the
        API's today may end them earlier); None for any other run."""
        first = window_bound("--from", self.repair_from)
        last = window_bound("--to", self.repair_to, end=True)
        if first is None or last is None:
            return None
        return AuditWindow(first.date(), last.date(), self.repair_transcripts)


__all__ = ["NeuronSettings", "SyncRun", "neuron_settings"]
