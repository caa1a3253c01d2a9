"""The warehouse's record of its personal data policy and of its erased contacts.

Two small tables beside the run log, outside dlt's schema (a full refresh keeps them):
- `_pii_policy` (name, value, set_at): `policy` and `key_id` (the short id of the PII key
  the values were made with, never the key), `redaction_version` under pseudonymize (what the
  stored texts were screened with), and `erasure_salt` when an erasure was recorded without a
  PII key (see docs/pii.md);
- `_pii_erasures` (contact_hash, key_id, erased_at, calls): one row per erased contact, the
  HMAC of the number under the key named by `key_id`, never the number.

A run checks the policy before it loads (`bind`: another policy or key is refused unless it is
a full refresh), screens the stored texts again when they were redacted by an older release
(`rescreen`), and records the policy once loaded (`remember`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pendulum

from pipelines.neuron.pii import (
    KEEP,
    PSEUDONYMIZE,
    REDACTION_VERSION,
    Contact,
    Privacy,
    key_id,
    redact_text,
)
from pipelines.runner.outcomes import SyncAborted

from .access import Warehouse, literal

POLICY_TABLE = "_pii_policy"
ERASURES_TABLE = "_pii_erasures"
POLICY_COLUMNS = {"name": "varchar", "value": "varchar", "set_at": "timestamptz"}
ERASURE_COLUMNS = {
    "contact_hash": "varchar",
    "key_id": "varchar",
    "erased_at": "timestamptz",
    "calls": "bigint",
}
SALT = "erasure_salt"
REDACTION = "redaction_version"
# the stored texts a redaction screens: table, key columns, text column
SCREENED = (
    ("transcript_segments", ("call_id", "segment_index"), "text"),
    ("transcripts", ("call_id",), "summary"),
)
RESCREEN_PAGE = 5000  # rows read at a time
UPDATE_BATCH = 500  # rows written by one statement

log = logging.getLogger(__name__)


def recorded(wh: Warehouse) -> dict[str, str]:
    """The warehouse's policy record, name -> value ({} when none was recorded)."""
    if POLICY_TABLE not in wh.relations():
        return {}
    _, rows = wh.query(f"select name, value from {wh.table(POLICY_TABLE)}")
    return {str(name): str(value) for name, value in rows}


def _wanted(privacy: Privacy) -> tuple[str, str]:
    return privacy.policy, (privacy.key_id or "") if privacy.pseudonymize else ""


def check_policy(wh: Warehouse, privacy: Privacy, full_refresh: bool = False) -> None:
    """Refuse a run whose policy (or pseudonymization key) is not the warehouse's: mixed values
    would break every join. A full refresh reloads everything, so it may change it."""
    record = recorded(wh)
    if "policy" in record:
        have = (record["policy"], record.get("key_id", ""))
    elif "calls" in wh.relations() and wh.count("calls") > 0:
        have = (KEEP, "")  # loaded before the warehouse recorded a policy: in clear
    else:
        return  # nothing loaded yet
    want = _wanted(privacy)
    if have == want or full_refresh:
        return
    if have[0] == want[0]:
        raise SyncAborted(
            f"this warehouse was pseudonymized with PII key id {have[1]}, "
            f"SOURCES__NEURON__PII_KEY is another key (id {want[1]}): set the key it was "
            "loaded with, or reload everything under the new key with `sync --full-refresh`"
        )
    raise SyncAborted(
        f"this warehouse holds data loaded under SOURCES__NEURON__PII={have[0]}, this run is "
        f"{want[0]}: to change the policy, run `neuron-calls sync --full-refresh` under "
        f"PII={want[0]} (reloads everything), or set SOURCES__NEURON__PII={have[0]} back"
    )


def bind(wh: Warehouse, privacy: Privacy, full_refresh: bool = False) -> None:
    """Before a run: its policy checked against the warehouse's, its erased contacts read."""
    check_policy(wh, privacy, full_refresh)
    privacy.erased = erased(wh, privacy)


def remember(wh: Warehouse, privacy: Privacy, reloaded: bool = False) -> None:
    """After a run that loaded: the warehouse's policy is the run's. Its rows were redacted by
    this release when the policy is new to the warehouse or everything was `reloaded` (a full
    refresh); otherwise only `rescreen` moves the recorded redaction version."""
    record = recorded(wh)
    policy, key = _wanted(privacy)
    if record.get("policy") == policy and record.get("key_id", "") == key and not reloaded:
        return
    values = {"policy": policy, "key_id": key}
    if privacy.pseudonymize:
        values[REDACTION] = str(REDACTION_VERSION)
    _put(wh, values)


def redaction_version(record: dict[str, str]) -> int:
    """The redaction the stored texts went through: 1 for a pseudonymized warehouse of a
    release that did not record it."""
    return int(record.get(REDACTION) or 1)


def rescreen(wh: Warehouse, privacy: Privacy) -> int:
    """Stored texts redacted by an older release (`redaction_version` below the code's), under
    the same pseudonymize policy as this run: every `transcript_segments.text` and
    `transcripts.summary` screened again in place with today's redaction, then the version
    recorded. The contact's name and number are not in the warehouse any more; the older
    redaction already replaced them. Returns the rows changed."""
    record = recorded(wh)
    if not privacy.pseudonymize or record.get("policy") != PSEUDONYMIZE:
        return 0
    version = redaction_version(record)
    if version >= REDACTION_VERSION:
        return 0
    relations = wh.relations()
    changed = sum(
        _rescreen_table(wh, *screened) for screened in SCREENED if screened[0] in relations
    )
    _put(wh, {REDACTION: str(REDACTION_VERSION)})
    log.info(
        "stored transcripts screened again (redaction version %d, was %d): %d texts changed",
        REDACTION_VERSION,
        version,
        changed,
    )
    return changed


def _rescreen_table(wh: Warehouse, name: str, keys: tuple[str, ...], column: str) -> int:
    """One table's texts, read page by page in key order, the changed ones written back."""
    table, changed, after = wh.table(name), 0, None
    order = ", ".join(keys)
    while True:
        where = f"{column} is not null"
        if after is not None:
            where += f" and ({order}) > ({', '.join(literal(v) for v in after)})"
        _, rows = wh.query(
            f"select {order}, {column} from {table} where {where} "
            f"order by {order} limit {RESCREEN_PAGE}"
        )
        if not rows:
            return changed
        after = rows[-1][: len(keys)]
        redone = [(*row[:-1], redact_text(row[-1], Contact())) for row in rows]
        new = [row for row, old in zip(redone, rows, strict=True) if row[-1] != old[-1]]
        for start in range(0, len(new), UPDATE_BATCH):
            _update(wh, table, keys, column, new[start : start + UPDATE_BATCH])
        changed += len(new)


def _update(
    wh: Warehouse, table: str, keys: tuple[str, ...], column: str, rows: list[tuple[Any, ...]]
) -> None:
    values = ", ".join(f"({', '.join(literal(v) for v in row)})" for row in rows)
    match = " and ".join(f"t.{key} = v.{key}" for key in keys)
    wh.execute(
        *wh.transpile(
            f"update {table} as t set {column} = v.{column} from (values {values}) "
            f"as v({', '.join(keys)}, {column}) where {match}"
        )
    )


def erased(wh: Warehouse, privacy: Privacy) -> dict[bytes, frozenset[str]]:
    """The erased contacts' hashes by the key they were made with. An erasure under a key this
    run does not have would let that contact back in: refused, naming the key id."""
    if ERASURES_TABLE not in wh.relations():
        return {}
    _, rows = wh.query(f"select contact_hash, key_id from {wh.table(ERASURES_TABLE)}")
    keys = {}
    if privacy.key is not None:
        keys[key_id(privacy.key)] = privacy.key
    salt = recorded(wh).get(SALT)
    if salt:
        keys[key_id(salt.encode())] = salt.encode()
    by_key: dict[bytes, set[str]] = {}
    unknown = sorted({str(kid) for _, kid in rows if kid not in keys})
    if unknown:
        raise SyncAborted(
            f"this warehouse records erasures made with PII key id {', '.join(unknown)}, which "
            "this run does not have: set SOURCES__NEURON__PII_KEY to that key, so that no "
            "erased contact is loaded again"
        )
    for contact_hash, kid in rows:
        by_key.setdefault(keys[kid], set()).add(str(contact_hash))
    return {key: frozenset(hashes) for key, hashes in by_key.items()}


def erasure_key(wh: Warehouse, privacy: Privacy) -> bytes:
    """The key of a new erasure: PII_KEY when set; else the warehouse's own random salt
    (created on the first erasure)."""
    if privacy.key is not None:
        return privacy.key
    salt = recorded(wh).get(SALT)
    if not salt:
        salt = secrets.token_hex(32)
        _put(wh, {SALT: salt})
    return salt.encode()


def record_erasure(wh: Warehouse, contact_hash: str, key: bytes, calls: int) -> None:
    _ensure(wh, ERASURES_TABLE, ERASURE_COLUMNS)
    table = wh.table(ERASURES_TABLE)
    kid = key_id(key)
    wh.execute(
        *wh.transpile(
            f"delete from {table} where contact_hash = {literal(contact_hash)} "
            f"and key_id = {literal(kid)}"
        ),
        *wh.transpile(
            f"insert into {table} (contact_hash, key_id, erased_at, calls) values "
            f"({literal(contact_hash)}, {literal(kid)}, {literal(pendulum.now('UTC'))}, "
            f"{int(calls)})"
        ),
    )


def _put(wh: Warehouse, values: dict[str, Any]) -> None:
    _ensure(wh, POLICY_TABLE, POLICY_COLUMNS)
    table = wh.table(POLICY_TABLE)
    now = literal(pendulum.now("UTC"))
    for name, value in values.items():
        wh.execute(
            *wh.transpile(f"delete from {table} where name = {literal(name)}"),
            *wh.transpile(
                f"insert into {table} (name, value, set_at) values "
                f"({literal(name)}, {literal(value)}, {now})"
            ),
        )


def _ensure(wh: Warehouse, name: str, columns: dict[str, str]) -> None:
    if name in wh.relations():
        return
    defs = ", ".join(f"{column} {kind}" for column, kind in columns.items())
    wh.execute(f"create schema if not exists {wh.schema()}")
    wh.execute(*wh.transpile(f"create table {wh.table(name)} ({defs})"))
