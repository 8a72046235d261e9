"""Keyset paging of the big list routes over HTTP: ``cursor`` in, ``next_cursor`` out, a
bounded ``offset``, ``total`` counted up to a cap, and bad cursors as clear 400s."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

SMOKE = "examples/smoke_human_workflow.yaml"
ROUTES = {"/v1/runs": "runs", "/v1/human-tasks": "tasks", "/v1/audit-events": "events"}
KEYS = {"runs": "run_id", "tasks": "continuation_id", "events": "id"}


def _paused(client: TestClient, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = client.post("/v1/runs", json={"input": f"in {i}", "spec_path": SMOKE})
        assert r.status_code == 200 and r.json()["status"] == "paused", r.text
        ids.append(r.json()["run_id"])
    return ids


def _walk(client: TestClient, route: str, **params: Any) -> list[str]:
    """Every item of ``route`` by following ``next_cursor`` pages of 2."""
    collection = ROUTES[route]
    seen, cursor = [], None
    while True:
        page = client.get(route, params={**params, "limit": 2, "cursor": cursor}).json()
        seen += [item[KEYS[collection]] for item in page[collection]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_cursor_walk_equals_the_offset_walk(make_client: Any, route: str) -> None:
    """Following next_cursor visits every row once, in the order offset pages give."""
    client = make_client()
    _paused(client, 5)
    collection = ROUTES[route]
    everything = client.get(route, params={"include": "counts"}).json()
    expected = [item[KEYS[collection]] for item in everything[collection]]
    assert len(expected) == everything["total"] >= 5
    assert _walk(client, route) == expected
    by_offset = [
        item[KEYS[collection]]
        for offset in range(0, len(expected), 2)
        for item in client.get(route, params={"limit": 2, "offset": offset}).json()[collection]
    ]
    assert by_offset == expected


def test_runs_cursor_follows_each_sort(make_client: Any) -> None:
    """Each sort_by pages by its own cursor; a cursor of another sort is refused."""
    client = make_client()
    _paused(client, 4)
    for sort_by in ("created_at", "updated_at", "status"):
        for order in ("asc", "desc"):
            params = {"sort_by": sort_by, "sort_order": order}
            whole = [r["run_id"] for r in client.get("/v1/runs", params=params).json()["runs"]]
            assert _walk(client, "/v1/runs", **params) == whole
    cursor = client.get("/v1/runs", params={"limit": 1}).json()["next_cursor"]
    other = client.get("/v1/runs", params={"limit": 1, "sort_by": "status", "cursor": cursor})
    assert other.status_code == 400 and other.json()["field"] == "cursor"
    assert "created_at desc" in other.json()["message"]


def _forged(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


FORGED = [
    # the right shapes for each route, with values no row holds or a driver refuses
    *(_forged(o, 10**30, "x") for o in ("asc", "created_at desc")),
    *(_forged(o, -(10**30), "x") for o in ("asc", "created_at desc")),
    *(_forged(o, 1, "a\u0000b") for o in ("asc", "created_at desc")),
    *(_forged(o, 2**61, "x") for o in ("asc", "created_at desc")),  # fits, but no datetime
    _forged("desc", 2**63),
    _forged("desc", 1.5),
    _forged("asc", 1, "x" * 300),
]


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize(
    "cursor", ["garbage!", "", "W10", "WyJkZXNjIiwieCJd", "eyJhIjoxfQ", "A" * 5000, *FORGED]
)
def test_bad_cursor_is_a_400_naming_the_field(make_client: Any, route: str, cursor: str) -> None:
    """Not base64, not JSON, the wrong shape, too long: 400 invalid_request, never a 500."""
    client = make_client()
    _paused(client, 1)
    r = client.get(route, params={"cursor": cursor})
    if cursor == "":  # an empty form field: no cursor
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request" and r.json()["field"] == "cursor"


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_cursor_and_offset_do_not_combine(make_client: Any, route: str) -> None:
    client = make_client()
    _paused(client, 3)
    cursor = client.get(route, params={"limit": 1}).json()["next_cursor"]
    r = client.get(route, params={"cursor": cursor, "offset": 1})
    assert r.status_code == 400 and r.json()["field"] == "cursor"


@pytest.mark.parametrize("cap", [2, 1000])
def test_total_is_always_a_number_counted_up_to_the_cap(make_client: Any, cap: int) -> None:
    """``total`` is a number on every listing, counted exactly up to
    ``KNEO_SERV_MAX_LIST_COUNT`` rows past the page's end (``offset + limit + cap``) and
    marked ``total_capped`` beyond it: the count stops there (a ``LIMIT`` inside it), so a
    listing costs what its page's depth does however many rows match, and shows more rows
    whenever there are. The per-assignee counts (only with ``include=counts``) stop at the cap the same
    way, each assignee's, and ``counts_capped`` names whose did."""
    client = make_client({"KNEO_SERV_MAX_LIST_COUNT": str(cap)})
    _paused(client, 3)
    engine = client.app.state.manager.store.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lower())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for route, collection in ROUTES.items():
            page = client.get(route, params={"limit": 1}).json()
            everything = len(client.get(route, params={"limit": 100}).json()[collection])
            assert everything >= 3 and page["count"] == 1
            reach = 1 + cap  # limit 1 at offset 0
            assert page["total"] == min(everything, reach), route
            assert page["total_capped"] is (everything > reach), route
            assert page["total"] > page["count"], route  # more rows: the total says so
        tasks = client.get("/v1/human-tasks").json()
        assert tasks["counts_by_assignee"] is None
        counted = client.get("/v1/human-tasks", params={"include": "counts"}).json()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    counts = [s for s in statements if "count(" in s]
    assert counts and all("limit" in s for s in counts), counts
    assert counted["counts_by_assignee"] == {"operator": min(3, cap)}
    assert counted["counts_capped"] == (["operator"] if cap < 3 else [])
    assert tasks["counts_capped"] is None


def test_kind_approval_does_not_list_promotions(make_client: Any) -> None:
    """A promotion asks for an approval but is not one: kind=approval leaves it out,
    kind=promotion lists only it."""
    client = make_client()
    run_id = _paused(client, 1)[0]
    store = client.app.state.manager.store  # type: ignore[attr-defined]
    with store.transaction() as tx:
        tx.put_continuation(
            "cont_promo",
            run_id=None,
            requests=[{"request_id": "req_promo", "kind": "approval", "assignee": "ops"}],
            workflow_kind="promotion",
        )

    def listed(**params: Any) -> list[str | None]:
        tasks = client.get("/v1/human-tasks", params=params).json()["tasks"]
        return [t["run_id"] for t in tasks]

    assert listed(kind="approval") == [run_id]
    assert listed(kind="promotion") == [None]
    assert sorted(listed(), key=str) == sorted([run_id, None], key=str)
