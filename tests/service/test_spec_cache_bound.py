"""The per-process caches of compiled workflows and prepared specs are bounded by
``KNEO_SERV_SPEC_CACHE_ENTRIES``: distinct inline specs sent by a caller cannot grow the
service without limit, and a spec dropped from the cache still runs (compiled again)."""

from __future__ import annotations

from typing import Any

BOUND = 4


def _spec(i: int) -> dict[str, Any]:
    return {
        "version": "v1",
        "agent": {"name": f"agent{i}", "model": {"provider": "dummy", "name": "d"}},
    }


def test_distinct_inline_specs_stay_within_the_bound(make_client: Any) -> None:
    client = make_client({"KNEO_SERV_SPEC_CACHE_ENTRIES": str(BOUND)})
    manager = client.app.state.manager
    for i in range(BOUND + 6):
        r = client.post("/v1/runs", json={"input": f"hi {i}", "spec": _spec(i)})
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        assert len(manager.driver.compiled) == min(i + 1, BOUND)
        assert len(manager.preparation.prepared) == min(i + 1, BOUND)
    # the first spec was dropped long ago: it runs again, compiled anew, and is cached again
    again = client.post("/v1/runs", json={"input": "again", "spec": _spec(0)})
    assert again.status_code == 200 and again.json()["status"] == "succeeded", again.text
    assert len(manager.driver.compiled) == len(manager.preparation.prepared) == BOUND


def test_recently_used_specs_are_kept(make_client: Any) -> None:
    """Least recently used goes first: a spec used between others stays cached."""
    client = make_client({"KNEO_SERV_SPEC_CACHE_ENTRIES": "2"})
    manager = client.app.state.manager
    for i in (0, 1, 0, 2):
        assert client.post("/v1/runs", json={"input": "x", "spec": _spec(i)}).status_code == 200
    cached = {key[0] for key in manager.preparation.prepared._items}
    assert len(cached) == 2
    digests_before = set(cached)
    assert client.post("/v1/runs", json={"input": "x", "spec": _spec(0)}).status_code == 200
    assert {
        key[0] for key in manager.preparation.prepared._items
    } == digests_before  # a hit, no eviction
