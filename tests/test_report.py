"""`neuron-calls report` end to end: a real sync of the sandbox, the command as a process, the
page in a real browser (Debian's chromium) with the network refused, checked against the views."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.cli import main
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .browser import Opened, chart_cache, chromium, open_report
from .helpers import sync
from .procs import assert_one_line, cli_env, run_cli, sandbox_env, sync_args

# the session sandbox: 300 calls over the 30 days before 2026-11-01 12:00 UTC
EVERYTHING = ("--from", "2026-10-01", "--to", "2026-11-01")
WEEK = ("--from", "2026-10-20", "--to", "2026-10-26")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return chart_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def synced(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory, cache: dict[str, str]
) -> Path:
    """A home with `calls.duckdb` synced from the sandbox by a real `sync`, which also wrote
    `synced.html` (REPORT_FILE)."""
    home = tmp_path_factory.mktemp("report")
    env = sandbox_env(home, sandbox, SOURCES__NEURON__REPORT_FILE=str(home / "synced.html"))
    done = run_cli(home, sync_args(home / "calls.duckdb"), env | cache, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"report       {home / 'synced.html'}" in done.stdout
    (home / "cache.json").write_text(json.dumps(cache))
    return home


def cache_env(home: Path) -> dict[str, str]:
    return dict(json.loads((home / "cache.json").read_text()))


def report_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", "report", *args]


def report(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(home, report_argv(*args), (env or cli_env(home)) | cache_env(home), timeout=90)


def started(home: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A report started in the background (several at once on a busy machine)."""
    return subprocess.Popen(
        report_argv(*args), cwd=home, env=env | cache_env(home), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def finished(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=90)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def views(home: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(home / "calls.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def figure(html: str, key: str) -> str:
    found = re.search(
        rf'data-figure="{key}">.*?class="value">([^<]+)<.*?class="delta">([^<]+)<', html
    )
    assert found, key
    return found.group(1)


def count(text: str) -> int:
    return int(text.replace(",", ""))


def specs(html: str) -> dict[str, Any]:
    found = re.search(r'id="report-specs">(.*?)</script>', html, re.S)
    assert found
    return dict(json.loads(found.group(1).replace("<\\/", "</"))["specs"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as opened:
        yield opened


def test_the_page_renders_every_chart_offline_with_the_views_numbers(
    synced: Path, browser: Any
) -> None:
    out = synced / "everything.html"
    done = report(synced, "--duckdb", str(synced / "calls.duckdb"), "--out", str(out), *EVERYTHING)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report       {out}"
    opened = open_report(browser, out)
    assert opened.errors == []
    assert opened.requests == [out.resolve().as_uri()]  # the file itself, nothing else
    charts = specs(out.read_text())
    assert len(charts) == 9
    for chart_id in charts:  # every chart drew marks into an SVG
        assert opened.page.locator(f"#{chart_id} svg .role-mark path").count() > 0, chart_id
    assert_figures_are_the_views(opened, synced)
    assert_charts_are_the_views(charts, synced)
    assert_reach_is_the_views(charts, synced)


def test_the_charts_read_at_a_glance(synced: Path, browser: Any) -> None:
    """Dispositions per day: one bar a day of the window, each day's label under its bar, no
    day after the window's end. Sentiment: a dark zero line, every bar named at its end (no
    legend of greys that read as not_interested's grey)."""
    out = synced / "week.html"
    done = report(synced, "--duckdb", str(synced / "calls.duckdb"), "--out", str(out), *WEEK)
    assert done.returncode == 0, done.stderr
    page = open_report(browser, out).page
    labels = page.locator(
        '#daily-dispositions g[aria-label^="X-axis"] .role-axis-label text'
    ).evaluate_all("ts => ts.map(t => [t.textContent, t.getBoundingClientRect().right])")
    assert [text for text, _ in labels] == [f"Oct {day}" for day in range(20, 27)]
    bars = page.locator("#daily-dispositions .role-mark path").evaluate_all(
        "ps => ps.map(p => { const r = p.getBoundingClientRect(); return [r.left, r.right]; })"
    )
    bands = sorted({(round(left), round(right)) for left, right in bars})
    assert len(bands) == 7
    for (text, anchor), (left, right) in zip(labels, bands, strict=True):
        assert abs(anchor - (left + right) / 2) < (right - left) / 4, (text, anchor, left, right)
    grid = page.locator("#sentiment .role-axis-grid line").evaluate_all(
        "ls => ls.map(l => [l.getAttribute('stroke'), l.getBoundingClientRect().left])"
    )
    zero = page.locator('#sentiment .role-axis-label text:text-is("0.0")').bounding_box()
    assert zero is not None
    dark = [left for stroke, left in grid if stroke == "#1d2733"]
    assert len(dark) == 1 and abs(dark[0] - (zero["x"] + zero["width"] / 2)) < 3, grid
    assert page.locator("#sentiment .role-legend").count() == 0
    names = page.locator("#sentiment .role-mark text").evaluate_all(
        "ts => ts.map(t => t.textContent)"
    )
    bars = page.locator("#sentiment .role-mark path").count()
    assert len(names) == bars > 0 and set(names) == {"overall", "agent", "customer"}


def assert_figures_are_the_views(opened: Opened, home: Path) -> None:
    page = opened.page
    ((calls, connected, interested, escalated),) = views(
        home,
        "select sum(calls), sum(connected), sum(interested), sum(escalated) "
        "from neuron.campaign_funnel",
    )
    shown = {key: page.locator(f'[data-figure="{key}"] .value').inner_text() for key in (
        "calls", "connect_rate", "interest_rate", "escalated", "callbacks_waiting", "dnd_contacts"
    )}  # fmt: skip
    assert count(shown["calls"]) == calls > 0
    assert shown["connect_rate"] == f"{connected / calls * 100:.1f} %"
    assert shown["interest_rate"] == f"{interested / connected * 100:.1f} %"
    assert count(shown["escalated"]) == escalated
    ((waiting,),) = views(home, "select count(*) from neuron.callback_queue")
    ((dnd,),) = views(home, "select count(*) from neuron.dnd_contacts")
    assert (count(shown["callbacks_waiting"]), count(shown["dnd_contacts"])) == (waiting, dnd)
    assert waiting > 0  # the sandbox leaves some callbacks waiting
    funnel = views(
        home,
        "select coalesce(campaign_id, '(direct calls)'), calls, connected, interested, escalated "
        "from neuron.campaign_funnel order by calls desc, campaign_id",
    )
    cells = page.locator("#funnel-table tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].slice(0, 5).map(c => c.innerText))"
    )
    assert sorted((c[0], *map(count, c[1:])) for c in cells) == sorted(funnel)
    queue = views(home, "select call_id from neuron.callback_queue order by started_at, call_id")
    listed = page.locator("#callback-table tbody tr td:last-child").all_inner_texts()
    assert listed == [row[0] for row in queue][:200]


def assert_charts_are_the_views(charts: dict[str, Any], home: Path) -> None:
    daily = {
        (str(day), disposition): int(n)
        for day, disposition, n in views(
            home,
            "select day, disposition, sum(calls) from neuron.disposition_daily group by all",
        )
    }
    drawn = {
        (v["day"], v["disposition"]): v["calls"]
        for v in charts["daily-dispositions"]["data"]["values"]
    }
    assert drawn == daily
    languages = dict(
        views(home, "select language, sum(calls) from neuron.disposition_daily group by all")
    )
    by_language: dict[str, int] = {}
    for v in charts["languages"]["data"]["values"]:
        by_language[v["language"]] = by_language.get(v["language"], 0) + v["calls"]
    assert by_language == languages
    shares = views(home, "select count(*) from neuron.talk_time where customer_share is not null")
    assert sum(v["calls"] for v in charts["customer-share"]["data"]["values"]) == shares[0][0]
    sentiment = dict(
        views(home, "select disposition, avg_overall from neuron.sentiment_by_disposition")
    )
    drawn_sentiment = {
        v["disposition"]: v["sentiment"]
        for v in charts["sentiment"]["data"]["values"]
        if v["of"] == "overall"
    }
    assert drawn_sentiment == pytest.approx(sentiment, abs=1e-4)
    # one colour per disposition in every chart that shows dispositions
    scales = [
        charts[c]["encoding"]["color"]["scale"]
        for c in ("daily-dispositions", "languages", "sentiment")
    ]
    assert scales[0] == scales[1] == scales[2]


def assert_reach_is_the_views(charts: dict[str, Any], home: Path) -> None:
    """The heatmap, reach by attempt and callback follow-up charts draw the views' figures."""
    weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    cells = {
        (weekdays[weekday - 1], hour): (calls, connected)
        for weekday, hour, calls, connected in views(
            home, "select weekday, hour, calls, connected from neuron.calls_by_hour"
        )
    }
    drawn = {
        (v["weekday"], v["hour"]): (v["calls"], v["connected"])
        for v in charts["best-time"]["data"]["values"]
    }
    assert drawn == cells and len(cells) > 100
    overall = {
        attempt: (int(calls), int(connected))
        for attempt, calls, connected in views(
            home,
            "select attempt, sum(calls), sum(connected) from neuron.attempt_funnel group by 1",
        )
    }
    reach = charts["reach-by-attempt"]["data"]["values"]
    overall = {attempt: n for attempt, n in overall.items() if n[0] >= 10}  # fewer: not drawn
    assert {
        v["attempt"]: (v["calls"], v["connected"])
        for v in reach
        if v["campaign"] == "all campaigns"
    } == overall
    assert len(overall) >= 3  # the sandbox dials contacts several times
    rates = [overall[a][1] / overall[a][0] for a in sorted(overall)][:3]
    assert rates == sorted(rates, reverse=True)  # later attempts connect less often
    ((asked, followed, median),) = views(
        home,
        "select count(*), count(next_call_id), median(hours_to_next_call) "
        "from neuron.callback_followups",
    )
    followups = charts["callback-followups"]
    counts = {v["waited"]: v["callbacks"] for v in followups["data"]["values"]}
    assert sum(counts.values()) == asked > 0 and counts["not yet"] == asked - followed
    assert followups["title"]["subtitle"][0] == (
        f"{followed / asked:.0%} followed up, median {median:.1f} h to the next call"
    )


def test_a_week_of_one_campaign_compares_with_the_week_before(synced: Path) -> None:
    ((campaign,),) = views(
        synced, "select campaign_id from neuron.campaign_funnel order by calls desc limit 1"
    )
    out = synced / "week.html"
    done = report(
        synced, "--duckdb", str(synced / "calls.duckdb"), "--out", str(out), *WEEK,
        "--campaign", campaign,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text()

    def calls(first: str, last: str) -> int:
        ((n,),) = views(
            synced,
            "select coalesce(sum(calls), 0) from neuron.disposition_daily "
            f"where day between '{first}' and '{last}' and campaign_id = '{campaign}'",
        )
        return int(n)

    assert count(figure(html, "calls")) == calls("2026-10-20", "2026-10-26") > 0
    delta = re.search(r'data-figure="calls">.*?class="delta">before: ([\d,]+)', html)
    assert delta and count(delta.group(1)) == calls("2026-10-13", "2026-10-19")
    assert f"campaign {campaign}" in html and "2026-10-20 to 2026-10-26" in html


def test_an_empty_window_renders_an_honest_page(synced: Path, browser: Any) -> None:
    out = synced / "empty.html"
    done = report(
        synced, "--duckdb", str(synced / "calls.duckdb"), "--out", str(out),
        "--from", "2020-01-01", "--to", "2020-01-31",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    opened = open_report(browser, out)
    assert opened.errors == [] and opened.requests == [out.resolve().as_uri()]
    text = opened.page.locator("#empty").inner_text()
    assert "No calls in this window" in text and "calls end on 2026-11-01" in text


def test_bad_input_is_one_line_and_exit_2(
    synced: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ("--duckdb", str(synced / "calls.duckdb"))
    env = cli_env(synced)
    # what reaches the warehouse, as processes (all at once)
    cases = {
        ("--campaign", "cmp_nope", *db): ["unknown campaign", "cmp_nope"],
        ("--duckdb", str(synced / "missing.duckdb")): ["does not exist", "sync"],
        ("--out", str(synced / "cache.json" / "r.html"), *db): ["cannot write the report"],
    }
    procs = {args: started(synced, *args, env=env) for args in cases}
    # a missing folder is created, as --duckdb and RECORDINGS_URL create theirs
    made = started(synced, "--out", str(synced / "new" / "folder" / "r.html"), *db, env=env)
    for args, proc in procs.items():
        assert_one_line(finished(proc), runner.EXIT_CONFIG, *cases[args])
    assert finished(made).returncode == 0
    assert "Campaign funnel" in (synced / "new" / "folder" / "r.html").read_text()
    # dates are refused before anything is opened (the rules: test_report_unit)
    monkeypatch.chdir(synced)
    for args, words in (
        (("--from", "last week"), ["--from 'last week'", "ISO 8601"]),
        (("--from", "2026-10-05", "--to", "2026-10-01"), ["after --to"]),
    ):
        assert main(["report", *args, *db]) == runner.EXIT_CONFIG
        line = capsys.readouterr().err.strip()
        assert "\n" not in line and all(word in line for word in words), line


def test_a_sync_warns_when_it_cannot_write_the_report(synced: Path, sandbox: Sandbox) -> None:
    assert "Campaign funnel" in (synced / "synced.html").read_text()
    env = sandbox_env(
        synced, sandbox, SOURCES__NEURON__REPORT_FILE=str(synced / "cache.json" / "r.html")
    )
    done = run_cli(synced, sync_args(synced / "calls.duckdb"), env | cache_env(synced), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "the report was not written" in done.stderr and "cannot write the report" in done.stderr
    assert "report " not in done.stdout


def test_postgres_gives_the_same_report(
    postgres: Any, sandbox: Sandbox, synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.new_database("report")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
    loaded = sync(sandbox, tmp_path, destination="postgres", pipelines_dir=str(tmp_path / "dlt"))
    assert loaded.exit_code == runner.EXIT_OK, loaded.error
    (tmp_path / "cache.json").write_text((synced / "cache.json").read_text())
    env = cli_env(tmp_path, DESTINATION__POSTGRES__CREDENTIALS=url)
    targets = {
        "pg": ("--destination", "postgres"),
        "duck": ("--duckdb", str(synced / "calls.duckdb")),
    }
    procs = {
        name: started(
            tmp_path, *target, "--out", str(tmp_path / f"{name}.html"), *EVERYTHING, env=env
        )
        for name, target in targets.items()
    }
    pages = {}
    for name, proc in procs.items():
        done = finished(proc)
        assert done.returncode == 0, done.stderr
        pages[name] = (tmp_path / f"{name}.html").read_text()

    def shown(html: str) -> Any:
        body = re.sub(
            r"generated [\d-]+ [\d:]+", "", html.split('<script type="application/json"')[0]
        )
        return body.split("</style>")[1], specs(html)

    (pg_page, pg_charts), (duck_page, duck_charts) = shown(pages["pg"]), shown(pages["duck"])
    assert pg_page == duck_page
    for chart_id, spec in duck_charts.items():  # averages may differ in the last float digits
        assert same_values(pg_charts[chart_id].pop("data"), spec.pop("data")), chart_id
    assert pg_charts == duck_charts


def same_values(got: dict[str, Any], want: dict[str, Any]) -> bool:
    pairs = list(zip(got["values"], want["values"], strict=True))
    return all(
        a.keys() == b.keys()
        and all(
            a[k] == pytest.approx(b[k], abs=1e-3) if isinstance(b[k], float) else a[k] == b[k]
            for k in b
        )
        for a, b in pairs
    )


def test_the_report_is_in_the_business_zone(
    sandbox: Sandbox, tmp_path: Path, synced: Path, browser: Any
) -> None:
    """A sync and its report in Asia/Kolkata: the page names the zone, its days and hours are
    Kolkata's; a report in another zone than the views' is refused with one line."""
    (tmp_path / "cache.json").write_text((synced / "cache.json").read_text())
    page = tmp_path / "kolkata.html"
    env = sandbox_env(
        tmp_path, sandbox,
        SOURCES__NEURON__TIMEZONE="Asia/Kolkata", SOURCES__NEURON__REPORT_FILE=str(page),
    )  # fmt: skip
    done = run_cli(tmp_path, sync_args(tmp_path / "calls.duckdb"), env | cache_env(tmp_path))
    assert done.returncode == 0, done.stderr
    opened = open_report(browser, page)
    assert opened.errors == []
    assert "days and hours in Asia/Kolkata" in opened.page.locator("header").inner_text()
    assert specs(page.read_text())["daily-dispositions"]["encoding"]["x"]["title"] == (
        "day (Asia/Kolkata)"
    )
    everything = tmp_path / "everything.html"
    kolkata = cli_env(tmp_path, SOURCES__NEURON__TIMEZONE="Asia/Kolkata") | cache_env(tmp_path)
    args = ("--duckdb", str(tmp_path / "calls.duckdb"), "--out", str(everything), *EVERYTHING)
    done = run_cli(tmp_path, report_argv(*args), kolkata)
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(tmp_path / "calls.duckdb"), read_only=True) as conn:
        want = dict(
            conn.execute(
                "select extract(hour from started_at at time zone 'Asia/Kolkata'), count(*) "
                "from neuron.calls where status in ('completed', 'failed') group by 1"
            ).fetchall()
        )
    hours: dict[int, int] = {}
    for v in specs(everything.read_text())["best-time"]["data"]["values"]:
        hours[v["hour"]] = hours.get(v["hour"], 0) + v["calls"]
    assert hours == want
    # the sandbox's calls are mostly in Indian business hours
    assert sum(n for h, n in hours.items() if 9 <= h < 20) > 0.8 * sum(hours.values())
    utc = run_cli(
        tmp_path,
        report_argv("--duckdb", str(tmp_path / "calls.duckdb"), "--out", str(tmp_path / "u.html")),
        cli_env(tmp_path) | cache_env(tmp_path),
    )
    assert_one_line(utc, runner.EXIT_CONFIG, "not made for TIMEZONE UTC", "neuron-calls sync")
    bad = run_cli(
        tmp_path,
        report_argv("--duckdb", str(tmp_path / "calls.duckdb")),
        cli_env(tmp_path, SOURCES__NEURON__TIMEZONE="India/Mumbai") | cache_env(tmp_path),
    )
    assert_one_line(bad, runner.EXIT_CONFIG, "SOURCES__NEURON__TIMEZONE 'India/Mumbai'")
