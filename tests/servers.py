"""Real servers for tests, on loopback: a throwaway PostgreSQL cluster, an S3-compatible server.

Without the server binaries the tests that need one skip with the reason, except under
`CI=true`, where a missing server is a failure (`.ci/run` installs it).

The PostgreSQL server is a daemon of its own (run as the `postgres` user when we are root): a
guardian process, in a session of its own so that Ctrl-C does not reach it, holds a pipe from the
test process and stops the cluster and removes its folder when the pipe closes, whichever way the
test process ends (a normal stop, Ctrl-C, SIGTERM, kill -9). The S3 server and the sandboxes are
threads of the test process: they end with it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

PG_USER = "neuron_test"
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: server tests must run, not skip)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Waits for EOF on stdin (its owner's end of the pipe closed: the owner stopped or died), then
# runs the command given (the cluster's stop) and removes the folder, the last argument.
GUARDIAN = """
import shutil, subprocess, sys
sys.stdin.buffer.read()
subprocess.run(sys.argv[1:-1], capture_output=True, timeout=60)
shutil.rmtree(sys.argv[-1], ignore_errors=True)
"""


def _pg_tool(name: str) -> str | None:
    for folder in PG_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


class Postgres:
    """A PostgreSQL cluster in a temp folder, password auth, on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        initdb, self.pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
        if not initdb or not self.pg_ctl:
            unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="neuron-pg-"))
        self.folder.chmod(0o777)  # the server runs as `postgres` when we are root
        self.data = self.folder / "data"
        # started first: a cluster half made when the test process ends is cleaned up too
        self.guardian = subprocess.Popen(
            [sys.executable, "-c", GUARDIAN, *self._command(self.pg_ctl, "-D", str(self.data),
             "-m", "immediate", "stop"), str(self.folder)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password)
        pwfile.chmod(0o644)
        self._run(
            initdb,
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
        )
        pwfile.unlink()
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=50"
        )
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )

    @staticmethod
    def _command(*args: str) -> list[str]:
        if os.geteuid() == 0:  # initdb and pg_ctl refuse root
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._command(*args), capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stderr or done.stdout}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}"')
            cursor.execute(f'create database "{name}"')
        conn.close()
        return self.url(name)

    def stop(self) -> None:
        """Close the guardian's pipe: it stops the cluster and removes its folder."""
        assert self.guardian.stdin is not None
        self.guardian.stdin.close()
        self.guardian.wait(90)


class S3Server:
    """moto's S3 in server mode on 127.0.0.1:<free port> (a real HTTP S3 API, in-process)."""

    KEY, SECRET, REGION = "neuron-test-key", "neuron-test-secret", "us-east-1"

    def __init__(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            unavailable("moto[server] is not installed (the dev extra installs it)")
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What s3fs/botocore read: the key, and the endpoint (fsspec's and AWS's own names)."""
        return {
            "AWS_ACCESS_KEY_ID": self.KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET,
            "AWS_DEFAULT_REGION": self.REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "FSSPEC_S3_ENDPOINT_URL": self.endpoint,
        }

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            key=self.KEY, secret=self.SECRET, endpoint_url=self.endpoint, skip_instance_cache=True
        )

    def new_bucket(self, name: str) -> str:
        bucket = f"{name}-{secrets.token_hex(4)}"
        self.filesystem().mkdir(bucket)
        return bucket

    def stop(self) -> None:
        self.server.stop()
