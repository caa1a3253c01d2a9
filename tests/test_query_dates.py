"""Unit: `sql`'s translation to other dialects, the one parse of command-line dates, and the
client's reading of the API's clock from `Date`."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pipelines.neuron.api.client import NeuronClient
from pipelines.neuron.api.errors import ConfigError
from pipelines.neuron.dates import window_bound
from pipelines.warehouse.query import QueryRefused, prepare

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("query", "want"),
    [
        (
            "select a as x, b, sum(c) from t group by all",
            "SELECT a AS x, b, SUM(c) FROM t GROUP BY a, b",
        ),
        ("from neuron.calls", "SELECT * FROM neuron.calls"),
        (
            "with q as (select a, count(*) n from t group by all) select * from q",
            "WITH q AS (SELECT a, COUNT(*) AS n FROM t GROUP BY a) SELECT * FROM q",
        ),
    ],
)
def test_duckdb_sql_is_translated_for_postgres(query: str, want: str) -> None:
    assert prepare(query, "postgres", "neuron") == want


def test_describe_and_show_become_information_schema_questions() -> None:
    described = prepare("describe neuron.calls", "postgres", "neuron")
    assert "information_schema.columns" in described and "'calls'" in described
    assert "information_schema.tables" in prepare("show tables", "postgres", "neuron")
    with pytest.raises(QueryRefused, match="describe <table>"):
        prepare("summarize neuron.calls", "postgres", "neuron")


@pytest.mark.parametrize("query", ["insert into t values (1)", "select 1; select 2", "  ;"])
def test_what_does_not_only_read_is_refused_everywhere(query: str) -> None:
    for dialect in ("duckdb", "postgres"):
        with pytest.raises(QueryRefused):
            prepare(query, dialect, "neuron")


def test_a_syntax_error_is_duckdbs_first_line() -> None:
    with pytest.raises(QueryRefused, match=r'^Parser Error: syntax error at or near "selec"$'):
        prepare("selec * frm t", "postgres", "neuron")


def test_raw_is_sent_as_given_unless_it_writes() -> None:
    pg = "select now() - interval '1 day'"
    assert prepare(pg, "postgres", "neuron", raw=True) == pg
    with pytest.raises(QueryRefused):
        prepare("delete from neuron.calls", "postgres", "neuron", raw=True)


def test_a_bare_date_is_a_whole_utc_day() -> None:
    assert str(window_bound("--from", "2026-11-01")) == "2026-11-01 00:00:00+00:00"
    assert str(window_bound("--to", "2026-11-01", end=True)) == "2026-11-01 23:59:59+00:00"
    moment = "2026-11-01T05:00:00+02:00"
    assert str(window_bound("--to", moment, end=True)) == "2026-11-01 03:00:00+00:00"
    assert window_bound("--to", None, end=True) is None
    with pytest.raises(ConfigError, match="--to 'yesterday' is not an ISO 8601"):
        window_bound("--to", "yesterday", end=True)


def test_the_client_keeps_the_apis_clock_from_date() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.query, "ascii"))
        headers = {"Date": "Mon, 10 Mar 2025 12:00:00 GMT"}
        return httpx.Response(200, json={"data": [], "total": 0}, headers=headers)

    async def go() -> tuple[object, object, object]:
        async with NeuronClient(
            "k", "http://api.test/v1", transport=httpx.MockTransport(answer)
        ) as c:
            before = c.server_now()
            now = await c.clock()
            again = await c.clock()  # known: no second request
            return before, now, again

    before, now, again = asyncio.run(go())
    assert before is None and seen == ["limit=1"]
    assert str(now)[:16] == "2025-03-10 12:00" and str(again)[:16] == "2025-03-10 12:00"
