"""Conformance: checkpoint compression, bounded previews and lookups."""

from __future__ import annotations

import pytest

from kneo.errors import InvalidRequest
from kneo.setting_groups import CheckpointLimits
from kneo.settings import Settings
from kneo.store import Store

from .conftest import StoreFactory
from .helpers import new_run

LIMITS = CheckpointLimits(
    compress_bytes=1_000, max_bytes=4_000, preview_chars=50, max_list_items=3, max_dict_items=4
)


@pytest.fixture
def small_store(make_store: StoreFactory) -> Store:
    return make_store(Settings(checkpoint=LIMITS))


def test_small_payload_stored_plain(small_store: Store) -> None:
    """Below compress_bytes the payload is stored as plain JSON and reads back equal."""
    run_id = new_run(small_store)
    with small_store.transaction() as tx:
        written = tx.add_checkpoint(run_id, type="step", payload={"a": "x" * 10})
    read = small_store.runs.list_checkpoints(run_id, sequences=[1]).items[0]
    assert read == written
    assert (read.compressed, read.truncated, read.payload) == (False, False, {"a": "x" * 10})


def test_compression_round_trip(small_store: Store) -> None:
    """At or above compress_bytes the payload is zlib-compressed transparently."""
    run_id = new_run(small_store)
    payload = {"text": "abc" * 1_000, "items": list(range(100)), "nested": {"k": "ü" * 50}}
    with small_store.transaction() as tx:
        tx.add_checkpoint(run_id, type="step", payload=payload, metadata={"m": 1})
    read = small_store.runs.list_checkpoints(run_id, sequences=[1]).items[0]
    assert read.compressed and not read.truncated
    assert read.payload == payload and read.metadata == {"m": 1}
    assert read.size_bytes > LIMITS.compress_bytes


def test_preview_above_hard_cap(small_store: Store) -> None:
    """A payload still above max_bytes after compression becomes a bounded preview."""
    import secrets

    run_id = new_run(small_store)
    noise = secrets.token_hex(6_000)  # incompressible enough to stay above the cap
    payload = {
        "blob": noise,
        "list": list(range(10)),
        "many": {f"k{i}": i for i in range(10)},
        "small": "ok",
    }
    with small_store.transaction() as tx:
        written = tx.add_checkpoint(
            run_id,
            type="agent_turn",
            step_id="s1",
            status="completed",
            payload=payload,
            metadata={"m": 1},
        )
    read = small_store.runs.list_checkpoints(run_id, sequences=[1]).items[0]
    assert read == written and read.truncated
    assert read.payload["blob"].startswith(noise[:50]) and "truncated" in read.payload["blob"]
    assert len(read.payload["blob"]) < 100
    assert read.payload["list"] == [0, 1, 2, "... 7 more items"]
    assert len(read.payload["many"]) == LIMITS.max_dict_items + 1  # + the _truncated_keys marker
    assert read.payload["many"]["_truncated_keys"] == 6
    assert read.payload["small"] == "ok"
    reduction = read.metadata["payload_reduction"]
    assert reduction["original_bytes"] > LIMITS.max_bytes
    assert reduction["stored_bytes"] <= LIMITS.max_bytes
    assert read.metadata["m"] == 1
    assert (read.step_id, read.type, read.status) == ("s1", "agent_turn", "completed")


def test_default_limits_compress_large_payloads(store: Store) -> None:
    """With default settings a 100 kB payload is compressed, not truncated."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.add_checkpoint(run_id, type="step", payload={"a": "y" * 100_000})
    read = store.runs.list_checkpoints(run_id, sequences=[1]).items[0]
    assert read.compressed and not read.truncated and len(read.payload["a"]) == 100_000


def test_non_json_payload_is_refused(store: Store) -> None:
    """A payload that is not JSON raises invalid_payload and writes nothing."""
    run_id = new_run(store)
    with pytest.raises(InvalidRequest) as err, store.transaction() as tx:
        tx.add_checkpoint(run_id, type="step", payload={"x": object()})
    assert err.value.code == "invalid_payload"
    assert store.runs.list_checkpoints(run_id).total == 0


def test_list_by_type_latest_and_missing(store: Store) -> None:
    """Checkpoints filter by type or by sequence; the newest first is the latest; a sequence
    not stored is left out."""
    run_id = new_run(store)
    with store.transaction() as tx:
        for kind in ("step", "turn", "step"):
            tx.add_checkpoint(run_id, type=kind, payload={"kind": kind})
    steps = store.runs.list_checkpoints(run_id, type="step")
    assert [c.sequence for c in steps.items] == [1, 3] and steps.total == 2
    [latest] = store.runs.list_checkpoints(run_id, limit=1, sort_order="desc").items
    assert latest is not None and latest.sequence == 3
    [turn] = store.runs.list_checkpoints(run_id, type="turn", limit=1, sort_order="desc").items
    assert turn is not None and turn.sequence == 2
    assert store.runs.list_checkpoints(new_run(store), limit=1).items == []
    two = store.runs.list_checkpoints(run_id, sequences=[3, 99, 1], sort_order="desc")
    assert [c.sequence for c in two.items] == [3, 1] and two.total == 2  # 99: not stored
    paged = store.runs.list_checkpoints(run_id, limit=1, offset=1)
    assert [c.sequence for c in paged.items] == [2] and paged.total == 3
