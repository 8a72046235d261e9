"""The inbox's 5-second refresh asks with ``If-None-Match``: unchanged, the server answers
``304`` from one primary-key lookup (no listing, no counts) and htmx keeps the page; a new
pause, another viewer or another query is a new ETag and a full page."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from console_helpers import Console, start


def _refresh_tag(page: Any) -> str:
    """The ETag the page's refresh sends (its ``hx-headers``)."""
    found = re.search(r"hx-headers='([^']*)'", page.text)
    assert found, "the inbox refresh carries no If-None-Match"
    return str(json.loads(html.unescape(found.group(1)))["If-None-Match"])


def test_an_unchanged_inbox_answers_304_and_a_change_a_new_page(service: Any) -> None:
    app, api = service()
    first = start(api, "hitl_approval", "first task")
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    page = reviewer.get("/ui/inbox")
    tag = page.headers["etag"]
    assert page.status_code == 200 and _refresh_tag(page) == tag
    assert f"/ui/tasks/{first['continuation_id']}" in page.text

    again = reviewer.get("/ui/inbox", headers={"If-None-Match": tag, "HX-Request": "true"})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    stale = reviewer.get("/ui/inbox", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.headers["etag"] == tag

    assert reviewer.get("/ui/inbox?kind=input").headers["etag"] != tag  # another query
    other = Console(app)
    other.sign_in("admin")
    assert other.get("/ui/inbox").headers["etag"] != tag  # another viewer

    second = start(api, "hitl_approval", "second task")  # the inbox changed
    changed = reviewer.get("/ui/inbox", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert f"/ui/tasks/{second['continuation_id']}" in changed.text


def test_htmx_keeps_the_page_on_304() -> None:
    """htmx swaps any 2xx/3xx by default: the console's config makes 304 swap nothing."""
    from pathlib import Path

    base = Path(__file__).resolve().parents[2] / "kneo" / "console" / "templates" / "base.html"
    config = re.search(r"name=\"htmx-config\" content='([^']*)'", base.read_text())
    assert config
    handling = json.loads(config.group(1))["responseHandling"]
    first_match = next(h for h in handling if re.fullmatch(h["code"], "304"))
    assert first_match["swap"] is False


def test_counts_per_assignee_stop_at_the_cap(service: Any, monkeypatch: Any) -> None:
    """Each assignee's count stops at the console's cap and says so ("N+"), as does the
    number pending; below the cap it is exact."""
    import kneo.console.inbox as inbox

    app, api = service()
    for text in ("one", "two", "three"):
        start(api, "hitl_approval", text)  # assigned to "reviewer"
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    exact = reviewer.get("/ui/inbox").text
    assert "<h2>3 pending</h2>" in exact and '<span class="count">3</span>' in exact
    monkeypatch.setattr(inbox, "INBOX_COUNT_CAP", 2)
    capped = reviewer.get("/ui/inbox?sort=newest").text
    assert "<h2>2+ pending</h2>" in capped and '<span class="count">2+</span>' in capped
