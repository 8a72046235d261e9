"""Move a run to newer code on purpose: the one way a run leaves the code it started with.

A run keeps the project code it started on (:mod:`kneo.kernel.code`): a resume weeks later
runs the same bytes. When a person decides a waiting (or failed, or interrupted) run should go
on with newer code, ``kneo runs continue RUN --to-revision`` (``POST /v1/runs/{id}/continue``
with ``to_revision``) moves it: a bundle run to revision ``N`` of its bundle in its
environment (``active``: the one serving), its spec and pinned code with it; a spec run to its
project files as they are now (``current``). The run's steps done stay done; the move is one
compare-and-set of the run and a ``run.code_moved`` audit event naming both code digests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kneo.errors import BundleNotApproved, IllegalTransition, InvalidRequest
from kneo.kernel.code import CodeSet, code_record, load_code
from kneo.lifecycle import RunStatus
from kneo.platform.driver import RunDriver
from kneo.spec.loader import load_spec_data
from kneo.spec.pinning import spec_code
from kneo.store import RunRecord, Store

#: what ``to_revision`` may say besides a revision number
MOVABLE = (RunStatus.PAUSED, RunStatus.FAILED, RunStatus.RUNNING)


def move_code(
    store: Store, driver: RunDriver, run_id: str, to_revision: int | str, *, actor: str | None
) -> RunRecord:
    """Move ``run_id`` to ``to_revision`` (a revision number or ``active`` for a bundle
    run, ``current`` for a spec run); the run as updated."""
    run = store.runs.get_run(run_id)
    if run.status not in MOVABLE:
        raise IllegalTransition(
            f"run {run_id} is {run.status}: only a paused, failed or interrupted run moves to "
            "other code",
            current_status=run.status,
        )
    old = CodeSet.from_record((run.metadata or {}).get("code"), fetch=store.code.get)
    changes: dict[str, Any]
    if run.bundle_name is not None:
        changes, new = _bundle_target(store, run, to_revision)
    else:
        if to_revision != "current":
            raise InvalidRequest(
                f"to_revision: run {run_id} runs a spec, not a bundle: it moves to its "
                "project files as they are now, 'current'",
                field="to_revision",
            )
        base = (run.metadata or {}).get("base_dir")
        model = load_spec_data(dict(run.spec), source=f"run {run_id}")
        new = spec_code(model, Path(base) if base else None)
        changes = {}
    if new:
        store.code.put({**load_code(new).files(), new.digest: new.manifest_bytes})
    metadata = {**(run.metadata or {}), "code": code_record(new)}
    with store.transaction() as tx:
        updated = tx.update_run(run_id, expected_version=run.version, metadata=metadata, **changes)
        tx.add_audit(
            "run.code_moved",
            actor=actor,
            run_id=run_id,
            payload={
                "from_code": old.digest if old else None,
                "to_code": new.digest if new else None,
                "to_revision": changes.get("bundle_revision", "current"),
            },
        )
    driver.compiled.clear()  # the same spec digest may now compile against other code
    return updated


def _bundle_target(
    store: Store, run: RunRecord, to_revision: int | str
) -> tuple[dict[str, Any], CodeSet]:
    """The run's fields for revision ``to_revision`` of its bundle, and its pinned code."""
    name, env = run.bundle_name or "", run.environment or ""
    if to_revision == "active":
        revision = store.registry.get_active(name, env)
        if revision is None:
            raise BundleNotApproved(f"bundle {name!r} has no active revision in {env!r}")
    elif isinstance(to_revision, int):
        revision = store.registry.get_revision(name, env, to_revision)
    else:
        raise InvalidRequest(
            f"to_revision: run {run.run_id} runs bundle {name!r}: name a revision number or "
            "'active'",
            field="to_revision",
        )
    if revision.status not in ("active", "inactive"):
        raise BundleNotApproved(
            f"revision {revision.revision} of {name!r} in {env!r} is {revision.status}: a run "
            "moves only to a revision that was promoted"
        )
    spec: Mapping[str, Any] = revision.spec
    pinned = CodeSet.from_manifest(spec.get("code"), field="spec.code")
    fields = {
        "spec": dict(spec),
        "spec_digest": revision.digest,
        "bundle_revision": revision.revision,
        "bundle_commit": revision.commit,
    }
    return fields, pinned
