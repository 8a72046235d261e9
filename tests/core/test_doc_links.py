"""Every relative link in README.md and docs/ points at a file that exists, and every
``#anchor`` at a heading of that page (GitHub's heading ids)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


CASES = [
    (page, target)
    for page in PAGES
    for target in links(page)
    if not re.match(r"^[a-z]+:", target)  # http:, https:, mailto:
]


@pytest.mark.parametrize(("page", "target"), CASES, ids=[f"{p.name}->{t}" for p, t in CASES])
def test_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.exists(), f"{page.name}: {target} does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


def test_slug_matches_github() -> None:
    assert slug("2.2 `/readyz` 503 with `run_state_store` not ok, or `database_unavailable`") == (
        "22-readyz-503-with-run_state_store-not-ok-or-database_unavailable"
    )
    assert slug("7 · Ship the tool to the service") == "7--ship-the-tool-to-the-service"


def test_the_design_page_stays_a_map() -> None:
    """``docs/design.md`` says where things are and why, in under 500 lines; how a part works
    in detail belongs on its topic page (persistence, console, gitops, ...), linked from it."""
    lines = (ROOT / "docs" / "design.md").read_text(encoding="utf-8").count("\n")
    assert lines < 500, f"docs/design.md has {lines} lines: move detail to a topic page"
