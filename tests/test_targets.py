"""A run's destination resolves its settings for `capabilities()` once per naming convention
(dlt asks at every step of a run, each time resolving them anew), and each caller still gets a
copy of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.normalizers.naming import snake_case, sql_cs_v1

from pipelines.warehouse.targets import DuckDBTarget

pytestmark = pytest.mark.unit


def counted(destination: Any) -> list[int]:
    """How many times `destination` resolves its settings from now on."""
    calls = [0]
    resolve = destination.configuration

    def configuration(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return resolve(*args, **kwargs)

    destination.configuration = configuration
    return calls


def test_capabilities_are_resolved_once_per_naming_and_copied(tmp_path: Path) -> None:
    destination = DuckDBTarget(tmp_path / "calls.duckdb").destination()
    calls = counted(destination)
    first, second = destination.capabilities(), destination.capabilities()
    assert calls[0] == 1
    assert first is not second
    first.max_identifier_length = 3  # a caller's change stays its own
    assert destination.capabilities().max_identifier_length != 3
    destination.capabilities(naming=snake_case.NamingConvention())
    destination.capabilities(naming=snake_case.NamingConvention())
    assert calls[0] == 2  # one more for the naming convention
    destination.capabilities(naming=sql_cs_v1.NamingConvention())
    assert calls[0] == 3
    plain = dlt.destinations.duckdb(str(tmp_path / "other.duckdb"))
    assert destination.capabilities().supported_loader_file_formats == (
        plain.capabilities().supported_loader_file_formats
    )
