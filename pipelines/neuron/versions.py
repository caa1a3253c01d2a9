"""The source state's version (`state_version`), and one migration for each step up.

A state written before versions has no `state_version` (releases up to 2026-12-07: e07f021,
102ac49 and older). `migrate` brings an older state to STATE_VERSION in place, one step at a
time, as a run starts; a state from a newer release is refused (it may hold what this one cannot
read), so running an older release never rewrites it.

    0  no `state_version`: cursor, pending, recent, walks (`progress.Walk`), rate_limit; the
       `recent` entries of releases before fingerprints (2026-11-28) are bare ISO strings
    1  `state_version: 1`; every `recent` entry is [ISO started_at, fingerprint | "" | null]
    2  a walk's bounds are named for what they are: `start` is `lower`, `top` is `upper`, and
       `end` (the moving boundary) is `reached`

A release that changes the state's shape adds a step: a function `_to_N` that takes a state of
version N - 1 to N, appended to MIGRATIONS, a line above, and a test on a state captured from
the release before (tests/fixtures/releases).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .api.errors import ConfigError

KEY = "state_version"
STATE_VERSION = 2


class StateTooNew(ConfigError):
    """The state was written by a newer release than this one."""


def _to_1(state: dict[str, Any]) -> None:
    """A bare `started_at` in `recent` (before fingerprints) becomes [started_at, ""]: the
    fingerprint is unknown, so the call is fetched once more when the lookback lists it."""
    recent = state.get("recent") or {}
    for call_id, entry in recent.items():
        if isinstance(entry, str):
            recent[call_id] = [entry, ""]


WALK_KEYS_2 = {"start": "lower", "top": "upper", "end": "reached"}  # version 1's -> 2's


def _to_2(state: dict[str, Any]) -> None:
    """A walk's keys `start`, `top` and `end` become `lower`, `upper` and `reached`."""
    for walk in state.get("walks") or []:
        for old, new in WALK_KEYS_2.items():
            if old in walk:
                walk[new] = walk.pop(old)


MIGRATIONS: tuple[Callable[[dict[str, Any]], None], ...] = (_to_1, _to_2)  # [n]: version n to n + 1


def version_of(state: dict[str, Any]) -> int:
    version = state.get(KEY, 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise StateTooNew(f"the pipeline's state has an unknown {KEY} {version!r}")
    return version


def current(state: dict[str, Any]) -> dict[str, Any]:
    """`state` read at STATE_VERSION, left as it is: itself when it is at it already, else a
    migrated copy (what `status` reads of a state no run of this release has written yet)."""
    if version_of(state) == STATE_VERSION:
        return state
    return migrate(copy.deepcopy(state))


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """`state` at STATE_VERSION, migrated in place from the version it has; the same dict."""
    version = version_of(state)
    if version > STATE_VERSION:
        raise StateTooNew(
            f"the pipeline's state is version {version}, written by a newer neuron-calls than "
            f"this one (which reads up to {STATE_VERSION}): upgrade neuron-calls to go on"
        )
    for step in MIGRATIONS[version:]:
        step(state)
    state[KEY] = STATE_VERSION
    return state
