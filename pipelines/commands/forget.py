"""`neuron-calls forget --phone E164`: a data subject's erasure request.

Every row of the contact's calls leaves every table (dlt's child tables too) and their
recording files are deleted; the call ids go to `deleted_calls`; an erasure entry (the keyed
hash of the number, never the number) makes every later run drop the contact's calls before
they reach dlt (`neuron.pii.Privacy.suppressed`). On DuckDB it runs on the private copy and is
published whole, like a sync; its run is in the run log.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import NamedTuple

import pendulum

from pipelines.neuron import Privacy, SyncReport
from pipelines.neuron.pii import PSEUDONYMIZE, e164, phone_hash
from pipelines.neuron.tables import TABLES
from pipelines.runner.outcomes import EXIT_OK, RunRefused, SyncAborted
from pipelines.runner.staged import staged_write
from pipelines.runner.sync import (
    SyncOptions,
    SyncResult,
    _failed,
    locked,
    privacy_settings,
    record_only,
    run_row,
    target_of,
)
from pipelines.warehouse.access import Warehouse, literal
from pipelines.warehouse.privacy import erasure_key, record_erasure, recorded

from .options import add_target, add_verbose, target_options

log = logging.getLogger(__name__)

MODE = "forget"


class Erased(NamedTuple):
    call_ids: list[str]
    files: list[str]  # recording URIs


def run_forget(options: SyncOptions, phone: str) -> SyncResult:
    """Erase one contact from the warehouse and keep them out of every later run."""
    clock = time.monotonic()
    report = SyncReport()
    try:
        number = e164(phone)
        if number is None:
            raise SyncAborted(
                f"--phone {phone!r} is not an E.164 number: + then the country code and "
                "number, e.g. +919876543210"
            )
        privacy = privacy_settings(options)
        target = target_of(options)
        with locked(options, target, loads=False) as pipeline:
            try:
                with staged_write(target, pipeline) as write:
                    with write.warehouse() as wh:
                        erased = erase_contact(wh, privacy, number)
                    remove_files(erased.files)  # before publishing: a failure leaves rows
                    report.erased = erased.call_ids
                    result = SyncResult(EXIT_OK, report, time.monotonic() - clock, mode=MODE)
                    write.record(run_row(result))
                return result
            except BaseException as exc:  # noqa: BLE001 - logged in a run of its own
                result = _failed(exc, MODE, report, clock)
                if not isinstance(exc, RunRefused):
                    record_only(target, pipeline, result)
                return result
    except BaseException as exc:  # noqa: BLE001 - refused before it began
        return _failed(exc, MODE, report, clock)


def erase_contact(wh: Warehouse, privacy: Privacy, number: str) -> Erased:
    """Delete the contact's calls from every table, record them as deleted, and the erasure."""
    record = recorded(wh)
    stored = number
    if record.get("policy") == PSEUDONYMIZE:
        if privacy.key is None or privacy.key_id != record.get("key_id"):
            raise SyncAborted(
                f"this warehouse is pseudonymized with PII key id {record.get('key_id')}: "
                "set SOURCES__NEURON__PII_KEY to that key to find the contact's calls"
            )
        stored = phone_hash(privacy.key, number)
    relations = wh.relations()
    call_ids: list[str] = []
    files: list[str] = []
    if "calls" in relations:
        _, rows = wh.query(
            f"select id from {wh.table('calls')} where contact_phone = {literal(stored)}"
        )
        call_ids = sorted(str(row[0]) for row in rows)
    if call_ids and "recordings" in relations:
        _, rows = wh.query(
            f"select uri from {wh.table('recordings')} where call_id in {_ids(call_ids)}"
        )
        files = [str(row[0]) for row in rows if row[0]]
    if call_ids:
        _delete_rows(wh, relations, call_ids)
    key = erasure_key(wh, privacy)
    record_erasure(wh, phone_hash(key, number), key, len(call_ids))
    return Erased(call_ids, files)


def _ids(call_ids: list[str]) -> str:
    return "(" + ", ".join(literal(call_id) for call_id in call_ids) + ")"


def _delete_rows(wh: Warehouse, relations: dict[str, str], call_ids: list[str]) -> None:
    ids = _ids(call_ids)
    for table in TABLES.values():
        if table.name not in relations or table.name == "deleted_calls":
            continue
        where = f"{table.merge_key} in {ids}"
        for child in sorted(r for r in relations if r.startswith(f"{table.name}__")):
            # dlt's child tables (fields the API added later) hang off the root row's _dlt_id
            wh.execute(
                *wh.transpile(
                    f"delete from {wh.table(child)} where _dlt_root_id in "
                    f"(select _dlt_id from {wh.table(table.name)} where {where})"
                )
            )
        wh.execute(*wh.transpile(f"delete from {wh.table(table.name)} where {where}"))
    if "deleted_calls" in relations:
        _record_deleted(wh, call_ids)


def _record_deleted(wh: Warehouse, call_ids: list[str]) -> None:
    """`deleted_calls` rows as dlt would write them (its two bookkeeping columns included)."""
    table = wh.table("deleted_calls")
    now = time.time()
    load_id = literal(f"{now:.6f}")
    moment = literal(pendulum.now("UTC"))
    values = ", ".join(
        f"({literal(call_id)}, {moment}, {load_id}, {literal(f'forget-{now:.0f}-{n}')})"
        for n, call_id in enumerate(call_ids)
    )
    wh.execute(
        *wh.transpile(f"delete from {table} where call_id in {_ids(call_ids)}"),
        *wh.transpile(
            f"insert into {table} (call_id, detected_at, _dlt_load_id, _dlt_id) values {values}"
        ),
    )


def remove_files(uris: list[str]) -> None:
    """Delete the contact's recording files (a file already gone is fine)."""
    if not uris:
        return
    from fsspec.core import url_to_fs

    for uri in uris:
        fs, path = url_to_fs(uri)
        try:
            fs.rm(path)
        except FileNotFoundError:
            log.debug("recording %s was already gone", uri)


# -- the command ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser)
    parser.add_argument(
        "--phone", required=True, metavar="E164", help="the contact's number, e.g. +919876543210"
    )
    add_verbose(parser)


def run(args: argparse.Namespace) -> int:
    options = SyncOptions(**target_options(args))
    result = run_forget(options, args.phone)
    if result.error:
        print(f"neuron-calls: {result.error}", file=sys.stderr)
    else:
        calls = len(result.report.erased)
        print(
            f"forgot the contact: {calls} call{'s' if calls != 1 else ''} removed from every "
            "table, and no later run loads them again"
        )
    return result.exit_code
