"""Run by test_interrupts.py alone (`make test` does not collect it: its name is no test file's):
holds a PostgreSQL cluster and an S3 server until its pytest is stopped."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def test_hold_the_servers(postgres: Any, s3: Any) -> None:
    Path(os.environ["NEURON_HOLD_READY"]).write_text(f"{postgres.folder} {s3.port} {os.getpid()}")
    time.sleep(30)  # stopped long before; xdist's worker ignores Ctrl-C and sleeps it out
