"""The sandbox in its own process, for the benchmarks (it must not share the GIL with them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class SandboxProc:
    proc: subprocess.Popen[str]
    base_url: str
    api_key: str
    calls: int
    startup_seconds: float

    @property
    def admin(self) -> str:
        return self.base_url.removesuffix("/v1") + "/_sandbox"

    def reset_stats(self) -> None:
        httpx.post(f"{self.admin}/stats/reset", timeout=10).raise_for_status()

    def cpu_seconds(self) -> float:
        """The sandbox process's CPU time so far (Linux: /proc), to see what it took of the
        machine's cores while a client ran."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def requests(self) -> int:
        stats = httpx.get(f"{self.admin}/stats", timeout=10).json()
        return int(stats["total"])


@contextmanager
def sandbox(calls: int, latency_ms: float = 0, *options: str) -> Iterator[SandboxProc]:
    """`python -m pipelines.sandbox` on a free port, clock frozen, stopped at the end."""
    cmd = [
        sys.executable,
        "-m",
        "pipelines.sandbox",
        "--port",
        "0",
        "--calls",
        str(calls),
        "--latency-ms",
        str(latency_ms),
        "--now",
        "2026-11-01T12:00:00Z",
        *options,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Neuron sandbox at URL  key: KEY"
        if "sandbox at" not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        url = line.split("sandbox at", 1)[1].split()[0]
        key = line.rsplit("key:", 1)[1].strip()
        yield SandboxProc(proc, url, key, calls, time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(10)
