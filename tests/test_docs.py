"""The README is a front door: short, the two commands first, every docs page linked from it,
and no link in the README or the docs that leads nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def local_links(page: Path) -> set[Path]:
    """The files a page links to (web links and pure anchors left out)."""
    return {
        (page.parent / target).resolve()
        for target in _LINK.findall(page.read_text())
        if "://" not in target
    }


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    assert lines[0] == "# neuron-calls"
    assert [line.split()[0:2] for line in lines[3:5]] == [["make", "demo"], ["make", "test"]]


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = local_links(README)
    assert sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in linked) == []


def test_every_local_link_leads_to_a_file() -> None:
    broken = [
        f"{page.relative_to(ROOT)} -> {target.relative_to(ROOT)}"
        for page in [README, *sorted(DOCS.glob("*.md"))]
        for target in local_links(page)
        if not target.exists()
    ]
    assert broken == []
