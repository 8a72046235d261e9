"""Conformance: checkpoints stored as keyframes and patches read back as whole payloads."""

from __future__ import annotations

import json
import secrets
from typing import Any

import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.engine.journal import Boundary
from kneo.platform.journal import KEYFRAME_EVERY, StoreJournal
from kneo.redaction import redact
from kneo.setting_groups import CheckpointLimits, RetentionDays
from kneo.settings import Settings
from kneo.store import Store
from kneo.store import tables as t
from kneo.store.runs import chains, payloads

from .conftest import StoreFactory
from .helpers import new_run


def _journal(store: Store) -> StoreJournal:
    run_id = new_run(store)
    with store.transaction() as tx:
        run = tx.update_run(run_id, status="running")
    return StoreJournal(store, run_id, run.version)


def _commit(journal: StoreJournal, state: dict[str, Any], kind: str = "step_completed") -> None:
    """Commit ``state`` as the engine does: a fresh snapshot with its JSON text."""
    text = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
    journal.commit(Boundary(kind=kind, state=json.loads(text), state_text=text, step_id="s"))


def _encodings(store: Store, run_id: str) -> list[str]:
    c = t.checkpoints.c
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(c.encoding).where(c.run_id == run_id).order_by(c.sequence)
            ).scalars()
        )


def _states(n: int) -> list[dict[str, Any]]:
    """An engine-like run: units and order grow, the position moves, keys come and go."""
    out = []
    for i in range(n):
        units = {f"u{k}": {"status": "completed", "output": f"out {k}", "n": k} for k in range(i)}
        state: dict[str, Any] = {"format": 1, "input_text": "in " * 60, "units": units}
        state["order"] = list(units)
        state["position"] = {"unit": f"u{i}", "attempt": 1} if i % 3 else None
        if i % 4 == 1:
            state["pending"] = [{"request_id": f"req_{i}"}]
        out.append(state)
    return out


def test_many_steps_fold_to_every_state(store: Store) -> None:
    """40 steps: keyframes at 1, 17 and 33, patches between; every checkpoint, read alone or
    in a page, is the state of its step."""
    journal = _journal(store)
    states = _states(40)
    for state in states:
        _commit(journal, state)
    encodings = _encodings(store, journal.run_id)
    keyframes = [i + 1 for i, e in enumerate(encodings) if e in payloads.KEYFRAME_ENCODINGS]
    assert keyframes == [1, 1 + KEYFRAME_EVERY, 1 + 2 * KEYFRAME_EVERY]
    for sequence, state in enumerate(states, start=1):
        assert (
            store.runs.list_checkpoints(journal.run_id, sequences=[sequence]).items[0].payload
            == state
        )
    page = store.runs.list_checkpoints(journal.run_id, limit=100)
    assert [c.payload for c in page.items] == states and page.total == 40
    [latest] = store.runs.list_checkpoints(journal.run_id, limit=1, sort_order="desc").items
    assert latest is not None and latest.payload == states[-1]


def test_paging_across_keyframes(store: Store) -> None:
    """Pages that start on a patch and cross a keyframe, in both orders."""
    journal = _journal(store)
    states = _states(25)
    for state in states:
        _commit(journal, state)
    page = store.runs.list_checkpoints(journal.run_id, limit=5, offset=14)
    assert [(c.sequence, c.payload) for c in page.items] == [
        (s, states[s - 1]) for s in range(15, 20)
    ]
    desc = store.runs.list_checkpoints(journal.run_id, limit=4, offset=6, sort_order="desc")
    assert [(c.sequence, c.payload) for c in desc.items] == [
        (s, states[s - 1]) for s in (19, 18, 17, 16)
    ]


def test_type_filter_reads_through_other_types(store: Store) -> None:
    """A page of one type folds the rows of other types in between."""
    journal = _journal(store)
    states = _states(21)
    for i, state in enumerate(states):
        _commit(journal, state, kind="turn" if i % 3 else "step")
    steps = store.runs.list_checkpoints(journal.run_id, type="step", limit=3, offset=2)
    assert [(c.sequence, c.payload) for c in steps.items] == [
        (s, states[s - 1]) for s in (7, 10, 13)
    ]
    assert steps.total == 7
    [turn] = store.runs.list_checkpoints(
        journal.run_id, type="turn", limit=1, sort_order="desc"
    ).items
    assert turn is not None and (turn.sequence, turn.payload) == (21, states[20])


def test_null_values_removed_keys_and_json_types_round_trip(store: Store) -> None:
    """Each checkpoint reads back as its exact JSON: null kept, removed keys gone, 1 vs 1.0
    vs true told apart."""
    journal = _journal(store)
    states: list[dict[str, Any]] = [
        {"a": 1, "b": {"c": "x", "d": None}, "l": [1]},
        {"a": None, "b": {"d": None, "e": 1}, "l": [1, None]},
        {"a": None, "b": {"d": None, "e": True}, "l": [1, None]},
        {"a": None, "b": {"d": None, "e": 1.0}, "l": [1, None], "f": {}},
        {"b": {"e": 1.0}, "l": [], "f": {"g": None}},
    ]
    for state in states:
        state["pad"] = "p" * 200  # big enough that patches are smaller than the state
        _commit(journal, state)
    assert payloads.is_patch(_encodings(store, journal.run_id)[1])
    for sequence, state in enumerate(states, start=1):
        read = store.runs.list_checkpoints(journal.run_id, sequences=[sequence]).items[0].payload
        assert json.dumps(read) == json.dumps(state)


def test_secrets_in_patches_are_redacted(store: Store) -> None:
    """Patched values are redacted with the key-aware rule: what is read is redact(state),
    and no secret is stored in any row, patch or keyframe."""
    journal = _journal(store)
    base: dict[str, Any] = {"units": {}, "log": []}
    second = {
        "units": {"u1": {"output": "mail me@example.org", "api_key": "sk-live-0123456789abcd"}},
        "log": [{"password": {"nested": "hunter2hunter2"}}],
    }
    third = {
        "units": {"u1": {"output": "ok", "api_key": "sk-live-9999999999abcd"}},
        "log": second["log"] + ["Authorization: Bearer abcdefghijklmnop"],
        "token": "sk-abcdefghijklmnopqr",  # a secret under a secret-looking key
    }
    for state in (base, second, third):
        _commit(journal, state)
    assert [payloads.is_patch(e) for e in _encodings(store, journal.run_id)] == [
        False,
        True,
        True,
    ]
    for sequence, state in enumerate((base, second, third), start=1):
        assert store.runs.list_checkpoints(journal.run_id, sequences=[sequence]).items[
            0
        ].payload == redact(state)
    c = t.checkpoints.c
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(c.payload).where(c.run_id == journal.run_id)).scalars()
        stored = b"".join(bytes(p) for p in found)
    for secret in (b"sk-live", b"hunter2", b"me@example.org", b"abcdefghijklmnop", b"sk-abc"):
        assert secret not in stored


LIMITS = CheckpointLimits(
    compress_bytes=1_000, max_bytes=4_000, preview_chars=50, max_list_items=3, max_dict_items=4
)


def test_compressed_patches_and_previews(make_store: StoreFactory) -> None:
    """A big compressible patch is stored compressed; a state over the cap is a preview
    keyframe and the chain restarts with a whole keyframe after it."""
    store = make_store(Settings(checkpoint=LIMITS))
    journal = _journal(store)
    noise = secrets.token_hex(5_000)
    states: list[dict[str, Any]] = [
        {"n": 0},
        {"n": 1, "text": "abc" * 600},  # patch >= compress_bytes: zlib+delta
        {"n": 2, "text": "abc" * 600, "blob": noise},  # over max_bytes: preview
        {"n": 3, "text": "abc" * 600},  # keyframe again (the preview is no base)
        {"n": 4, "text": "abc" * 600},  # patch
    ]
    states = [{"base": "q" * 900, **state} for state in states]  # what a patch leaves out
    for state in states:
        _commit(journal, state)
    assert _encodings(store, journal.run_id) == [
        payloads.ENCODING_JSON,
        payloads.ENCODING_ZLIB_DELTA,
        payloads.ENCODING_JSON,  # the preview, small enough to stay plain
        payloads.ENCODING_ZLIB,
        payloads.ENCODING_DELTA,
    ]
    read = store.runs.list_checkpoints(journal.run_id).items
    assert read[1].compressed and read[1].payload == states[1]
    assert read[2].truncated and read[2].metadata["payload_reduction"]["max_bytes"] == 4_000
    assert read[2].payload["blob"].startswith(noise[:50]) and len(read[2].payload["blob"]) < 100
    assert [r.payload for r in (read[3], read[4])] == states[3:]
    assert not any(r.truncated for r in (read[0], read[1], read[3], read[4]))


def _finish(journal: StoreJournal, outcome: Boundary, held: dict[str, Any] | None = None) -> None:
    """The outcome transaction as the platform writes it: ``held`` committed first as a
    closing boundary, then ``outcome``, appended by ``finish_run``."""
    if held is not None:
        text = json.dumps(held, separators=(",", ":"), ensure_ascii=False)
        journal.commit(Boundary(kind="step_completed", state=held, state_text=text, closing=True))
    checkpoints, events = journal.final_rows(outcome)
    run = journal.store.runs.get_run(journal.run_id)
    with journal.store.transaction() as tx:
        tx.finish_run(
            run,
            expected_version=journal.version,
            status="succeeded",
            checkpoints=checkpoints,
            events=events,
        )


def test_outcome_checkpoint_is_the_same_patch(store: Store) -> None:
    """The outcome transaction stores the same patch row write_step would."""
    journal = _journal(store)
    first = {"units": {"a": {"output": "x"}}, "order": ["a"]}
    final = {"units": {"a": {"output": "x"}}, "order": ["a"], "pending": [{"request_id": "r"}]}
    _commit(journal, first)
    other = _journal(store)
    _commit(other, first)
    _commit(other, final, kind="paused")
    _finish(journal, Boundary(kind="paused", state=final, step_id="s"))
    c = t.checkpoints.c
    columns = [c.sequence, c.type, c.encoding, c.payload, c.size_bytes, c.truncated, c.metadata]
    with store.engine.connect() as conn:
        mine, theirs = (
            conn.execute(sa.select(*columns).where(c.run_id == run_id, c.sequence == 2)).one()
            for run_id in (journal.run_id, other.run_id)
        )
    assert mine == theirs and mine.encoding == payloads.ENCODING_DELTA
    assert store.runs.list_checkpoints(journal.run_id, sequences=[2]).items[0].payload == final


def test_a_checkpoint_written_in_between_makes_a_keyframe(store: Store) -> None:
    """A patch must follow its base directly: when another writer added a checkpoint since,
    the journal's row is stored as a keyframe instead."""
    journal = _journal(store)
    _commit(journal, {"n": 1, "keep": "x" * 50})
    with store.transaction() as tx:
        tx.add_checkpoint(journal.run_id, type="cancel_requested", payload={"other": True})
    _commit(journal, {"n": 2, "keep": "x" * 50})
    _commit(journal, {"n": 3, "keep": "x" * 50})
    assert [payloads.is_patch(e) for e in _encodings(store, journal.run_id)] == [
        False,
        False,
        False,
        True,
    ]
    read = [c.payload for c in store.runs.list_checkpoints(journal.run_id).items]
    assert read == [
        {"n": 1, "keep": "x" * 50},
        {"other": True},
        {"n": 2, "keep": "x" * 50},
        {"n": 3, "keep": "x" * 50},
    ]


def test_retention_keeps_the_chains_of_kept_checkpoints(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    """Pruning old checkpoints never removes a keyframe or patch a newer checkpoint needs."""
    store = make_store()
    journal = _journal(store)
    states = _states(KEYFRAME_EVERY + 6)
    for state in states[: KEYFRAME_EVERY + 4]:  # keyframes 1 and 17; 17..20 old
        _commit(journal, state)
    clock.advance(days=10)
    for state in states[KEYFRAME_EVERY + 4 :]:  # 21, 22: patches on 17..20
        _commit(journal, state)
    with store.transaction() as tx:
        tx.update_run(journal.run_id, status="succeeded")
    counts = store.maintenance.prune_retention(RetentionDays(checkpoints_days=5))
    assert counts["checkpoints"] == KEYFRAME_EVERY  # 1..16; 17..20 are needed by 21 and 22
    kept = store.runs.list_checkpoints(journal.run_id).items
    assert [c.sequence for c in kept] == list(range(KEYFRAME_EVERY + 1, KEYFRAME_EVERY + 7))
    assert [c.payload for c in kept] == states[KEYFRAME_EVERY:]


def test_a_patch_without_its_base_reads_as_unavailable(store: Store) -> None:
    """If a chain's keyframe is gone (deleted by hand), its patches read as a marked preview
    instead of a wrong payload or an error."""
    journal = _journal(store)
    states = _states(4)
    for state in states:
        _commit(journal, state)
    c = t.checkpoints.c
    with store.engine.begin() as conn:
        conn.execute(sa.delete(t.checkpoints).where(c.run_id == journal.run_id, c.sequence == 1))
    read = store.runs.list_checkpoints(journal.run_id, sequences=[3]).items[0]
    assert read.truncated and read.payload == chains.UNAVAILABLE
    assert [c.truncated for c in store.runs.list_checkpoints(journal.run_id).items] == [True] * 3


def test_outcome_rows_chain_as_patches_from_the_known_counter(store: Store) -> None:
    """A run whose journal knows its checkpoint counter (from the run row) stores a held
    boundary and the outcome as patches, even with no step committed before them."""
    run_id = new_run(store)
    with store.transaction() as tx:
        run = tx.update_run(run_id, status="running")
    journal = StoreJournal(store, run.run_id, run.version, checkpoint_seq=run.checkpoint_seq)
    first = {"n": 1, "keep": "x" * 80}
    _commit(journal, first)
    last = {"n": 2, "keep": "x" * 80}
    final = {"n": 2, "keep": "x" * 80, "output": "done"}
    _finish(journal, Boundary(kind="run_completed", state=final), held=last)
    assert [payloads.is_patch(e) for e in _encodings(store, run.run_id)] == [False, True, True]
    read = [c.payload for c in store.runs.list_checkpoints(run.run_id).items]
    assert read == [first, last, final]
    assert store.runs.get_run(run.run_id).checkpoint_seq == 3


def test_outcome_rows_numbered_otherwise_are_stored_as_keyframes(store: Store) -> None:
    """When another writer added a checkpoint after the journal's last one (the counter
    moved, the version did not), the outcome's rows are keyframes: a patch only ever
    follows its base directly."""
    run_id = new_run(store)
    with store.transaction() as tx:
        run = tx.update_run(run_id, status="running")
    journal = StoreJournal(store, run.run_id, run.version, checkpoint_seq=run.checkpoint_seq)
    first = {"n": 1, "keep": "x" * 80}
    _commit(journal, first)
    with store.transaction() as tx:
        tx.add_checkpoint(run.run_id, type="note", payload={"other": True})
    last = {"n": 2, "keep": "x" * 80}
    final = {"n": 3, "keep": "x" * 80}
    _finish(journal, Boundary(kind="run_completed", state=final), held=last)
    assert [payloads.is_patch(e) for e in _encodings(store, run.run_id)] == [False] * 4
    read = [c.payload for c in store.runs.list_checkpoints(run.run_id).items]
    assert read == [first, {"other": True}, last, final]
