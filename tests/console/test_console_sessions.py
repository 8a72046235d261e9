"""``/ui/sessions/{session_id}``: the runs a caller grouped in a session, in the order they
were started, each linking to its run page, paged by cursor with their numbers carried on;
the run page links to its session. (Its journey in Chromium is in test_console_browser.py.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from console_helpers import Console, start
from svc_helpers import headers


def _chain(page: str) -> list[tuple[str, str]]:
    """``(run_id, status)`` of each run the page lists, in order."""
    return re.findall(r'data-run="([^"]+)" data-status="([^"]+)"', page)


def test_the_chain_lists_the_sessions_runs_in_order_and_links_each(
    service: Callable[..., Any],
) -> None:
    app, api = service()
    runs = [start(api, "hitl_approval", f"step {i}", session_id="release-42") for i in range(3)]
    other = start(api, "hitl_approval", "elsewhere", session_id="other")
    cancelled = api.post(f"/v1/runs/{runs[1]['run_id']}/cancel", headers=headers("admin"))
    assert cancelled.status_code == 200, cancelled.text
    person = Console(app)
    person.sign_in("viewer")
    page = person.get("/ui/sessions/release-42")
    assert page.status_code == 200, page.text
    assert _chain(page.text) == [
        (runs[0]["run_id"], "paused"),
        (runs[1]["run_id"], "cancelled"),
        (runs[2]["run_id"], "paused"),
    ]
    for run in runs:
        assert f'href="/ui/runs/{run["run_id"]}"' in page.text
    assert other["run_id"] not in page.text
    assert "3 runs, in the order they were started" in page.text
    run_page = person.get(f"/ui/runs/{runs[1]['run_id']}")
    assert 'id="session-link" href="/ui/sessions/release-42"' in run_page.text
    alone = start(api, "hitl_approval", "no session")
    assert 'id="session-link"' not in person.get(f"/ui/runs/{alone['run_id']}").text


def test_a_long_session_pages_by_cursor_and_numbers_on(
    service: Callable[..., Any], monkeypatch: Any
) -> None:
    import kneo.console.runs as console_runs

    monkeypatch.setattr(console_runs, "_CHAIN_PAGE", 2)
    app, api = service()
    runs = [start(api, "hitl_approval", f"step {i}", session_id="long")["run_id"] for i in range(5)]
    person = Console(app)
    person.sign_in("reviewer")
    seen: list[str] = []
    url: str | None = "/ui/sessions/long"
    starts = []
    while url:
        page = person.get(url)
        assert page.status_code == 200
        seen += [run_id for run_id, _ in _chain(page.text)]
        starts.append(re.search(r'<ol class="chain" start="(\d+)"', page.text).group(1))  # type: ignore[union-attr]
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == runs and starts == ["1", "3", "5"]


def test_an_unknown_session_is_not_found(service: Callable[..., Any]) -> None:
    app, _ = service()
    person = Console(app)
    person.sign_in("viewer")
    page = person.get("/ui/sessions/nobody-here")
    assert page.status_code == 404 and "no run is in session" in page.text
