"""Helpers for tests that run `python -m pipelines` as a real process, and tiny fake APIs.

Every process gets its own HOME under the test's tmp folder, which is all that isolates dlt's
working folder (`~/.dlt/pipelines`, for root too), as the README's settings say; the kill -9 tests
rely on finding it there.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb

PIPELINE_DIR = Path(".dlt") / "pipelines" / "neuron_calls"  # under a test's home


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: no inherited Neuron settings, dlt's folder under `home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__", "NORMALIZE__"))
        and k != "DLT_DATA_DIR"
    }
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def sandbox_env(home: Path, sandbox: Any, **extra: str) -> dict[str, str]:
    return cli_env(
        home,
        SOURCES__NEURON__API_KEY=sandbox.api_key,
        SOURCES__NEURON__BASE_URL=sandbox.base_url,
        **extra,
    )


# A sync kept running while a test starts another: 4 in flight at the sandbox's 300 ms is ~12 s of
# requests for 100 calls, whatever the machine's load; the test then sets the latency to 0
SLOW_FIRST = {"SOURCES__NEURON__MAX_CONCURRENCY": "4"}


def sync_args(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", "sync", "--duckdb", str(db), *args]


def run_cli(
    home: Path, args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=home, env=env or cli_env(home), capture_output=True, text=True, timeout=timeout
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Exit `code`, exactly one line on stderr naming every word, and no traceback anywhere."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stderr, proc.stdout)
    assert len(lines) == 1, f"want one line on stderr, got {len(lines)}:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    line = lines[0]
    assert line.startswith("neuron-calls: "), line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    return line


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the file but our run log (a failed run may log itself)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            if table == "_sync_runs":
                continue
            rows = conn.execute(f'select * from "{schema}"."{table}"').fetchall()
            out[f"{schema}.{table}"] = sorted(rows, key=repr)
    return out


def run_log(db: Path) -> list[tuple[Any, ...]]:
    """Our run log (`neuron._sync_runs`), oldest first; [] before any CLI run."""
    with duckdb.connect(str(db), read_only=True) as conn:
        try:
            return conn.execute(
                "select mode, exit_code, error from neuron._sync_runs order by started_at"
            ).fetchall()
        except duckdb.CatalogException:
            return []


Route = Callable[[str], tuple[int, dict[str, str], bytes]]


class FakeAPI:
    """A threaded http.server on loopback answering every GET with `route(path_and_query)`."""

    def __init__(self, route: Route) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.server.seen.append(self.path)  # type: ignore[attr-defined]
                status, headers, body = route(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.seen = []  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def seen(self) -> list[str]:
        return self.server.seen  # type: ignore[attr-defined,no-any-return]

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def holding_open(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding `db` open read-write (as a duckdb shell or notebook would)."""
    code = (
        "import duckdb, sys, time\n"
        f"conn = duckdb.connect({str(db)!r})\n"
        "print('open', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
