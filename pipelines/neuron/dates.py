"""Dates on the command line mean the same in every command (sync's backfill, audit,
recordings, report): a timestamp is that moment; a bare date is a whole UTC day, so `--from`
starts at its first second and `--to` includes its last (the API's `to` is inclusive, to the
second)."""

from __future__ import annotations

import re
from typing import Any

import dlt
import pendulum

from . import settings
from .api.errors import ConfigError
from .rows import to_utc

_BARE_DATE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def is_bare_date(value: Any) -> bool:
    return isinstance(value, str) and bool(_BARE_DATE.match(value))


def window_bound(name: str, value: Any, *, end: bool = False) -> pendulum.DateTime | None:
    """`--from`/`--to` as a UTC moment (None when not given); with `end`, a bare date is the
    last second of its day. ConfigError naming the option for anything else."""
    if value in (None, ""):
        return None
    try:
        moment = to_utc(value)
    except ValueError:
        raise ConfigError(
            f"{name} {str(value)[:40]!r} is not an ISO 8601 date or timestamp, "
            "e.g. 2026-11-01 or 2026-11-01T09:00:00Z"
        ) from None
    if end and is_bare_date(value):
        return moment.add(days=1).subtract(seconds=1)
    return moment


def business_zone(name: str | None = None) -> str:
    """The business time zone of the views and the report: `name`, else the TIMEZONE setting
    (SOURCES__NEURON__TIMEZONE, default UTC). ConfigError for a name that is no IANA zone."""
    if name is None:
        name = dlt.config.get("sources.neuron.timezone", str) or settings.DEFAULT_TIMEZONE
    try:
        pendulum.timezone(name)
    except Exception:  # noqa: BLE001 - pendulum's InvalidTimezone, or a name it cannot read
        raise ConfigError(
            f"{settings.env_var('timezone')} {str(name)[:40]!r} is not an IANA time zone name: "
            "use one such as Asia/Kolkata or UTC"
        ) from None
    return name
