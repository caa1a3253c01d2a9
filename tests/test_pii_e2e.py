"""Personal data end to end: a sandbox whose transcripts carry the contacts' names, numbers and
identifiers, synced under `pseudonymize` into DuckDB and Postgres; policy switches; erasure."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.commands.forget import run_forget
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox
from pipelines.sandbox.transcripts import planted_pii

from .helpers import fetcher, sync
from .procs import assert_one_line, cli_env, run_cli, snapshot

KEY = "e2e-pii-key-0123456789abcdef"
PSEUDO = {"pii": "pseudonymize", "pii_key": KEY}
CALL_TABLES = ("calls", "transcripts", "transcript_segments", "speaker_sentiment", "recordings")


def hashed(phone: str | None) -> str | None:
    """The pseudonym of a phone; a call without a phone (the sandbox serves some) has none."""
    if phone is None:
        return None
    return hmac.new(KEY.encode(), phone.encode(), hashlib.sha256).hexdigest()


@functools.cache
def planted(sandbox: Sandbox) -> tuple[list[str], list[str], list[str]]:
    """What no redacted warehouse may hold (names, numbers, identifiers), the contacts' first
    names (as whole words), and the order numbers a redaction must leave (the sandbox's clock
    stays where it is in these tests)."""
    data = sandbox.state.data
    truth = sandbox.truth()
    strings: set[str] = set()
    firsts: set[str] = set()
    orders: list[str] = []
    for call in truth["calls"]:
        phone, name = call["contact"]["phone"], call["contact"]["name"]
        strings.update(v for v in (phone, phone and phone[3:], name) if v)
        if call["id"] in truth["transcripts"]:
            pos = data.positions[call["id"]]
            values = planted_pii(data.seed, pos, data.calls[pos])
            orders.append(values.pop("order"))
            firsts.add(values.pop("first_name"))
            strings.update(values.values())
    return sorted(strings), sorted(firsts), orders


def dump(fetch: Callable[[str], list[tuple[Any, ...]]], schema: str = "neuron") -> str:
    """Every row of every table and view of the dataset, as text."""
    relations = fetch(
        f"select table_name from information_schema.tables where table_schema = '{schema}'"
    )
    lines = []
    for (name,) in relations:
        for row in fetch(f'select * from {schema}."{name}"'):
            lines.append(f"{name}: {row}")
    return "\n".join(lines)


def working_files(folder: Path) -> str:
    """Every file under dlt's working folder, as text."""
    return "\n".join(
        path.read_bytes().decode("utf-8", "replace") for path in folder.rglob("*") if path.is_file()
    )


def assert_no_pii(text: str, sandbox: Sandbox, where: str) -> None:
    strings, firsts, _ = planted(sandbox)
    found = [s for s in strings if s in text]
    assert not found, f"{where} holds {found[:5]}"
    words = [f for f in firsts if re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text)]
    assert not words, f"{where} holds the first names {words[:5]}"


def assert_pseudonymized(fetch: Callable[[str], list[tuple[Any, ...]]], sandbox: Sandbox) -> None:
    truth = sandbox.truth()
    rows = dict(
        (
            (i, (p, n))
            for i, p, n in fetch("select id, contact_phone, contact_name from neuron.calls")
        )
    )
    want = {c["id"]: (hashed(c["contact"]["phone"]), None) for c in truth["calls"]}
    assert rows == want
    dnd = {hashed(c["contact"]["phone"]) for c in truth["calls"] if c["disposition"] == "dnd"}
    assert dnd and {r[0] for r in fetch("select contact_phone from neuron.dnd_contacts")} == dnd
    _, _, orders = planted(sandbox)
    text = " ".join(r[0] for r in fetch("select text from neuron.transcript_segments"))
    assert orders and all(order in text for order in orders)  # no card: they stay
    assert "<AADHAAR>" in text and "<CARD>" in text and "<PAN>" in text and "<NAME>" in text


def contact_with_transcripts(sandbox: Sandbox) -> tuple[str, list[str]]:
    """A contact called more than once, one call at least with a transcript: its calls."""
    truth = sandbox.truth()
    calls: dict[str, list[str]] = {}
    for call in truth["calls"]:
        calls.setdefault(call["contact"]["phone"], []).append(call["id"])
    for phone, ids in calls.items():
        if phone and len(ids) > 1 and any(i in truth["transcripts"] for i in ids):
            return phone, sorted(ids)
    raise AssertionError("no contact called twice with a transcript")


def assert_forgotten(
    fetch: Callable[[str], list[tuple[Any, ...]]], phone: str, ids: list[str]
) -> None:
    quoted = ", ".join(f"'{i}'" for i in ids)
    assert fetch(f"select count(*) from neuron.calls where id in ({quoted})") == [(0,)]
    for table in CALL_TABLES[1:]:
        assert fetch(f"select count(*) from neuron.{table} where call_id in ({quoted})") == [(0,)]
    erasures = fetch("select contact_hash, key_id from neuron._pii_erasures")
    assert [row[0] for row in erasures] == [hashed(phone)]
    assert phone not in str(erasures)


def test_pseudonymized_duckdb_then_a_refused_switch_and_an_erasure(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = make_sandbox(calls=80, plant_pii=True)
    with pytest.raises(AssertionError, match="holds"):  # the check finds what was planted
        assert_no_pii(json.dumps(sandbox.truth(), ensure_ascii=False), sandbox, "the API")
    db = tmp_path / "calls.duckdb"
    first = sync(sandbox, tmp_path, source_args=PSEUDO)
    assert first.exit_code == runner.EXIT_OK, first.error
    fetch = fetcher(db)
    assert_pseudonymized(fetch, sandbox)
    assert_no_pii(dump(fetch), sandbox, "the warehouse")
    assert_no_pii(working_files(tmp_path / "dlt"), sandbox, "dlt's working folder")
    assert not list((tmp_path / "dlt").rglob("*.parquet"))
    assert KEY not in dump(fetch) + working_files(tmp_path / "dlt")  # the key: nowhere

    # another policy: refused, one line saying how, nothing loaded
    before = snapshot(db)
    env = cli_env(
        tmp_path,
        SOURCES__NEURON__API_KEY=sandbox.api_key,
        SOURCES__NEURON__BASE_URL=sandbox.base_url,
    )
    args = [sys.executable, "-m", "pipelines", "sync", "--duckdb", str(db)]
    refused = run_cli(tmp_path, args, env)
    assert_one_line(refused, 2, "PII=pseudonymize", "--full-refresh")
    assert snapshot(db) == before

    # erasure, in a real process; its run in the run log
    phone, ids = contact_with_transcripts(sandbox)
    forget = [sys.executable, "-m", "pipelines", "forget", "--duckdb", str(db)]
    pii_env = {**env, "SOURCES__NEURON__PII": "pseudonymize", "SOURCES__NEURON__PII_KEY": KEY}
    done = run_cli(tmp_path, [*forget, "--phone", phone], pii_env)
    assert done.returncode == 0, done.stderr
    assert phone not in done.stdout + done.stderr
    assert_forgotten(fetch, phone, ids)
    deleted = {r[0] for r in fetch("select call_id from neuron.deleted_calls")}
    assert set(ids) <= deleted
    modes = [r[0] for r in fetch("select mode from neuron._sync_runs order by started_at")]
    assert modes[-1] == "forget"
    assert main(["forget", "--duckdb", str(db), "--phone", "98765"]) == 2
    assert "--phone '98765' is not an E.164 number" in capsys.readouterr().err

    # for good: a full refresh and an audit do not bring them back, nor report them missing
    again = sync(sandbox, tmp_path, full_refresh=True, source_args=PSEUDO)
    assert again.exit_code == runner.EXIT_OK, again.error
    assert_forgotten(fetch, phone, ids)
    audit = runner.run_audit(
        runner.SyncOptions(
            duckdb_path=db,
            pipelines_dir=str(tmp_path / "dlt"),
            source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key, **PSEUDO},
        ),
        *_audited_days(sandbox),
        transcripts=True,
    )
    assert audit.exit_code == runner.EXIT_OK, (audit.error, audit.report.audit.days)


def _audited_days(sandbox: Sandbox) -> tuple[Any, Any]:
    import datetime as dt

    starts = [c["started_at"][:10] for c in sandbox.truth()["calls"]]
    return dt.date.fromisoformat(min(starts)), dt.date.fromisoformat(max(starts))


def test_erasure_under_keep_removes_recordings_and_survives_a_full_refresh(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=60)
    archive = tmp_path / "recordings"
    recordings = {"recordings_url": str(archive)}
    first = sync(sandbox, tmp_path, source_args=recordings)
    assert first.exit_code == runner.EXIT_OK, first.error
    assert_no_pii(working_files(tmp_path / "dlt"), sandbox, "dlt's working folder under keep")
    fetch = fetcher(tmp_path / "calls.duckdb")
    phone, ids = next(
        (p, i)
        for p, i in _calls_by_phone(fetch).items()
        if fetch(f"select count(*) from neuron.recordings where call_id in ({_q(i)})")[0][0]
    )
    files = [
        Path(r[0]) for r in fetch(f"select uri from neuron.recordings where call_id in ({_q(ids)})")
    ]
    assert files and all(f.exists() for f in files)
    options = runner.SyncOptions(
        duckdb_path=tmp_path / "calls.duckdb", pipelines_dir=str(tmp_path / "dlt")
    )
    result = run_forget(options, phone)
    assert result.exit_code == 0, result.error
    assert not any(f.exists() for f in files)
    assert fetch(f"select count(*) from neuron.calls where id in ({_q(ids)})") == [(0,)]
    salted = fetch("select contact_hash from neuron._pii_erasures")
    assert len(salted) == 1 and salted[0][0] != hashed(phone)  # the warehouse's salt, no key
    again = sync(sandbox, tmp_path, full_refresh=True, source_args=recordings)
    assert again.exit_code == runner.EXIT_OK, again.error
    assert fetch(f"select count(*) from neuron.calls where id in ({_q(ids)})") == [(0,)]
    assert not any(f.exists() for f in files)  # its recordings were not archived again
    # pseudonymize with recordings: refused unless opted in
    refused = sync(sandbox, tmp_path / "p", source_args={**PSEUDO, **recordings})
    assert refused.exit_code == 2 and "PII_ARCHIVE_RECORDINGS" in (refused.error or "")


def _calls_by_phone(fetch: Callable[[str], list[tuple[Any, ...]]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for call_id, phone in fetch("select id, contact_phone from neuron.calls order by id"):
        out.setdefault(phone, []).append(call_id)
    return out


def _q(ids: list[str]) -> str:
    return ", ".join(f"'{i}'" for i in ids)


@pytest.fixture
def pg(postgres: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    url: str = postgres.new_database(f"p{abs(hash(request.node.nodeid)) % 10**8}")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
    return url


def test_pseudonymized_postgres_and_an_erasure(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=80, plant_pii=True)
    first = sync(sandbox, tmp_path, destination="postgres", source_args=PSEUDO)
    assert first.exit_code == runner.EXIT_OK, first.error
    fetch = fetcher(pg)
    assert_pseudonymized(fetch, sandbox)
    assert_no_pii(dump(fetch), sandbox, "Postgres")
    assert_no_pii(working_files(tmp_path / "dlt"), sandbox, "dlt's working folder")
    switched = sync(sandbox, tmp_path, destination="postgres")
    assert switched.exit_code == 2 and "--full-refresh" in (switched.error or "")
    phone, ids = contact_with_transcripts(sandbox)
    options = runner.SyncOptions(
        destination="postgres", pipelines_dir=str(tmp_path / "dlt"), source_args=PSEUDO
    )
    result = run_forget(options, phone)
    assert result.exit_code == 0, result.error
    assert_forgotten(fetch, phone, ids)
    again = sync(sandbox, tmp_path, destination="postgres", full_refresh=True, source_args=PSEUDO)
    assert again.exit_code == runner.EXIT_OK, again.error
    assert_forgotten(fetch, phone, ids)
    runs = fetch("select mode, outcome from neuron._sync_runs order by started_at")
    assert ("forget", "ok") in runs and ("incremental", "refused") in runs


# -- a warehouse pseudonymized by an older release -------------------------------------------

SPOKEN_12 = re.compile(r"(?<![\d\w])\d{4}[ -]?\d{4}[ -]?\d{4}(?![\d\w])")
TAMPERED = 5  # calls whose texts the older release left holding their Aadhaar number


def clear_aadhaar(fetch: Callable[[str], list[tuple[Any, ...]]]) -> set[str]:
    """Valid Aadhaar numbers (python-stdnum) said as one number in the stored texts."""
    from stdnum.in_ import aadhaar

    texts = [r[0] for r in fetch("select text from neuron.transcript_segments")]
    texts += [r[0] for r in fetch("select summary from neuron.transcripts")]
    found = (m.group() for t in texts if t for m in SPOKEN_12.finditer(t))
    return {n for n in (re.sub(r"\D", "", f) for f in found) if aadhaar.is_valid(n)}


def as_the_old_release_left_it(
    sandbox: Sandbox, execute: Callable[[str], None], fetch: Callable[[str], list[tuple[Any, ...]]]
) -> set[str]:
    """The stored texts of the oldest calls with a transcript given back their Aadhaar numbers in
    clear (segments and a summary), and the policy record without a redaction version: what a
    release with the hand-typed Verhoeff table left. Returns the numbers put back."""
    data = sandbox.state.data
    ids = [
        r[0]
        for r in fetch(
            "select c.id from neuron.calls c join neuron.transcripts t on t.call_id = c.id "
            f"order by c.started_at limit {TAMPERED}"
        )
    ]
    numbers = set()
    for call_id in ids:
        pos = data.positions[call_id]
        number = planted_pii(data.seed, pos, data.calls[pos])["aadhaar"]
        said = " ".join(number[i : i + 4] for i in (0, 4, 8))
        numbers.add(number)
        execute(
            "update neuron.transcript_segments set text = replace(text, '<AADHAAR>', "
            f"'{said}') where call_id = '{call_id}'"
        )
        execute(
            f"update neuron.transcripts set summary = summary || ' Aadhaar {said}.' "
            f"where call_id = '{call_id}'"
        )
    execute("delete from neuron._pii_policy where name = 'redaction_version'")
    return numbers


def counts(fetch: Callable[[str], list[tuple[Any, ...]]]) -> dict[str, int]:
    tables = ("calls", "transcripts", "transcript_segments", "speaker_sentiment")
    return {t: fetch(f"select count(*) from neuron.{t}")[0][0] for t in tables}


def assert_mended_by_the_next_sync(
    sandbox: Sandbox,
    execute: Callable[[str], None],
    fetch: Callable[[str], list[tuple[Any, ...]]],
    next_sync: Callable[[], runner.SyncResult],
) -> None:
    from pipelines.neuron.pii import REDACTION_VERSION

    assert clear_aadhaar(fetch) == set()
    recorded = dict(fetch("select name, value from neuron._pii_policy"))
    assert recorded["redaction_version"] == str(REDACTION_VERSION)
    numbers = as_the_old_release_left_it(sandbox, execute, fetch)
    assert clear_aadhaar(fetch) == numbers and len(numbers) == TAMPERED  # the check sees them
    before = counts(fetch)
    result = next_sync()
    assert result.exit_code == runner.EXIT_OK, result.error
    assert clear_aadhaar(fetch) == set()
    assert counts(fetch) == before
    recorded = dict(fetch("select name, value from neuron._pii_policy"))
    assert recorded["redaction_version"] == str(REDACTION_VERSION)
    summaries = [r[0] for r in fetch("select summary from neuron.transcripts")]
    assert sum(s.endswith(" Aadhaar <AADHAAR>.") for s in summaries) == TAMPERED
    assert_no_pii(dump(fetch), sandbox, "the mended warehouse")


def test_a_warehouse_redacted_by_an_older_release_is_mended_by_the_next_sync_duckdb(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    import duckdb

    sandbox = make_sandbox(calls=80, plant_pii=True)
    db = tmp_path / "calls.duckdb"
    assert sync(sandbox, tmp_path, source_args=PSEUDO).exit_code == runner.EXIT_OK

    def execute(sql: str) -> None:
        with duckdb.connect(str(db)) as conn:
            conn.execute(sql)

    assert_mended_by_the_next_sync(
        sandbox, execute, fetcher(db), lambda: sync(sandbox, tmp_path, source_args=PSEUDO)
    )


def test_a_warehouse_redacted_by_an_older_release_is_mended_by_the_next_sync_postgres(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    import psycopg2

    sandbox = make_sandbox(calls=80, plant_pii=True)
    first = sync(sandbox, tmp_path, destination="postgres", source_args=PSEUDO)
    assert first.exit_code == runner.EXIT_OK, first.error

    def execute(sql: str) -> None:
        with psycopg2.connect(pg) as conn, conn.cursor() as cursor:
            cursor.execute(sql)

    assert_mended_by_the_next_sync(
        sandbox,
        execute,
        fetcher(pg),
        lambda: sync(sandbox, tmp_path, destination="postgres", source_args=PSEUDO),
    )
