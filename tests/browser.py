"""A real browser for the report's tests: Debian's chromium, driven by Playwright (whose own
browser download is not needed). Run as a script, it screenshots a report:
`python -m tests.browser neuron_demo_report.html docs/report.png`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
RENDERED = "[...document.querySelectorAll('.vis')].every((e) => e.dataset.rendered)"


@dataclass
class Opened:
    """A report open in a page, with what the page did while it loaded."""

    page: Any
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium; missing: a skip, or a failure under CI=true."""
    if not CHROMIUM.exists():
        from .servers import unavailable

        unavailable(f"no browser at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


def chart_cache(tmp_path_factory: Any) -> dict[str, str]:
    """XDG_CACHE_HOME shared by every test process of a run (and the next runs): the chart
    library is bundled once, not once per process (the cache is per version, written atomically)."""
    return {"XDG_CACHE_HOME": str(tmp_path_factory.getbasetemp().parent / "neuron-chart-cache")}


def open_report(browser: Any, path: Path, width: int = 1400, height: int = 900) -> Opened:
    """Load `path` with every non-file request refused (and recorded); wait for the charts."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    opened = Opened(page)
    page.on("console", lambda m: m.type == "error" and opened.errors.append(m.text))
    page.on("pageerror", lambda exc: opened.errors.append(str(exc)))
    page.on("request", lambda request: opened.requests.append(request.url))

    def refuse_the_network(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", refuse_the_network)
    page.goto(path.resolve().as_uri())
    page.wait_for_function(RENDERED, timeout=30_000)
    return opened


def screenshot(report: Path, png: Path, width: int = 1400, height: int = 2200) -> None:
    with chromium() as browser:
        opened = open_report(browser, report, width, height)
        opened.page.screenshot(path=str(png))  # the first `height` pixels of the page


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
