"""Run by test_interrupts.py alone (`make test` does not collect it: its name is no test file's):
holds a PostgreSQL cluster and an S3 server until its pytest is stopped."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def test_hold_the_servers(postgres: Any, s3: Any) -> None:
    Path(os.environ["NEURON_HOLD_READY"]).write_text(f"{postgres.folder} {s3.port} {os.getpid()}")
    # held until the test stops this pytest (seconds after `ready`): long enough that a loaded
    # machine never lets it end by itself first (it did at 30 s, under `make test`)
    time.sleep(600)
