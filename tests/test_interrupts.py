"""An interrupted `make test` leaves no server behind: pytest, with an xdist worker, holding a
PostgreSQL cluster (a daemon of its own, run as `postgres`) and an S3 server, stopped by Ctrl-C
(SIGINT to its process group, as a terminal sends it), SIGTERM to pytest alone (`kill`, a CI
timeout) or kill -9 of the worker: no process of the cluster, no worker, no folder remain."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]


def mentioning(text: str) -> list[psutil.Process]:
    """Running processes whose command line names `text` (a folder of this test's)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if text in " ".join(proc.info["cmdline"] or []) and proc.pid != os.getpid():
            found.append(proc)
    return found


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def temp() -> Iterator[Path]:
    """The child's TMPDIR, where its cluster's folder goes: one the `postgres` user can reach
    (pytest's own tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="neuron-interrupt-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(600)  # two pytest start-ups and a cluster's: minutes on a loaded machine
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm", "kill-9-worker"])
def test_an_interrupted_run_leaves_no_server_behind(stop: str, temp: Path) -> None:
    ready = temp / "ready"
    env = {**os.environ, "TMPDIR": str(temp), "NEURON_HOLD_READY": str(ready)}
    command = [sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "no:cacheprovider"]
    proc = subprocess.Popen(
        [*command, "tests/hold_servers.py"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, "no servers", 300)
        assert proc.poll() is None, proc.communicate()[0]
        folder, port, worker = ready.read_text().split()
        assert Path(folder, "data", "postmaster.pid").exists() and listening(int(port))
        assert mentioning(folder), "no process of the cluster found: the check proves nothing"
        workers = psutil.Process(proc.pid).children(recursive=True)
        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        elif stop == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.kill(int(worker), signal.SIGKILL)
        output = proc.communicate(timeout=300)[0]  # a hang guard: pytest winds its worker down
        assert proc.returncode != 0, f"the held test ended by itself: nothing stopped\n{output}"
        wait_until(lambda: not mentioning(folder), f"the cluster in {folder} still runs", 120)
        wait_until(lambda: not Path(folder).exists(), f"{folder} was left behind", 120)
        assert not listening(int(port)), "the S3 server still listens"
        wait_until(lambda: not any(p.is_running() for p in workers), "a worker runs", 120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
