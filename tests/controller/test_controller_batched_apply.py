"""The applier writes many keys per transaction, yet one key's failure stays that key's.

A real database fault is planted with a trigger (SQLite and PostgreSQL): inserting a
revision of the bundle ``bad`` fails. The other keys of the shared transaction must land
once each (no audit event twice), the bad key must fail alone with its own condition and
``bundle.apply_failed`` event, and what depends on it downstream must see it did not land.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from gitops_fixtures import Keys, Repo, make_controller, spec

from kneo.clock import ManualClock
from kneo.controller import apply
from kneo.store import AuditQuery

GOOD = ["alpha", "beta", "gamma", "delta"]


@pytest.fixture
def planted_fault(store: Any) -> Iterator[None]:
    """Inserting a revision of ``bad`` fails in the database, until the test ends."""
    if store.engine.dialect.name == "postgresql":
        create = [
            "CREATE OR REPLACE FUNCTION planted_fault() RETURNS trigger AS "
            "$$ BEGIN RAISE EXCEPTION 'planted failure'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER planted_fault BEFORE INSERT ON bundle_revisions FOR EACH ROW "
            "WHEN (NEW.bundle_name = 'bad') EXECUTE FUNCTION planted_fault()",
        ]
        drop = [
            "DROP TRIGGER IF EXISTS planted_fault ON bundle_revisions",
            "DROP FUNCTION IF EXISTS planted_fault()",
        ]
    else:
        create = [
            "CREATE TRIGGER planted_fault BEFORE INSERT ON bundle_revisions "
            "WHEN NEW.bundle_name = 'bad' BEGIN SELECT RAISE(ABORT, 'planted failure'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS planted_fault"]
    with store.engine.begin() as conn:
        for sql in create:
            conn.execute(sa.text(sql))
    try:
        yield
    finally:
        lift_fault(store, drop)


def lift_fault(store: Any, drop: list[str] | None = None) -> None:
    if drop is None:
        drop = (
            ["DROP TRIGGER IF EXISTS planted_fault ON bundle_revisions"]
            if store.engine.dialect.name == "postgresql"
            else ["DROP TRIGGER IF EXISTS planted_fault"]
        )
    with store.engine.begin() as conn:
        for sql in drop:
            conn.execute(sa.text(sql))


def events(store: Any) -> Counter[tuple[str, str, str]]:
    """(event type, bundle, environment) of every controller audit event, counted."""
    return Counter(
        (e.event_type, e.payload.get("bundle", ""), e.payload.get("environment", ""))
        for e in store.audit.list_audit(AuditQuery(limit=1000)).items
    )


@pytest.mark.parametrize("batch_keys", [100, 2])
def test_one_failing_bundle_fails_alone_in_a_shared_transaction(
    store: Any,
    planted_fault: None,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch_keys: int,
) -> None:
    monkeypatch.setattr(apply, "BATCH_KEYS", batch_keys)
    for name in [*GOOD[:2], "bad", *GOOD[2:]]:
        repo.write(f"bundles/{name}/dev.json", keys.bundle(name, "dev", spec(name)))
    repo.commit("five bundles, one the database refuses")
    ctl = make_controller(store, repo, keys, clock, tmp_path)

    result = ctl.reconcile_once()

    assert result.ok, result.error
    failed = {o.action.name: o.error for o in result.outcomes if o.error}
    assert list(failed) == ["bad"] and "planted failure" in (failed["bad"] or "")
    assert sorted(o.action.name for o in result.written) == sorted(GOOD)
    for name in GOOD:
        active = store.registry.get_active(name, "dev")
        assert active is not None and active.spec == spec(name)
        assert (
            len(store.registry.list_revisions(name, "dev")) == 1
        )  # written once, not once per try
    assert (
        store.registry.get_active("bad", "dev") is None
        and store.registry.list_revisions("bad", "dev") == []
    )
    ready = {c.type: c for c in store.registry.list_conditions("bad", "dev")}["Ready"]
    assert (ready.status, ready.reason) == ("False", "ApplyFailed")
    assert "planted failure" in ready.message
    counted = events(store)
    assert {k: n for k, n in counted.items() if k[0].startswith("bundle.")} == {
        **{("bundle.promoted", name, "dev"): 1 for name in GOOD},
        ("bundle.apply_failed", "bad", "dev"): 1,
    }

    lift_fault(store)  # the failed key is planned again, and lands
    clock.advance(5)
    again = ctl.reconcile_once()
    assert again.ok, again.error
    assert [o.action.name for o in again.written] == ["bad"]
    assert store.registry.get_active("bad", "dev") is not None


def test_a_failed_upstream_in_the_same_transaction_holds_its_downstream_back(
    store: Any,
    planted_fault: None,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    """dev and staging of one digest in one pass: staging is promoted only if dev's
    activation landed, as the transaction sees it (earlier keys of it included)."""
    for name in ("bad", "alpha"):
        body = spec(name)
        repo.write(f"bundles/{name}/dev.json", keys.bundle(name, "dev", body))
        repo.write(f"bundles/{name}/staging.json", keys.bundle(name, "staging", body))
    repo.commit("two bundles for dev and staging")
    ctl = make_controller(store, repo, keys, clock, tmp_path)

    result = ctl.reconcile_once()

    assert result.ok, result.error
    errors = {(o.action.name, o.action.environment): o.error for o in result.outcomes if o.error}
    assert set(errors) == {("bad", "dev"), ("bad", "staging")}
    assert "planted failure" in (errors["bad", "dev"] or "")
    assert "upstream_changed" in (errors["bad", "staging"] or "")
    assert (
        store.registry.get_active("alpha", "staging") is not None
    )  # promoted within the transaction
    assert store.registry.get_active("bad", "staging") is None
